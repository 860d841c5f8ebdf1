"""Step ``attack``: attack the first ``limit`` images of a dataset, log the adversarial set.

Interrupted (Ctrl-C, SIGTERM), it logs the images it finished as a partial
``adv_testing.tar.gz``, tags the run ``images_done`` and ends it KILLED; an attack
with ``resume`` set to that run's id and the same parameters finishes the rest.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import numpy.typing as npt
from mlflow.entities import Run
from tqdm import tqdm

from pixel_threshold import artifacts, data, interrupts, metrics, models, tracking
from pixel_threshold.artifacts import ADV_TESTING
from pixel_threshold.attack import (
    AttackConfig,
    ImageResult,
    Sample,
    make_encoding,
    resolved_budget,
)
from pixel_threshold.steps import manifest, naming, pictures, resume, sharding
from pixel_threshold.steps.params import AttackParams

DISTANCE_METRICS = "distance_metrics.csv.gz"
IMAGES_DONE_TAG = "images_done"
RESUMED_FROM_TAG = "resumed_from"
QUERY_BUDGET = "query_budget"
"""The metric of an image's most queries, ``max_iter x popsize`` as resolved (the
params are logged as given: 0 for a strategy's default)."""
UNTARGETED = -1


def attack_config(params: AttackParams) -> AttackConfig:
    """The core's configuration, with ``max_iter`` and ``popsize`` resolved (0: the
    strategy's default); raises ValueError naming any bad parameter."""
    if params.limit < 1:
        raise ValueError(f"expected limit >= 1, got limit={params.limit}")
    if params.target < UNTARGETED:
        raise ValueError(
            f"expected target >= 0 or {UNTARGETED} (untargeted), got target={params.target}"
        )
    models.parse_input_range(params.input_range)
    if params.shard_size < 1:
        raise ValueError(f"expected shard_size >= 1, got shard_size={params.shard_size}")
    max_iter, popsize = resolved_budget(params.es, params.max_iter, params.popsize)
    return AttackConfig(
        attack_type=params.attack_type,
        th=params.th,
        th_max=params.th_max,
        es=params.es,
        loss=params.loss,
        max_iter=max_iter,
        popsize=popsize,
        target=None if params.target == UNTARGETED else params.target,
        batch_size=params.batch_size,
        seed=params.seed,
    )


def run_attack(params: AttackParams) -> str:
    """Attack, log metrics (``query_budget`` first), ``adv_testing.tar.gz``,
    ``distance_metrics.csv.gz``, ``examples.png`` and ``queries.png`` (and
    ``skipped_images.csv`` if files were unreadable); return the run id.

    Every parameter is checked before the attack starts: those that need the model
    (``th`` against its image size, ``target`` against its classes) as soon as it loads.
    """
    with tracking.step_run("attack") as run:
        tracking.log_params(params)
        config = attack_config(params)
        mlflow.log_metric(QUERY_BUDGET, config.max_iter * config.popsize)
        data.check_data(params.data)
        resumed = resume.resumed_run(params) if params.resume else None
        model_uri = _model_uri(params, resumed, run.info.experiment_id)
        model = models.load_model(model_uri)
        shape, classes = models.image_classifier_shape(model, uri=model_uri)
        make_encoding(config.attack_type, config.th, shape)
        if config.target is not None and config.target >= classes:
            raise ValueError(
                f"expected target in [0, {classes}) (the model's classes) or {UNTARGETED}, "
                f"got target={config.target}"
            )
        mlflow.set_tags({tracking.MODEL_URI_TAG: model_uri, tracking.DATA_TAG: params.data})
        naming.name_run(naming.attack_run_name(params, naming.model_name(model_uri)))
        train_run_id = tracking.model_run_id(model_uri)
        if train_run_id is not None:
            mlflow.set_tag(tracking.TRAIN_RUN_TAG, train_run_id)
        attacked = data.attack_set(params.data, shape, limit=params.limit)
        tracking.log_skipped_images(attacked.skipped)
        if classes != len(attacked.class_names):
            raise ValueError(
                f"expected data={params.data!r} to have the model's {classes} classes, "
                f"got {len(attacked.class_names)}"
            )
        if config.target is not None and np.all(attacked.labels == config.target):
            raise ValueError(
                f"expected images to attack of classes other than target={config.target}, "
                f"got only images of class {config.target}"
            )
        classifier = models.compile_classifier(
            model,
            batch_size=config.batch_size,
            input_range=models.parse_input_range(params.input_range),
            probe=attacked.images,
        )
        results: list[ImageResult] = []
        if resumed is not None:
            results = resume.finished(resumed, attacked)
            mlflow.set_tag(RESUMED_FROM_TAG, resumed.info.run_id)
        try:
            with sharding.searching(params, config, model, classifier) as search:
                seconds = _attack(config, attacked, search, results)
        except KeyboardInterrupt:
            with interrupts.signals_ignored():
                _log_interrupted(run.info.run_id, attacked, results)
            raise
        adversarials, distances = _log_adversarial_set(attacked, results)
        # Scored again as evaluate will score them: the search's batches had other shapes.
        adversarial_labels = models.predict_labels(classifier, adversarials)
        mlflow.log_metrics(metrics.attack_metrics(results, adversarial_labels, distances, seconds))
        run_id: str = run.info.run_id
        return run_id


