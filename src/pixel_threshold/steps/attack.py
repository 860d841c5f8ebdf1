"""Step ``attack``: attack the first ``limit`` images of a dataset, log the adversarial set.

Interrupted (Ctrl-C, SIGTERM), it logs the images it finished as a partial
``adv_testing.tar.gz``, tags the run ``images_done`` and ends it KILLED; when the model
fails during the search (a scoring server that stops answering), it does the same and
the run ends FAILED with the error. An attack with ``resume`` set to that run's id and
the same parameters finishes the rest.

With ``th=-1`` each image's smallest fooling th in ``1..th_max`` is searched, and the
run also logs ``th_max`` (as resolved), ``robust_accuracy`` (one value per th),
``median_min_th``, ``mean_min_th`` and ``robustness_curve.png``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import numpy.typing as npt
from mlflow.entities import RunStatus
from tqdm import tqdm

from pixel_threshold import metrics
from pixel_threshold.artifacts import manifest, names, tarball
from pixel_threshold.attack import SMALLEST_TH, AttackConfig, ImageResult, Sample
from pixel_threshold.attack.distances import DISTANCES, FloatArray, image_distances
from pixel_threshold.attack.strategies import strategy_name
from pixel_threshold.data import datasets
from pixel_threshold.models import loading, scoring
from pixel_threshold.models.scoring import Classifier, predicted_labels
from pixel_threshold.runs import interrupts, naming, outbox, outcome, records, tracking
from pixel_threshold.runs.params import AttackParams
from pixel_threshold.steps import pictures, plan, resume, sharding

IMAGES_DONE_TAG = "images_done"
RESUMED_FROM_TAG = "resumed_from"
RESIZED_IMAGES = "resized_images"
"""How many attacked images were resized to the model's size, as ``resize`` says."""
QUERY_BUDGET = "query_budget"
"""The metric of an image's most queries, ``max_iter x popsize`` as resolved (the
params are logged as given: 0 for a strategy's default)."""
TH_MAX = "th_max"
"""The metric of a ``th=-1`` run's largest th tried, as resolved (the param as given:
0 for the whole range), so that the runs table shows what ``median_min_th = th_max + 1``
means."""


@dataclass(frozen=True)
class Planned:
    """An attack ready to search: its configuration fitted to the model, the classifier,
    the images, what a resumed run had finished, and the run's name."""

    params: AttackParams
    config: AttackConfig
    predict: Classifier
    attacked: datasets.ImageSet
    finished: list[ImageResult]
    subject: str
    model_uri: str


def run_attack(params: AttackParams) -> str:
    """Attack, log metrics (``query_budget`` first), the files of
    `names.LOGGED` ``["attack"]`` and, with ``th=-1``, the smallest-th metrics; return
    the run id.

    Every parameter is checked before the attack starts: those that need the model
    (``th`` or ``th_max`` against its image size, ``target`` against its classes) as
    soon as it loads.
    """
    with tracking.step_run("attack") as run:
        run_id: str = run.info.run_id
        planned = _plan(params, run.info.experiment_id)
        results = list(planned.finished)
        try:
            seconds = _search(planned, results)
        except KeyboardInterrupt:
            with interrupts.signals_ignored():
                _log_unfinished(run_id, planned, results, RunStatus.KILLED, "interrupted")
            raise
        except Exception:  # the model failed (a server down): keep what is done, then fail
            with interrupts.signals_ignored():
                _log_unfinished(run_id, planned, results, RunStatus.FAILED, "failed")
            raise
        _log(run_id, planned, results, seconds)
    outcome.print_outcome(run_id)
    return run_id


