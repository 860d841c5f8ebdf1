"""Resuming an interrupted attack run: the images it finished, reused as they are.

A resumed attack repeats the interrupted run's parameters; the core seeds each
image by (seed, index), so the images it attacks now come out as they would have in
one uninterrupted run, and the two together are that run's results.
"""

from __future__ import annotations

import dataclasses
import shlex

from mlflow.entities import Run

from pixel_threshold.artifacts import manifest, names
from pixel_threshold.attack import ImageResult, resolved_budget
from pixel_threshold.data import datasets
from pixel_threshold.runs import tracking
from pixel_threshold.runs.params import AttackParams

UNCHECKED = ("model", "data", "resume", "ray_address", "shard_size")
"""Parameters not compared as logged: the model and data are compared as resolved
(tags ``model_uri`` and ``data``), ``resume`` names the run itself, and ``ray_address``
and ``shard_size`` say where images are attacked, not how (a run interrupted here can
be finished on a cluster)."""
BUDGET = ("max_iter", "popsize")
"""Compared as resolved (`resolved_budget`), not as logged."""


def resumed_run(params: AttackParams) -> Run:
    """The attack run ``params.resume`` names, checked to have run with ``params`` and
    to have logged the images it finished.

    Every parameter but those `UNCHECKED` must be as logged (``loss`` too), the budget
    as resolved: ``max_iter=0`` (the strategy's default) equals the default written out.
    """
    run = tracking.named_run(params.resume, "attack", param="resume")
    logged = run.data.params
    for field in dataclasses.fields(params):
        if field.name in UNCHECKED:
            continue
        value = getattr(params, field.name)
        before = logged.get(field.name)
        if field.name in BUDGET and before is not None and _resolves(logged, params):
            continue
        if before is None or not _same(before, value):
            raise ValueError(
                f"expected {field.name}={before} as in the resumed run {params.resume}, "
                f"got {field.name}={value}"
            )
    if run.data.tags.get(tracking.DATA_TAG) != params.data:
        raise ValueError(
            f"expected data={run.data.tags.get(tracking.DATA_TAG)!r} as in the resumed run "
            f"{params.resume}, got data={params.data!r}"
        )
    if not tracking.has_adversarial_set(params.resume):
        raise ValueError(
            f"expected the resumed run {params.resume} to have logged {names.ADV_TESTING}, found "
            "none (it finished no image): start a new attack instead"
        )
    return run


def check_model(run: Run, model_uri: str) -> None:
    """Raise ValueError unless ``model_uri`` is the model the resumed ``run`` attacked."""
    before = run.data.tags.get(tracking.MODEL_URI_TAG)
    if model_uri != before:
        raise ValueError(
            f"expected model={before!r} as in the resumed run {run.info.run_id}, "
            f"got model={model_uri!r}"
        )


def finished(run: Run, attacked: datasets.ImageSet) -> list[ImageResult]:
    """The results ``run`` logged in its (partial) ``adv_testing.tar.gz``, checked to be
    of the same images as ``attacked``."""
    run_id = run.info.run_id
    adv = tracking.read_adversarial_set(run_id, attacked.images.shape[1:])
    if "source" not in adv.manifest:
        raise ValueError(f"expected a 'source' column in the resumed run {run_id}'s manifest")
    done = manifest.results(adv, attacked.images)
    for result, source in zip(done, adv.manifest["source"], strict=True):
        if (
            source != attacked.sources[result.index]
            or result.label != attacked.labels[result.index]
        ):
            raise ValueError(
                f"expected image {result.index} of the resumed run {run_id} to be "
                f"{attacked.sources[result.index]}, got {source}: the data changed"
            )
    return done


def _resolves(logged: dict[str, str], params: AttackParams) -> bool:
    """Whether the budget ``logged`` resolves to the budget of ``params``."""
    try:
        before = resolved_budget(params.es, int(logged["max_iter"]), int(logged["popsize"]))
    except (KeyError, ValueError):
        return False
    return before == resolved_budget(params.es, params.max_iter, params.popsize)


def _same(logged: str, value: object) -> bool:
    if isinstance(value, int):
        try:
            return int(logged) == value
        except ValueError:
            return False
    return logged in (str(value), shlex.quote(str(value)))
