"""Answers a tracking server killed or restarted under a team's load cuts off. A model
load or a run's end cut off mid-answer is made once more
(`models.sources.once_more_if_cut`): MLflow retries a server that does not answer, not
an answer that stops half-way. Any other request of a step cut off fails the step, its
run saying why; the outcome printed after the step is not the step's. A run created by
the server whose answer never came is created again by MLflow's retry; the first one is
ended as a copy (`runs.creation`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.entities import Run

from pixel_threshold.models import loading
from pixel_threshold.models.options import ModelOptions
from pixel_threshold.models.scoring import Classifier
from pixel_threshold.models.small_cnn import small_cnn
from pixel_threshold.runs import creation, outbox, outcome, tracking
from pixel_threshold.runs.failures import DESCRIPTION_TAG, ERROR_TAG
from tests.cutting_proxy import Cuts, cutting_proxy
from tests.tracking_store import mlflow_server

RUN_ANSWER = "/api/2.0/mlflow/runs/get"
"""The run a ``runs:/`` model URI names, read before anything is downloaded."""
MODEL_FILE = "model.keras"
"""The model's file, downloaded through the server's artifact proxy."""
RUN_CREATED = "/api/2.0/mlflow/runs/create"
RUN_ENDED = "/api/2.0/mlflow/runs/update"
EXPERIMENT_READ = "/api/2.0/mlflow/experiments/get"
"""Read as a run starts (MLflow checks ``MLFLOW_EXPERIMENT_ID``), then by the step once
its run is created (its experiment's kind)."""
COPIES_SEARCHED = "/api/2.0/mlflow/runs/search"
"""Made by a top-level step once its run is created, looking for copies of it."""


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A tracking server (sqlite, proxied artifacts) holding a small Keras model: its URL
    and the model's ``runs:/`` URI."""
    folder = tmp_path_factory.mktemp("cut-answers")
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    with mlflow_server(backend, folder / "server.log", artifacts=folder / "artifacts") as server:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", server.url)
            with mlflow.start_run() as run:
                model = small_cnn((8, 8, 1), 10)
                loading.log_model(model, name="model", example=np.zeros((1, 8, 8, 1)))
        yield server.url, f"runs:/{run.info.run_id}/model"


def _load(proxy: str, model_uri: str, monkeypatch: pytest.MonkeyPatch) -> Classifier:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
    return loading.load_classifier(model_uri, ModelOptions())


@pytest.mark.parametrize("path", [RUN_ANSWER, MODEL_FILE])
def test_a_load_cut_off_once_is_made_again(
    served_model: tuple[str, str],
    path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, model_uri = served_model
    cuts = Cuts(path, times=1)
    with cutting_proxy(server, cuts) as proxy:
        classifier = _load(proxy, model_uri, monkeypatch)
    assert len(cuts.made) == 1 and path in cuts.made[0]
    scores = np.asarray(classifier(np.zeros((2, 8, 8, 1), dtype=np.float32)))
    assert scores.shape == (2, 10)
    assert f"loading model={model_uri!r} was cut off" in capsys.readouterr().err


def test_a_load_cut_off_twice_fails_naming_the_model(
    served_model: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, model_uri = served_model
    cuts = Cuts(RUN_ANSWER, times=3)
    with cutting_proxy(server, cuts) as proxy, pytest.raises(ValueError) as refused:
        _load(proxy, model_uri, monkeypatch)
    assert len(cuts.made) == 2
    assert f"cannot load model={model_uri!r}" in str(refused.value)
    assert "Connection broken" in str(refused.value)


def test_a_model_that_is_not_there_is_not_loaded_again(
    served_model: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = served_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    with pytest.raises(ValueError, match="cannot load model="):
        loading.load_classifier("runs:/" + "0" * 32 + "/model", ModelOptions())
    assert "was cut off" not in capsys.readouterr().err


@pytest.mark.parametrize("withheld", [True, False], ids=["answer-withheld", "answer-cut"])
@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "in-main"])
def test_a_run_created_twice_by_a_lost_answer_is_kept_once(
    served_model: tuple[str, str],
    nested: bool,
    withheld: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """MLflow's client sends a creation again whose answer was withheld; the step, one
    whose answer was cut off mid-way."""
    server, _ = served_model
    client = mlflow.MlflowClient(server)
    experiment_id = _new_experiment(server, f"created-twice-{nested}-{withheld}", monkeypatch)
    cuts = Cuts(RUN_CREATED, times=0, withheld=withheld)
    parent: mlflow.ActiveRun | None = None
    with cutting_proxy(server, cuts) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
        if nested:
            with tracking.step_run("main") as parent:
                cuts.times = 1  # the child's creation, not the parent's
                with tracking.step_run("attack") as step:
                    pass
        else:
            cuts.times = 1
            with tracking.step_run("attack") as step:
                pass
    assert cuts.made == [RUN_CREATED]
    kept = client.get_run(step.info.run_id)
    token = kept.data.tags[creation.CREATION_TAG]
    runs = client.search_runs([experiment_id], f"tags.{creation.CREATION_TAG} = '{token}'")
    (copy,) = [run for run in runs if run.info.run_id != kept.info.run_id]
    assert (kept.info.status, copy.info.status) == ("FINISHED", "KILLED")
    assert kept.data.tags[tracking.STEP_TAG] == "attack"
    assert tracking.STEP_TAG not in copy.data.tags
    assert copy.data.tags[creation.COPY_OF_TAG] == kept.info.run_id
    assert f"A copy of run {kept.info.run_id}" in copy.data.tags[DESCRIPTION_TAG]
    if parent is not None:
        assert copy.data.tags["mlflow.parentRunId"] == parent.info.run_id
    statuses = sorted(run.info.status for run in client.search_runs([experiment_id]))
    assert statuses == ["FINISHED"] * (2 if nested else 1) + ["KILLED"]
    assert f"the copy {copy.info.run_id} is ended KILLED" in capsys.readouterr().err


def _new_experiment(server: str, name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new experiment on ``server``, where the steps of the test go; no run of
    ``mlflow run``'s to take up."""
    experiment_id: str = mlflow.MlflowClient(server).create_experiment(name)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    return experiment_id


def _empty_step(server: str, cuts: Cuts, monkeypatch: pytest.MonkeyPatch) -> mlflow.ActiveRun:
    """An attack step that does nothing, its requests made through a proxy of ``server``
    that makes ``cuts``."""
    with cutting_proxy(server, cuts) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
        with tracking.step_run("attack") as step:
            pass
    done: mlflow.ActiveRun = step
    return done


def _only_run(server: str, experiment_id: str) -> Run:
    (run,) = mlflow.MlflowClient(server).search_runs([experiment_id])
    return run


@pytest.mark.parametrize(("path", "passed"), [(EXPERIMENT_READ, 1), (COPIES_SEARCHED, 0)])
def test_a_step_request_cut_off_fails_the_step_saying_why(
    served_model: tuple[str, str], path: str, passed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served_model
    experiment_id = _new_experiment(server, f"cut-step-{path.rsplit('/', 1)[-1]}", monkeypatch)
    cuts = Cuts(path, times=1, passed=passed)
    with cutting_proxy(server, cuts) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
        with (
            pytest.raises(mlflow.MlflowException, match="Connection broken"),
            tracking.step_run("attack"),
        ):
            pass
    assert len(cuts.made) == 1 and path in cuts.made[0]
    run = _only_run(server, experiment_id)
    assert run.info.status == "FAILED"
    assert "Connection broken" in run.data.tags[ERROR_TAG]
    assert run.data.tags[DESCRIPTION_TAG].startswith("attack failed: MlflowException: ")


def test_a_step_end_cut_off_is_made_once_more(
    served_model: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = served_model
    experiment_id = _new_experiment(server, "cut-end", monkeypatch)
    cuts = Cuts(RUN_ENDED, times=1)
    step = _empty_step(server, cuts, monkeypatch)
    assert cuts.made == [RUN_ENDED]
    assert mlflow.active_run() is None
    run = _only_run(server, experiment_id)
    assert (run.info.run_id, run.info.status) == (step.info.run_id, "FINISHED")
    assert f"ending run {step.info.run_id} was cut off" in capsys.readouterr().err


def test_an_outcome_cut_off_is_said_and_leaves_the_step_done(
    served_model: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = served_model
    _new_experiment(server, "cut-outcome", monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    with tracking.step_run("attack") as step:
        pass
    capsys.readouterr()
    cuts = Cuts(RUN_ANSWER, times=1)
    with cutting_proxy(server, cuts) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
        outcome.print_outcome(step.info.run_id)
    printed = capsys.readouterr()
    assert len(cuts.made) == 1 and printed.out == ""
    assert f"run {step.info.run_id} is logged, but its outcome is not printed" in printed.err
    assert "Connection broken" in printed.err
    assert mlflow.MlflowClient(server).get_run(step.info.run_id).info.status == "FINISHED"


def test_the_run_of_mlflow_run_taken_up_though_its_answer_was_cut_off(
    served_model: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = served_model
    experiment_id = _new_experiment(server, "taken-up", monkeypatch)
    made = mlflow.MlflowClient(server).create_run(experiment_id)  # as `mlflow run` does
    monkeypatch.setenv("MLFLOW_RUN_ID", made.info.run_id)
    cuts = Cuts(RUN_ANSWER, times=1)
    step = _empty_step(server, cuts, monkeypatch)
    assert len(cuts.made) == 1 and step.info.run_id == made.info.run_id
    run = _only_run(server, experiment_id)
    assert (run.info.run_id, run.info.status) == (made.info.run_id, "FINISHED")
    assert creation.CREATION_TAG not in run.data.tags
    assert "starting the step's run was cut off" in capsys.readouterr().err


def test_a_step_end_the_server_does_not_take_is_kept_and_said(
    served_model: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served_model
    experiment_id = _new_experiment(server, "end-kept", monkeypatch)
    monkeypatch.setenv(outbox.OUTBOX_VARIABLE, str(tmp_path))
    cuts = Cuts(RUN_ENDED, times=2)
    with cutting_proxy(server, cuts) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
        with (
            pytest.raises(outbox.UploadFailed, match="did not take the end of run") as kept,
            tracking.step_run("attack") as step,
        ):
            pass
    assert len(cuts.made) == 2 and mlflow.active_run() is None
    assert f"upload it with `{outbox.UPLOAD_COMMAND} {tmp_path / step.info.run_id}`" in str(
        kept.value
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    outbox.send(outbox.read_parcel(tmp_path / step.info.run_id), end_run=True)
    run = _only_run(server, experiment_id)
    assert (run.info.run_id, run.info.status) == (step.info.run_id, "FINISHED")
