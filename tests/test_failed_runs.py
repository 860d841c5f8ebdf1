"""A failed step's run says why, where the MLflow UI shows it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from pixel_threshold.runs import failures, outbox, tracking
from pixel_threshold.runs.params import AttackParams, CompareParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.compare import run_compare
from tests.ray_head import free_port
from tests.tracking_store import sqlite_experiment

BAD_TH = "expected th >= 1 or th=-1 (each image's smallest), got th=0"


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    with sqlite_experiment(tmp_path, "failed") as experiment_id:
        yield experiment_id


def test_a_failed_run_is_named_after_its_error_and_describes_it(experiment: str) -> None:
    with pytest.raises(ValueError, match="got th=0"):
        run_attack(AttackParams(th=0))
    (run,) = mlflow.search_runs([experiment], output_format="list")
    assert run.info.status == "FAILED"
    assert run.info.run_name == f"attack failed: {BAD_TH}"
    assert run.data.tags[failures.DESCRIPTION_TAG] == f"attack failed: {BAD_TH}"
    assert run.data.tags[failures.ERROR_TAG] == BAD_TH


def test_a_failed_run_keeps_the_name_a_person_gave_it(
    experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as `mlflow run --run-name ci-smoke` hands its run to the command
    given = mlflow.MlflowClient().create_run(experiment, run_name="ci-smoke")
    monkeypatch.setenv("MLFLOW_RUN_ID", given.info.run_id)
    with pytest.raises(RuntimeError), tracking.step_run("compare"):
        raise RuntimeError("the disk is full")
    failed = mlflow.get_run(given.info.run_id)
    assert failed.info.status == "FAILED"
    assert failed.info.run_name == "ci-smoke"
    assert failed.data.tags[failures.ERROR_TAG] == "RuntimeError: the disk is full"


def test_long_messages_are_cut_in_the_name_only(experiment: str) -> None:
    message = "expected " + "x" * 300
    with pytest.raises(ValueError), tracking.step_run("train"):
        raise ValueError(message)
    (run,) = mlflow.search_runs([experiment], output_format="list")
    assert run.info.run_name == f"train failed: {message}"[: tracking.FAILED_NAME_LENGTH - 1] + "…"
    assert run.data.tags[failures.ERROR_TAG] == message


def test_a_run_s_end_the_server_does_not_take_is_kept_and_uploaded_later(
    experiment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = os.environ["MLFLOW_TRACKING_URI"]
    monkeypatch.setenv(outbox.OUTBOX_VARIABLE, str(tmp_path / "outbox"))
    with pytest.raises(ValueError, match="got es=-1"), tracking.step_run("attack") as run:
        run_id = run.info.run_id
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # gone
        raise ValueError("got es=-1")
    folder = tmp_path / "outbox" / run_id
    said = capsys.readouterr().err
    assert f"the tracking server did not take the end of run {run_id} (" in said
    assert f"upload it with `python -m pixel_threshold.runs.outbox {folder}`" in said
    assert mlflow.MlflowClient(store).get_run(run_id).info.status == "RUNNING"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # back
    outbox.send(outbox.read_parcel(folder), end_run=True)
    ended = mlflow.get_run(run_id)
    assert ended.info.status == "FAILED"
    assert ended.data.tags[failures.ERROR_TAG] == "got es=-1"
    assert ended.data.tags[failures.DESCRIPTION_TAG] == "attack failed: got es=-1"
    assert not folder.exists()


def test_no_train_run_names_the_experiment_and_the_one_that_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    demo = client.create_experiment("pixel-threshold-demo")
    train = client.create_run(demo, tags={tracking.STEP_TAG: "train"})
    client.set_terminated(train.info.run_id, "FINISHED")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")
    fix = (
        "run the train entry point first, or use the experiment that has them "
        "('pixel-threshold-demo'): mlflow run --experiment-name pixel-threshold-demo ... "
        "(a plain script: MLFLOW_EXPERIMENT_NAME=pixel-threshold-demo)"
    )
    with pytest.raises(ValueError) as raised:
        run_attack(AttackParams())
    assert str(raised.value) == (
        f"expected a finished train run in experiment 'Default' (id 0), found none: {fix}"
    )
    with pytest.raises(ValueError) as raised:
        run_compare(CompareParams())
    assert str(raised.value).startswith(
        "expected finished attack runs in experiment 'Default' (id 0), found none: "
        "run the attack entry point first"
    )
    assert "use the experiment" not in str(raised.value)  # no experiment has attack runs


def test_the_no_train_run_hint_leaves_out_models_that_cannot_take_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    imagenet = client.create_experiment("imagenet-demo")
    train = client.create_run(imagenet, tags={tracking.STEP_TAG: "train"})
    client.log_param(train.info.run_id, "dataset", "imagenet-sample")
    client.set_terminated(train.info.run_id, "FINISHED")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")
    with pytest.raises(ValueError) as raised:
        run_attack(AttackParams(data="digits"))
    message = str(raised.value)
    assert "use the experiment" not in message
    assert message.endswith(
        "run the train entry point first (no other experiment's would do: 'imagenet-demo': "
        "its model takes (224, 224, 3) images (imagenet-sample), data='digits' has (8, 8, 1))"
    )