def _plan(params: AttackParams, experiment_id: str) -> Planned:
    """Check every parameter, load the model and the images, and log what the run
    attacks (params, ``query_budget``, ``th_max``, tags, its name, skipped files)."""
    tracking.log_params(params)
    config = plan.check_attack(params)
    mlflow.log_metric(QUERY_BUDGET, config.max_iter * config.popsize)
    resumed = resume.resumed_run(params) if params.resume else None
    model_uri = _model_uri(params, resumed, experiment_id)
    predict = loading.load_classifier(model_uri, plan.model_options(params))
    shape = predict.image_shape or datasets.natural_shape(params.data)
    config = config.fitted(shape)
    if config.th == SMALLEST_TH:
        mlflow.log_metric(TH_MAX, config.th_max)
    mlflow.set_tags(
        {
            tracking.MODEL_URI_TAG: model_uri,
            tracking.MODEL_KIND_TAG: predict.kind,
            tracking.DATA_TAG: params.data,
            tracking.STRATEGY_TAG: strategy_name(config.es),
            tracking.BUDGET_TAG: f"{config.max_iter}x{config.popsize}",
            **tracking.model_version_tags(model_uri),
        }
    )
    subject = naming.attack_run_name(params, naming.model_name(model_uri), th_max=config.th_max)
    naming.name_run(subject)
    train_run_id = tracking.model_run_id(model_uri)
    if train_run_id is not None:
        mlflow.set_tag(tracking.TRAIN_RUN_TAG, train_run_id)
    attacked = datasets.attack_set(params.data, shape, limit=params.limit, resize=params.resize)
    tracking.log_skipped_images(attacked.skipped)
    mlflow.log_metric(RESIZED_IMAGES, attacked.resized)
    tracking.log_attacked_data(attacked, params.data)
    outputs, classes = scoring.probed(
        predict, attacked.images, uri=model_uri, outputs=params.outputs
    )
    config = dataclasses.replace(config, outputs=outputs)
    config.check_classes(classes)
    _check_plan(params, config, attacked.images, predict)
    mlflow.set_tag(tracking.MODEL_OUTPUTS_TAG, outputs)
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
    finished: list[ImageResult] = []
    if resumed is not None:
        finished = resume.finished(resumed, attacked)
        mlflow.set_tag(RESUMED_FROM_TAG, resumed.run_id)
    return Planned(params, config, predict, attacked, finished, subject, model_uri)


def _check_plan(
    params: AttackParams, config: AttackConfig, images: npt.NDArray[np.uint8], predict: Classifier
) -> None:
    """Print what the attack will spend: images, the budget an image and in all, and the
    time that takes at the rate the model answers a full call (measured once, after the
    probe's warm-up); refuse, with those numbers, a budget longer than ``max_hours``."""
    batch = images[: config.batch_size].astype(np.float32)
    start = time.perf_counter()
    predict(batch)
    rate = len(batch) / max(time.perf_counter() - start, 1e-9)
    per_search = config.max_iter * config.popsize
    total = len(images) * per_search
    hours = total / rate / 3600
    searches = "a search (th=-1 runs several an image)" if config.th == SMALLEST_TH else "each"
    print(
        f"attack plan: {len(images)} images, at most {per_search:,} queries {searches} "
        f"({total:,} in all for one search an image), the model answering ~{rate:,.0f} "
        f"queries/s: at most {_duration(hours)} (and a query more to confirm each success, "
        "scored alone)",
        file=sys.stderr,  # beside the progress bar; stdout holds the outcome
        flush=True,
    )
    if params.max_hours and hours > params.max_hours:
        raise ValueError(
            f"expected an attack that can finish within max_hours={params.max_hours:g}, got "
            f"about {_duration(hours)}: {len(images)} images x {per_search:,} queries "
            f"(max_iter={config.max_iter} x popsize={config.popsize}) = {total:,} queries at "
            f"~{rate:,.0f} queries/s; lower limit, max_iter or popsize, or set max_hours=0 "
            "to run it anyway"
        )


def _duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:,.0f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.1f} min"


def _log(run_id: str, planned: Planned, results: list[ImageResult], seconds: float) -> None:
    """Log the whole adversarial set of ``results`` (index order), its metrics and
    pictures, written to an outbox parcel first (`outbox`)."""
    parcel = outbox.new_parcel(run_id, mlflow.get_tracking_uri())
    adversarials, distances = _write_adversarial_set(parcel, planned.attacked, results, planned)
    # Scored again as evaluate will score them: the search's batches had other shapes.
    adversarial_labels = predicted_labels(planned.predict, adversarials)
    parcel.metrics |= metrics.attack_metrics(results, adversarial_labels, distances, seconds)
    if planned.config.th == SMALLEST_TH:
        _add_smallest_th(parcel, planned.config, results, planned.subject)
    outbox.send(parcel)


def _add_smallest_th(
    parcel: outbox.Parcel, config: AttackConfig, results: Sequence[ImageResult], subject: str
) -> None:
    """Add a ``th=-1`` run's ``median_min_th`` and ``mean_min_th``, ``robust_accuracy``
    at steps th = 0..th_max and ``robustness_curve.png`` (titled ``subject``) to
    ``parcel``."""
    parcel.metrics |= metrics.smallest_th_metrics(results, config.th_max)
    parcel.histories[metrics.ROBUST_ACCURACY] = [
        float(value) for value in metrics.robust_accuracy(results, config.th_max)
    ]
    pictures.write_robustness_curve(parcel.artifacts, results, config.th_max, title=subject)


