"""Step ``attack``: attack the first ``limit`` images of a dataset, log the adversarial set.

Interrupted (Ctrl-C, SIGTERM), it logs the images it finished as a partial
``adv_testing.tar.gz``, tags the run ``images_done`` and ends it KILLED; an attack
with ``resume`` set to that run's id and the same parameters finishes the rest.

With ``th=-1`` each image's smallest fooling th in ``1..th_max`` is searched, and the
run also logs ``th_max`` (as resolved), ``robust_accuracy`` (one value per th),
``median_min_th``, ``mean_min_th`` and ``robustness_curve.png``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import numpy.typing as npt
from mlflow.entities import Run, RunStatus
from tqdm import tqdm

from pixel_threshold import artifacts, data, interrupts, metrics, models, outbox, tracking
from pixel_threshold.artifacts import ADV_TESTING
from pixel_threshold.attack import (
    SMALLEST_TH,
    AttackConfig,
    ImageResult,
    Sample,
    make_encoding,
    resolved_th_max,
)
from pixel_threshold.steps import manifest, naming, outcome, pictures, plan, resume, sharding
from pixel_threshold.steps.params import AttackParams

DISTANCE_METRICS = "distance_metrics.csv.gz"
IMAGES_DONE_TAG = "images_done"
RESUMED_FROM_TAG = "resumed_from"
QUERY_BUDGET = "query_budget"
"""The metric of an image's most queries, ``max_iter x popsize`` as resolved (the
params are logged as given: 0 for a strategy's default)."""
TH_MAX = "th_max"
"""The metric of a ``th=-1`` run's largest th tried, as resolved (the param as given:
0 for the whole range), so that the runs table shows what ``median_min_th = th_max + 1``
means."""
ROBUST_ACCURACY = "robust_accuracy"
"""A ``th=-1`` run's metric logged with ``step = th`` for th = 0..th_max."""


def run_attack(params: AttackParams) -> str:
    """Attack, log metrics (``query_budget`` first), ``adv_testing.tar.gz``,
    ``distance_metrics.csv.gz``, ``examples.png`` and ``queries.png`` (and
    ``skipped_images.csv`` if files were unreadable; with ``th=-1`` the smallest-th
    metrics and ``robustness_curve.png``); return the run id.

    Every parameter is checked before the attack starts: those that need the model
    (``th`` or ``th_max`` against its image size, ``target`` against its classes) as
    soon as it loads.
    """
    with tracking.step_run("attack") as run:
        tracking.log_params(params)
        plan.check_attack(params)
        config = plan.attack_config(params)
        mlflow.log_metric(QUERY_BUDGET, config.max_iter * config.popsize)
        resumed = resume.resumed_run(params) if params.resume else None
        model_uri = _model_uri(params, resumed, run.info.experiment_id)
        model = models.load_model(model_uri)
        shape, classes = models.image_classifier_shape(model, uri=model_uri)
        config = _fitted(config, shape)
        if config.target is not None and config.target >= classes:
            raise ValueError(
                f"expected target in [0, {classes}) (the model's classes) or {plan.UNTARGETED}, "
                f"got target={config.target}"
            )
        mlflow.set_tags({tracking.MODEL_URI_TAG: model_uri, tracking.DATA_TAG: params.data})
        subject = naming.attack_run_name(params, naming.model_name(model_uri), th_max=config.th_max)
        naming.name_run(subject)
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
            input_range=plan.parse_input_range(params.input_range),
            probe=attacked.images,
        )
        results: list[ImageResult] = []
        if resumed is not None:
            results = resume.finished(resumed, attacked)
            mlflow.set_tag(RESUMED_FROM_TAG, resumed.info.run_id)
        smallest = config.th == SMALLEST_TH
        try:
            with sharding.searching(params, config, model, classifier) as search:
                seconds = _attack(config, attacked, search, results)
        except KeyboardInterrupt:
            with interrupts.signals_ignored():
                _log_interrupted(run.info.run_id, attacked, results, config, subject)
            raise
        run_id: str = run.info.run_id
        parcel = outbox.new_parcel(run_id, mlflow.get_tracking_uri())
        adversarials, distances = _write_adversarial_set(parcel, attacked, results, config, subject)
        # Scored again as evaluate will score them: the search's batches had other shapes.
        adversarial_labels = models.predict_labels(classifier, adversarials)
        parcel.metrics |= metrics.attack_metrics(results, adversarial_labels, distances, seconds)
        if smallest:
            _add_smallest_th(parcel, config, results, subject)
        outbox.send(parcel)
    outcome.print_outcome(run_id)
    return run_id


