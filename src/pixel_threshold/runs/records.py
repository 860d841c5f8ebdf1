"""Typed records of logged runs: the one place that reads another run's parameters,
metrics and tags.

MLflow keeps parameters as text, and ``mlflow run`` logs them as the user typed them
(shell-quoted where needed). `AttackRun` and `TrainRun` read a run back as the step's
own parameters dataclass, with the tags and metrics the steps rely on, so that a field
renamed or added is seen by the type checker, and a run logged by an earlier version
still reads: a parameter such a version did not log takes the value that version ran
with (`EARLIER_VERSIONS`), every other one its default.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run

from pixel_threshold.attack.config import resolved_budget
from pixel_threshold.attack.strategies import strategy_name
from pixel_threshold.runs import tracking
from pixel_threshold.runs.params import AttackParams, TrainParams

P = TypeVar("P")
EARLIER_VERSIONS: Mapping[type, Mapping[str, Any]] = {
    AttackParams: {"loss": "probability", "resize": "stretch"},
}
"""What runs logged by earlier versions ran with, for parameters they did not log:
attack runs from before the ``loss`` parameter (2026-12-02) minimised p(true), today's
``loss=probability``; before ``resize`` (2026-12-06) a folder's images were stretched.
A parameter missing from a run and not listed here takes its default, which is what
those versions ran with."""


@dataclass(frozen=True, kw_only=True)
class LoggedRun:
    """Any run: its id, name, status and experiment."""

    run_id: str
    name: str
    status: str
    experiment_id: str

    @classmethod
    def of(cls, run: Run) -> LoggedRun:
        return cls(**_info(run))


@dataclass(frozen=True, kw_only=True)
class TrainRun(LoggedRun):
    """A train run: its parameters, and the model it logged."""

    params: TrainParams

    @classmethod
    def of(cls, run: Run) -> TrainRun:
        _check_step(run, "train")
        return cls(**_info(run), params=parsed(TrainParams, run))

    @property
    def model_uri(self) -> str:
        return f"runs:/{self.run_id}/{tracking.MODEL_ARTIFACT}"


@dataclass(frozen=True, kw_only=True)
class AttackRun(LoggedRun):
    """An attack run: its parameters as given, the model and data as resolved (tags
    ``model_uri`` and ``data``), its train run if the model came from one, its metrics
    (their last values), and the model's registry version, kind and outputs as tagged
    (none or empty for a run of a version that did not tag them)."""

    params: AttackParams
    model_uri: str
    data: str
    train_run_id: str | None
    metrics: Mapping[str, float]
    model_version: str | None = None
    model_kind: str = ""
    model_outputs: str = ""
    source_commit: str | None = None
    """The git commit ``mlflow run`` ran (its tag ``mlflow.source.git.commit``)."""

    @classmethod
    def of(cls, run: Run) -> AttackRun:
        _check_step(run, "attack")
        params = parsed(AttackParams, run)
        tags = run.data.tags
        return cls(
            **_info(run),
            params=params,
            model_uri=tags.get(tracking.MODEL_URI_TAG, params.model),
            data=tags.get(tracking.DATA_TAG, params.data),
            train_run_id=tags.get(tracking.TRAIN_RUN_TAG),
            metrics=dict(run.data.metrics),
            model_version=tags.get(tracking.MODEL_VERSION_TAG),
            model_kind=tags.get(tracking.MODEL_KIND_TAG, ""),
            model_outputs=tags.get(tracking.MODEL_OUTPUTS_TAG, ""),
            source_commit=tags.get(tracking.SOURCE_COMMIT_TAG),
        )

    @property
    def budget(self) -> tuple[int, int]:
        """``(max_iter, popsize)`` as resolved (the params say 0 for a strategy's default)."""
        return resolved_budget(self.params.es, self.params.max_iter, self.params.popsize)

    @property
    def loss(self) -> str:
        """The loss that ran: as given, or the default of its run (`losses.default_loss`)
        when it named none."""
        return self.params.resolved_loss

    @property
    def strategy(self) -> str:
        """The strategy's name; empty for one this version does not know."""
        return strategy_name(self.params.es)

    @property
    def th_max(self) -> int | None:
        """A ``th=-1`` run's largest th as resolved (its metric ``th_max``); None at a
        fixed th."""
        th_max = self.metrics.get("th_max")
        return None if th_max is None else int(th_max)

    def metric(self, name: str) -> float:
        """The metric's last value; NaN if the run has none (``th_max`` at a fixed th)."""
        return self.metrics.get(name, math.nan)


def parsed(params_type: type[P], run: Run) -> P:
    """``run``'s logged parameters as ``params_type``: each field's text (unquoted) read
    as the field's type; a field the run lacks as `EARLIER_VERSIONS` says, else its
    default. Raises ValueError naming a value that does not read."""
    logged = run.data.params
    earlier = EARLIER_VERSIONS.get(params_type, {})
    types = typing.get_type_hints(params_type)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(typing.cast(Any, params_type)):
        if field.name not in logged:
            if field.name in earlier:
                values[field.name] = earlier[field.name]
            continue
        text = _unquoted(logged[field.name])
        try:
            values[field.name] = types[field.name](text)
        except ValueError:
            raise ValueError(
                f"expected {field.name} of run {run.info.run_id} to be "
                f"{types[field.name].__name__}, got {field.name}={text!r}"
            ) from None
    return params_type(**values)


def _unquoted(text: str) -> str:
    """A parameter as given: ``mlflow run`` logs ``'a b'`` for the value ``a b``."""
    if text[:1] in ("'", '"'):
        try:
            words = shlex.split(text)
        except ValueError:
            return text
        if len(words) == 1:
            return words[0]
        if not words:
            return ""
    return text


def _info(run: Run) -> dict[str, str]:
    return {
        "run_id": run.info.run_id,
        "name": run.info.run_name or "",
        "status": run.info.status,
        "experiment_id": run.info.experiment_id,
    }


def _check_step(run: Run, step: str) -> None:
    tagged = run.data.tags.get(tracking.STEP_TAG)
    if tagged != step:
        article = "an" if step[0] in "aeiou" else "a"
        raise ValueError(
            f"expected run {run.info.run_id} to be {article} {step} run, got step {tagged!r}"
        )


def attack_run(run_id: str, *, param: str) -> AttackRun:
    """The attack run whose id the parameter ``param`` gives (`tracking.named_run`)."""
    return AttackRun.of(tracking.named_run(run_id, "attack", param=param))


def finished_attack_run(run_id: str, *, param: str) -> AttackRun:
    """The finished attack run whose id the parameter ``param`` gives; raises ValueError
    naming ``param`` for any other run."""
    run = attack_run(run_id, param=param)
    if run.status != "FINISHED":
        raise ValueError(
            f"expected {param} to name finished attack runs, got {run_id!r} ({run.status})"
        )
    return run


def latest_attack_run(experiment_id: str) -> AttackRun:
    """The experiment's attack run that finished last (`tracking.latest_run`)."""
    return AttackRun.of(tracking.latest_run("attack", experiment_id))


def finished_attack_runs(experiment_id: str) -> list[AttackRun]:
    """Every finished attack run of the experiment, oldest first; raises ValueError, as
    `tracking.no_runs_message` says, if there is none."""
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=tracking.finished_filter("attack"),
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    if not runs:
        raise ValueError(tracking.no_runs_message("finished attack runs", "attack", experiment_id))
    return [AttackRun.of(run) for run in runs]


def read_attack_run(run_id: str) -> AttackRun:
    """The attack run ``run_id`` (a step's own child run, known to exist)."""
    return AttackRun.of(mlflow.get_run(run_id))


def latest_train_run(
    experiment_id: str, *, fits: Callable[[TrainRun], str] | None = None
) -> TrainRun:
    """The experiment's train run that finished last (`tracking.latest_run`); when there
    is none, the error suggests other experiments whose latest train run ``fits`` (an
    empty answer: it fits; else why not)."""
    tracked = None if fits is None else (lambda run: fits(TrainRun.of(run)))
    return TrainRun.of(tracking.latest_run("train", experiment_id, fits=tracked))


def train_run_or_none(run_id: str) -> TrainRun | None:
    """The run ``run_id`` as a train run; None if it is another step's or no step's (a
    model logged by hand)."""
    run = mlflow.get_run(run_id)
    if run.data.tags.get(tracking.STEP_TAG) != "train":
        return None
    return TrainRun.of(run)


def metric_history(run_id: str, name: str) -> list[tuple[int, float]]:
    """Every ``(step, value)`` of the run's metric ``name``, in step order; empty if it
    has none."""
    history = MlflowClient().get_metric_history(run_id, name)
    return sorted((point.step, point.value) for point in history)