def _model_uri(params: AttackParams, resumed: records.AttackRun | None, experiment_id: str) -> str:
    """The model to attack: ``params.model``, else the resumed run's, else the latest
    train run's."""
    if resumed is not None:
        uri = params.model or resumed.model_uri
        resume.check_model(resumed, uri)
        return uri
    if params.model:
        return params.model
    return records.latest_train_run(experiment_id, fits=_trained_on(params.data)).model_uri


def _trained_on(data: str) -> Callable[[records.TrainRun], str]:
    """Whether a train run's model takes ``data``'s images: trained on data of the same
    image shape (a pretrained ImageNet model: the photos' 224x224x3)."""
    shape = datasets.natural_shape(data)

    def why_not(run: records.TrainRun) -> str:
        try:
            trained = datasets.natural_shape(run.params.dataset)
        except ValueError:
            return f"its dataset {run.params.dataset!r} is not here to check"
        if trained != shape and run.params.dataset != data:
            return (
                f"its model takes {trained} images ({run.params.dataset}), data={data!r} "
                f"has {shape}"
            )
        return ""

    return why_not


def _search(planned: Planned, results: list[ImageResult]) -> float:
    """Attack the images ``results`` lacks, here or on the Ray cluster of ``ray_address``
    (`sharding`), appending their results as they finish, then sort ``results`` by
    index; return the attack's wall time in seconds."""
    params, config, attacked = planned.params, planned.config, planned.attacked
    with sharding.searching(
        config,
        planned.predict,
        ray_address=params.ray_address,
        shard_size=params.shard_size,
        model_uri=planned.model_uri,
        options=plan.model_options(params),
    ) as search:
        return _searched(config, attacked, search, results)


def _searched(
    config: AttackConfig,
    attacked: datasets.ImageSet,
    search: sharding.Search,
    results: list[ImageResult],
) -> float:
    """`_search` with ``search``: the progress bar over the images as they finish."""
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
            bar.set_postfix(
                successes=successes,
                queries=f"{queries:,}",
                queries_per_s=f"{rate:.0f}",
                refresh=False,
            )
            bar.update()
    seconds = time.perf_counter() - start
    results.sort(key=lambda result: result.index)
    return seconds


def _log_unfinished(
    run_id: str, planned: Planned, results: list[ImageResult], status: int, stopped: str
) -> None:
    """Log the finished ``results`` (any order) of an attack that was interrupted or
    failed (``status``, KILLED or FAILED) as a partial adversarial set, tag the run with
    how many images were done, and say how to finish it."""
    attacked = planned.attacked
    results.sort(key=lambda result: result.index)
    done = f"{len(results)} of {len(attacked.labels)}"
    parcel = outbox.new_parcel(run_id, mlflow.get_tracking_uri())
    parcel.status = RunStatus.to_string(status)
    parcel.tags[IMAGES_DONE_TAG] = done
    if results:
        done_images = attacked.subset([result.index for result in results])
        _write_adversarial_set(parcel, done_images, results, planned)
    outbox.send(parcel)
    advice = (
        f"logged to run {run_id}; to finish it, attack again with the same parameters "
        f"and resume={run_id}"
        if results
        else "nothing to resume"
    )
    print(f"attack {stopped} with {done} images done: {advice}", file=sys.stderr)


def _write_adversarial_set(
    parcel: outbox.Parcel,
    attacked: datasets.ImageSet,
    results: Sequence[ImageResult],
    planned: Planned,
) -> tuple[npt.NDArray[np.uint8], dict[str, FloatArray]]:
    """Write the artifacts of ``results`` (index order) of the images ``attacked``, row
    for row, into ``parcel`` (`_write_artifacts`; ``min_th`` in the manifest for a
    ``th=-1`` run, pictures titled with the run's name); return the adversarial images
    (N, H, W, C) and their distances (each (N,))."""
    config, subject = planned.config, planned.subject
    adversarials = np.stack([result.adversarial for result in results])
    distances = image_distances(attacked.images, adversarials)
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
    attacked: datasets.ImageSet,
    results: Sequence[ImageResult],
    adversarials: npt.NDArray[np.uint8],
    columns: dict[str, list[Any]],
) -> None:
    """``adv_testing.tar.gz`` with the manifest ``columns`` (`manifest.columns`) and
    ``distance_metrics.csv.gz`` for ``results`` of the images ``attacked``, row for
    row."""
    tarball.write_adv_testing(
        folder / names.ADV_TESTING, adversarials, attacked.labels, attacked.class_names, columns
    )
    per_image = ("index", "source", "label", "success", *DISTANCES)
    tarball.write_table(
        folder / names.DISTANCE_METRICS,
        {
            name: [result.label for result in results] if name == "label" else columns[name]
            for name in per_image
        },
    )
