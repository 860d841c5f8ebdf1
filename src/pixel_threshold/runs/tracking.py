"""MLflow glue: one run per step, its parameters, lineage tags, finding upstream runs.

Every step run carries the tag ``step`` (train, attack, evaluate, main, compare), which
is how ``attack`` finds the latest train run and ``evaluate`` the latest attack run, whether
they were started by ``mlflow run``, by ``python entrypoints/...`` or inside ``main``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException

from pixel_threshold.artifacts import names, tarball
from pixel_threshold.data.datasets import ImageSet
from pixel_threshold.models.sources import first_line, once_more_if_cut
from pixel_threshold.runs import creation, generated_names, logins, outbox, races
from pixel_threshold.runs.failures import DESCRIPTION_TAG, failure_tags

Fits = Callable[[Run], str]
"""Why a run's model does not fit what a step needs; empty when it fits."""
STEP_TAG = "step"
MODEL_URI_TAG = "model_uri"
MODEL_KIND_TAG = "model_kind"
"""keras, pytorch, onnx, sklearn, pyfunc or http (`models.sources`)."""
MODEL_OUTPUTS_TAG = "model_outputs"
"""What the attacked model returns: probabilities, logits or log_probabilities."""
STRATEGY_TAG = "strategy"
BUDGET_TAG = "budget"
"""The budget that ran, resolved: ``<max_iter>x<popsize>`` (the params say 0 for a
strategy's default)."""
MODEL_VERSION_TAG = "model_version"
"""A registered model's version, resolved (``models:/name@alias`` says no number)."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
"""The experiment kind under which MLflow's UI lists runs as "Training runs" (its GenAI
view, "Evaluation runs", is what an experiment without the tag gets)."""
DATA_TAG = "data"
"""The attacked data exactly as given (``mlflow run`` logs parameters shell-quoted)."""
TRAIN_RUN_TAG = "train_run_id"
ATTACK_RUN_TAG = "attack_run_id"
ATTACK_RUNS_TAG = "attack_run_ids"
"""A report's attack runs, comma-separated."""
REPORT_RUN_TAG = "report_run_id"
SOURCE_COMMIT_TAG = "mlflow.source.git.commit"
MODEL_ARTIFACT = "model"
RUN_NAME_TAG = "mlflow.runName"
FAILED_NAME_LENGTH = 120
SERVER_PROBE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
"""MLflow's HTTP settings for the first request to a tracking server: no retries, a
short timeout (MLflow's defaults retry a server that is down for about 4 minutes)."""


@contextmanager
def step_run(step: str) -> Iterator[mlflow.ActiveRun]:
    """The run of one step, ended FINISHED, FAILED if the body raises (with the error
    recorded: `record_failure`), or KILLED if it is interrupted (Ctrl-C, SIGTERM).

    A child of the active run if there is one (``main``), else the run ``mlflow run``
    created for this process (``MLFLOW_RUN_ID``), else a new run (made once though the
    request creating it is sent twice: `creation`). A top-level step first checks that a
    tracking server answers. Every request after the run starts is the step's: one that
    fails fails the step with its error recorded. A run's end that the tracking server
    cannot take is kept in the outbox (`_end`).
    """
    nested = mlflow.active_run() is not None
    if not nested:
        check_server(mlflow.get_tracking_uri())
    run = creation.start(nested)
    try:
        creation.end_copies(run)
        mlflow.set_tag(STEP_TAG, step)
        _mark_model_development(run.info.experiment_id)
        yield run
    except KeyboardInterrupt:
        _end(run.info.run_id, RunStatus.KILLED)
        raise
    except Exception as error:
        _end(run.info.run_id, RunStatus.FAILED, failed=(step, error))
        raise
    _end(run.info.run_id, RunStatus.FINISHED)


def _mark_model_development(experiment_id: str) -> None:
    """Tag the experiment as model development, so that MLflow's UI lists its runs as
    training runs; an experiment whose kind someone set keeps it."""
    experiment = mlflow.get_experiment(experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client = mlflow.MlflowClient()
        races.written(
            lambda: client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT)
        )


def log_attacked_data(attacked: ImageSet, data: str) -> None:
    """The attacked images and labels as the run's dataset input (the runs table's
    Dataset column), named after ``data``; the runs of an experiment share the dataset
    (`races`)."""
    from mlflow.data.numpy_dataset import from_numpy

    dataset = from_numpy(
        attacked.images, targets=attacked.labels, source=_dataset_source(data), name=data
    )
    races.written(lambda: mlflow.log_input(dataset, context="attack"))


def _dataset_source(data: str) -> str:
    path = Path(data)
    return str(path.resolve()) if path.exists() else data