def _model_uri(params: AttackParams, resumed: Run | None, experiment_id: str) -> str:
    """The model to attack: ``params.model``, else the resumed run's, else the latest
    train run's."""
    if resumed is not None:
        uri = params.model or resumed.data.tags[tracking.MODEL_URI_TAG]
        resume.check_model(resumed, uri)
        return uri
    if params.model:
        return params.model
    train_run = tracking.latest_run("train", experiment_id)
    return f"runs:/{train_run.info.run_id}/{tracking.MODEL_ARTIFACT}"


def _attack(
    config: AttackConfig,
    attacked: data.ImageSet,
    search: sharding.Search,
    results: list[ImageResult],
) -> float:
    """Attack the images ``results`` lacks with ``search`` (here or on a Ray cluster),
    appending their results as they finish, then sort ``results`` by index; return the
    attack's wall time in seconds."""
    finished = {result.index for result in results}
    samples = (
        Sample(index, image, int(label))
        for index, (image, label) in enumerate(zip(attacked.images, attacked.labels, strict=True))
        if index not in finished
    )
    successes = sum(result.success for result in results)
    queries = 0
    start = time.perf_counter()
    description = f"{config.attack_type} th={config.th} es={config.es}"
    total = len(attacked.labels)
    with tqdm(total=total, initial=len(results), desc=description, unit="img") as bar:
        for result in search(samples):
            results.append(result)
            successes += result.success
            queries += result.queries
            rate = queries / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(successes=successes, queries_per_s=f"{rate:.0f}", refresh=False)
            bar.update()
    seconds = time.perf_counter() - start
    results.sort(key=lambda result: result.index)
    return seconds


def _log_interrupted(run_id: str, attacked: data.ImageSet, results: list[ImageResult]) -> None:
    """Log the finished ``results`` (any order) as a partial adversarial set, and tag
    the run with how many images were done."""
    results.sort(key=lambda result: result.index)
    done = f"{len(results)} of {len(attacked.labels)}"
    mlflow.set_tag(IMAGES_DONE_TAG, done)
    if results:
        _log_adversarial_set(attacked.subset([result.index for result in results]), results)
    advice = (
        f"logged to run {run_id}; to finish it, attack again with the same parameters "
        f"and resume={run_id}"
        if results
        else "nothing to resume"
    )
    print(f"attack interrupted with {done} images done: {advice}", file=sys.stderr)


def _log_adversarial_set(
    attacked: data.ImageSet, results: Sequence[ImageResult]
) -> tuple[npt.NDArray[np.uint8], dict[str, metrics.FloatArray]]:
    """Log the artifacts of ``results`` (index order) of the images ``attacked``, row
    for row; return the adversarial images (N, H, W, C) and their distances (each (N,))."""
    adversarials = np.stack([result.adversarial for result in results])
    distances = metrics.image_distances(attacked.images, adversarials)
    with tempfile.TemporaryDirectory() as folder:
        _write_artifacts(Path(folder), attacked, results, adversarials, distances)
        mlflow.log_artifacts(folder)
    return adversarials, distances


def _write_artifacts(
    folder: Path,
    attacked: data.ImageSet,
    results: Sequence[ImageResult],
    adversarials: npt.NDArray[np.uint8],
    distances: dict[str, metrics.FloatArray],
) -> None:
    """``adv_testing.tar.gz``, ``distance_metrics.csv.gz``, ``examples.png`` and
    ``queries.png`` for ``results`` of the images ``attacked``, row for row."""
    columns = manifest.columns(results, attacked.sources, distances)
    artifacts.write_adv_testing(
        folder / ADV_TESTING, adversarials, attacked.labels, attacked.class_names, columns
    )
    per_image = ("index", "source", "label", "success", *metrics.DISTANCES)
    artifacts.write_table(
        folder / DISTANCE_METRICS,
        {
            name: [result.label for result in results] if name == "label" else columns[name]
            for name in per_image
        },
    )
    pictures.write_attack_pictures(folder, attacked, results, adversarials)