def _fitted(config: AttackConfig, shape: tuple[int, int, int]) -> AttackConfig:
    """``config`` checked against the model's (H, W, C) images: ``th``, or with
    ``th=-1`` ``th_max``, resolved (0: the whole range) and logged as the metric
    ``th_max``. Raises ValueError naming the parameter that does not fit."""
    if config.th != SMALLEST_TH:
        make_encoding(config.attack_type, config.th, shape)
        return config
    th_max = resolved_th_max(config.attack_type, config.th_max, shape)
    mlflow.log_metric(TH_MAX, th_max)
    return dataclasses.replace(config, th_max=th_max)


def _add_smallest_th(
    parcel: outbox.Parcel, config: AttackConfig, results: Sequence[ImageResult], subject: str
) -> None:
    """Add a ``th=-1`` run's ``median_min_th`` and ``mean_min_th``, ``robust_accuracy``
    at steps th = 0..th_max and ``robustness_curve.png`` (titled ``subject``) to
    ``parcel``."""
    parcel.metrics |= metrics.smallest_th_metrics(results, config.th_max)
    parcel.histories[ROBUST_ACCURACY] = [
        float(value) for value in metrics.robust_accuracy(results, config.th_max)
    ]
    pictures.write_robustness_curve(parcel.artifacts, results, config.th_max, title=subject)


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
    description = f"{config.attack_type} {naming.th_name(config.th, config.th_max)} es={config.es}"
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


def _log_interrupted(
    run_id: str,
    attacked: data.ImageSet,
    results: list[ImageResult],
    config: AttackConfig,
    subject: str,
) -> None:
    """Log the finished ``results`` (any order) as a partial adversarial set, tag the
    run with how many images were done, and say how to finish it."""
    results.sort(key=lambda result: result.index)
    done = f"{len(results)} of {len(attacked.labels)}"
    parcel = outbox.new_parcel(run_id, mlflow.get_tracking_uri())
    parcel.status = RunStatus.to_string(RunStatus.KILLED)
    parcel.tags[IMAGES_DONE_TAG] = done
    if results:
        done_images = attacked.subset([result.index for result in results])
        _write_adversarial_set(parcel, done_images, results, config, subject)
    outbox.send(parcel)
    advice = (
        f"logged to run {run_id}; to finish it, attack again with the same parameters "
        f"and resume={run_id}"
        if results
        else "nothing to resume"
    )
    print(f"attack interrupted with {done} images done: {advice}", file=sys.stderr)


def _write_adversarial_set(
    parcel: outbox.Parcel,
    attacked: data.ImageSet,
    results: Sequence[ImageResult],
    config: AttackConfig,
    subject: str,
) -> tuple[npt.NDArray[np.uint8], dict[str, metrics.FloatArray]]:
    """Write the artifacts of ``results`` (index order) of the images ``attacked``, row
    for row, into ``parcel`` (`_write_artifacts`; ``min_th`` in the manifest for a
    ``th=-1`` run, pictures titled ``subject``); return the adversarial images
    (N, H, W, C) and their distances (each (N,))."""
    adversarials = np.stack([result.adversarial for result in results])
    distances = metrics.image_distances(attacked.images, adversarials)
    smallest = config.th == SMALLEST_TH
    columns = manifest.columns(results, attacked.sources, distances, smallest=smallest)
    _write_artifacts(parcel.artifacts, attacked, results, adversarials, columns)
    pictures.write_attack_pictures(
        parcel.artifacts,
        attacked,
        results,
        adversarials,
        attack_type=config.attack_type,
        subject=subject,
    )
    return adversarials, distances


def _write_artifacts(
    folder: Path,
    attacked: data.ImageSet,
    results: Sequence[ImageResult],
    adversarials: npt.NDArray[np.uint8],
    columns: dict[str, list[Any]],
) -> None:
    """``adv_testing.tar.gz`` with the manifest ``columns`` (`manifest.columns`) and
    ``distance_metrics.csv.gz`` for ``results`` of the images ``attacked``, row for
    row."""
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