def _end(run_id: str, status: int, *, failed: tuple[str, Exception] | None = None) -> None:
    """End the active run with ``status``, a failed step's error recorded first
    (``failed``: the step and its error, `record_failure`). A finished step's end waits
    for the tracking server as MLflow's retries do; a failed or interrupted one's does
    not: a server that does not answer may be why the step stopped. A request whose
    answer was cut off mid-way is made once more (`sources.once_more_if_cut`). If the
    server does not take the end, keep it in the outbox (`outbox.keep_end`), to be
    uploaded with whatever else the run kept there, and say so: on stderr for a step
    that stopped (its own error follows), as `outbox.UploadFailed` for a finished one
    (the server does not hold all of it)."""
    refused: list[Exception] = []
    ending = RunStatus.to_string(status)
    finished = status == RunStatus.FINISHED
    with nullcontext() if finished else variables_set(SERVER_PROBE):
        if failed is not None:
            try:
                once_more_if_cut(
                    lambda: record_failure(run_id, *failed), f"recording why run {run_id} failed"
                )
            except Exception as unrecorded:
                refused.append(unrecorded)
        try:
            _leave(run_id, ending)
        except Exception as unended:
            refused.append(unended)
    if not refused:
        return
    tags = failure_tags(*failed) if failed is not None else {}
    folder = outbox.keep_end(run_id, mlflow.get_tracking_uri(), ending, tags)
    said = (
        f"the tracking server did not take the end of run {run_id} "
        f"({first_line(refused[0])}); it is kept in {folder}: once the server "
        f"answers, upload it with `{outbox.UPLOAD_COMMAND} {folder}`"
    )
    if finished:
        raise outbox.UploadFailed(said)
    print(said, file=sys.stderr)


def _leave(run_id: str, status: str) -> None:
    """``mlflow.end_run(status)``, which takes the run off the active runs whether the
    server answers or not; ending it is asked once more if the answer was cut off."""
    once_more_if_cut(
        lambda: mlflow.end_run(status),
        f"ending run {run_id}",
        again=lambda: mlflow.MlflowClient().set_terminated(run_id, status),
    )


def record_failure(run_id: str, step: str, error: Exception) -> None:
    """Store ``error``'s message where the MLflow UI shows it (`failure_tags`); a run
    still named by MLflow (`generated_names`) is renamed ``<step> failed: <message>``.
    Raises what the tracking server raises, at once (no retries)."""
    tags = failure_tags(step, error)
    with variables_set(SERVER_PROBE):
        client = mlflow.MlflowClient()
        for name, value in tags.items():
            client.set_tag(run_id, name, value)
        if generated_names.is_generated(client.get_run(run_id).info.run_name or ""):
            client.set_tag(run_id, RUN_NAME_TAG, _cut(tags[DESCRIPTION_TAG], FAILED_NAME_LENGTH))


def _cut(text: str, length: int) -> str:
    """``text`` in at most ``length`` characters, an ellipsis ending a cut one."""
    return text if len(text) <= length else text[: length - 1] + "…"


def record_refusal(step: str, params: Any, error: ValueError) -> None:
    """Record parameters refused before ``step`` started on the run ``mlflow run`` made
    for it (``MLFLOW_RUN_ID``): the step's tag, the parameters, the error
    (`record_failure`); end it FAILED. Best effort: the refusal itself matters more."""
    try:
        with variables_set(SERVER_PROBE), mlflow.start_run() as run:
            mlflow.set_tag(STEP_TAG, step)
            log_params(params)
            record_failure(run.info.run_id, step, error)
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
    except Exception as unrecorded:  # the refusal itself matters more than this one
        print(f"could not record the refusal on the run: {unrecorded}", file=sys.stderr)


def check_server(uri: str) -> None:
    """Raise ValueError within seconds if ``uri`` is an http(s) tracking server that
    does not answer, or holds a login (`logins.check_uri`); MLflow's exception if it
    refuses the login (`logins.refusal`). A local store needs no check."""
    logins.check_uri(uri)
    if not uri.startswith(logins.SERVER_SCHEMES):
        return
    try:
        with variables_set(SERVER_PROBE):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except MlflowException as error:
        if logins.refusal(error, uri):
            raise
        raise ValueError(
            f"expected an MLflow tracking server at MLFLOW_TRACKING_URI={uri!r}, but it did not "
            f"answer: is `mlflow server` running there? ({error.message})"
        ) from error


def log_params(params: Any) -> None:
    """Log a params dataclass, skipping names the run already has.

    ``mlflow run`` logs every parameter as the user typed it (``1e-3``) before the
    command starts; logging a differently written value (``0.001``) would fail.
    """
    run_id = _active_run_id()
    logged = mlflow.get_run(run_id).data.params
    mlflow.log_params(
        {name: value for name, value in dataclasses.asdict(params).items() if name not in logged}
    )


def log_skipped_images(skipped: Sequence[tuple[str, str]]) -> None:
    """The metric ``skipped_images`` (unreadable image files passed over) and, if any,
    ``skipped_images.csv`` listing each with the reason."""
    mlflow.log_metric("skipped_images", len(skipped))
    if skipped:
        with tempfile.TemporaryDirectory() as folder:
            tarball.write_table(
                Path(folder) / names.SKIPPED_IMAGES,
                {"file": [file for file, _ in skipped], "error": [why for _, why in skipped]},
            )
            mlflow.log_artifacts(folder)


