"""Resuming an interrupted attack run: the images it finished, reused as they are.

A resumed attack repeats the interrupted run's parameters; the core seeds each
image by (seed, index), so the images it attacks now come out as they would have in
one uninterrupted run, and the two together are that run's results.
"""

from __future__ import annotations

import dataclasses

from pixel_threshold.artifacts import manifest, names
from pixel_threshold.attack import ImageResult, resolved_budget
from pixel_threshold.data import datasets
from pixel_threshold.runs import records, tracking
from pixel_threshold.runs.params import AttackParams

UNCHECKED = ("model", "data", "resume", "ray_address", "shard_size")
"""Parameters not compared as logged: the model and data are compared as resolved
(tags ``model_uri`` and ``data``), ``resume`` names the run itself, and ``ray_address``
and ``shard_size`` say where images are attacked, not how (a run interrupted here can
be finished on a cluster)."""
BUDGET = ("max_iter", "popsize")
"""Compared as resolved (`records.AttackRun.budget`), not as logged; so is ``loss``
(empty: its run's default, `records.AttackRun.loss`)."""


def resumed_run(params: AttackParams) -> records.AttackRun:
    """The attack run ``params.resume`` names, checked to have run with ``params`` and
    to have logged the images it finished.

    Every parameter but those `UNCHECKED` must be as the run logged it (read by
    `records`, so a run of an earlier version compares as it ran), the budget as
    resolved: ``max_iter=0`` (the strategy's default) equals the default written out.
    """
    run = records.attack_run(params.resume, param="resume")
    same_budget = resolved_budget(params.es, params.max_iter, params.popsize) == run.budget
    resolved = {"loss": (run.loss, params.resolved_loss)}
    for field in dataclasses.fields(params):
        if field.name in UNCHECKED or (field.name in BUDGET and same_budget):
            continue
        before, value = resolved.get(
            field.name, (getattr(run.params, field.name), getattr(params, field.name))
        )
        if before != value:
            raise ValueError(
                f"expected {field.name}={before} as in the resumed run {params.resume}, "
                f"got {field.name}={value}"
            )
    if run.data != params.data:
        raise ValueError(
            f"expected data={run.data!r} as in the resumed run {params.resume}, "
            f"got data={params.data!r}"
        )
    if not tracking.has_adversarial_set(params.resume):
        raise ValueError(
            f"expected the resumed run {params.resume} to have logged {names.ADV_TESTING}, found "
            "none (it finished no image): start a new attack instead"
        )
    return run


def check_model(run: records.AttackRun, model_uri: str) -> None:
    """Raise ValueError unless ``model_uri`` is the model the resumed ``run`` attacked."""
    if model_uri != run.model_uri:
        raise ValueError(
            f"expected model={run.model_uri!r} as in the resumed run {run.run_id}, "
            f"got model={model_uri!r}"
        )


def finished(run: records.AttackRun, attacked: datasets.ImageSet) -> list[ImageResult]:
    """The results ``run`` logged in its (partial) ``adv_testing.tar.gz``, checked to be
    of the same images as ``attacked``."""
    adv = tracking.read_adversarial_set(run.run_id, attacked.images.shape[1:])
    logged = manifest.read(adv.manifest, source=f"the resumed run {run.run_id}")
    done = manifest.results(adv, logged, attacked.images)
    for result, source in zip(done, logged.sources, strict=True):
        if (
            source != attacked.sources[result.index]
            or result.label != attacked.labels[result.index]
        ):
            raise ValueError(
                f"expected image {result.index} of the resumed run {run.run_id} to be "
                f"{attacked.sources[result.index]}, got {source}: the data changed"
            )
    return done