def latest_run(step: str, experiment_id: str, *, fits: Fits | None = None) -> Run:
    """The ``step`` run of the experiment that finished last; raises ValueError naming
    the experiment, and any other experiment whose latest such run ``fits``
    (`no_runs_message`), if there is none."""
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=finished_filter(step),
        order_by=["attributes.end_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise ValueError(no_runs_message(f"a finished {step} run", step, experiment_id, fits))
    run: Run = runs[0]
    return run


def no_runs_message(wanted: str, step: str, experiment_id: str, fits: Fits | None = None) -> str:
    """Why ``wanted`` (finished ``step`` runs) was not found in the experiment, and
    the fix: run ``step`` there, or use an experiment whose latest such run ``fits``
    (``fits`` says why the others do not: ``(run) -> ''`` when it fits, else why not)."""
    message = (
        f"expected {wanted} in experiment {experiment_label(experiment_id)}, found none: "
        f"run the {step} entry point first"
    )
    others, unfit = [], []
    for experiment in mlflow.search_experiments():
        if experiment.experiment_id == experiment_id:
            continue
        runs = mlflow.search_runs(
            experiment_ids=[experiment.experiment_id],
            filter_string=finished_filter(step),
            order_by=["attributes.end_time DESC"],
            max_results=1,
            output_format="list",
        )
        why_not = fits(runs[0]) if runs and fits is not None else ""
        if runs and not why_not:
            others.append(experiment.name)
        elif runs:
            unfit.append(f"{experiment.name!r}: {why_not}")
    if others:
        listed = ", ".join(repr(name) for name in others)
        message += (
            f", or use the experiment that has them ({listed}): mlflow run --experiment-name "
            f"{others[0]} ... (a plain script: MLFLOW_EXPERIMENT_NAME={others[0]})"
        )
    elif unfit:
        message += f" (no other experiment's would do: {'; '.join(unfit)})"
    return message


def experiment_label(experiment_id: str) -> str:
    """``'Default' (id 0)``: an experiment as the UI lists it, and its id."""
    experiment = mlflow.get_experiment(experiment_id)
    return f"{experiment.name!r} (id {experiment_id})"


def experiment_id(name: str, default: str) -> str:
    """The id of the experiment ``name`` (a step's ``experiment_name``), or ``default``
    when ``name`` is empty; raises ValueError naming it if there is no such experiment."""
    if not name:
        return default
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        raise ValueError(f"expected an existing experiment, got experiment_name={name!r}")
    found: str = experiment.experiment_id
    return found


def finished_filter(step: str) -> str:
    """The search filter of a step's finished runs."""
    return f"tags.{STEP_TAG} = '{step}' and attributes.status = 'FINISHED'"


def named_run(run_id: str, step: str, *, param: str) -> Run:
    """The ``step`` run whose id the parameter ``param`` gives; raises ValueError,
    naming ``param``, if there is none or it is another step's."""
    try:
        run = mlflow.get_run(run_id)
    except MlflowException as error:
        raise ValueError(f"cannot read {param}={run_id!r}: {error.message}") from error
    if run.data.tags.get(STEP_TAG) != step:
        article = "an" if step[0] in "aeiou" else "a"
        raise ValueError(f"expected {param} to name {article} {step} run, got {param}={run_id!r}")
    return run


def has_adversarial_set(run_id: str) -> bool:
    """Whether the run logged ``adv_testing.tar.gz``."""
    logged = {item.path for item in mlflow.MlflowClient().list_artifacts(run_id)}
    return names.ADV_TESTING in logged


def download_adversarial_set(run_id: str, folder: Path) -> Path:
    """The run's ``adv_testing.tar.gz``, downloaded into ``folder`` (through the tracking
    server, if there is one)."""
    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=names.ADV_TESTING, dst_path=str(folder)
        )
    )


def read_adversarial_set(run_id: str, shape: Sequence[int]) -> tarball.AdvTesting:
    """The run's ``adv_testing.tar.gz``, read with images of ``shape`` (H, W, C)."""
    with tempfile.TemporaryDirectory() as folder:
        path = download_adversarial_set(run_id, Path(folder))
        return tarball.read_adv_testing(path, Path(folder) / "extracted", shape=shape)


def model_version_tags(model_uri: str) -> dict[str, str]:
    """``model_version`` of a ``models:/name/version`` or ``models:/name@alias`` URI, as
    the registry resolves it now; none for another URI."""
    if not model_uri.startswith("models:/"):
        return {}
    name, _, rest = model_uri.removeprefix("models:/").partition("/")
    client = mlflow.MlflowClient()
    if "@" in name:
        name, alias = name.split("@", 1)
        return {MODEL_VERSION_TAG: str(client.get_model_version_by_alias(name, alias).version)}
    return {MODEL_VERSION_TAG: rest.split("/")[0]} if rest else {}


def model_run_id(model_uri: str) -> str | None:
    """The run that logged a ``runs:/`` or ``models:/`` model; None for a file."""
    if not model_uri.startswith(("runs:/", "models:/")):
        return None
    run_id: str | None = mlflow.models.get_model_info(model_uri).run_id
    return run_id


def _active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("expected an active MLflow run, found none")
    run_id: str = run.info.run_id
    return run_id


@contextmanager
def variables_set(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block; restore (or remove) them after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
