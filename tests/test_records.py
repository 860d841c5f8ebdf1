"""Typed records of logged runs: parameters read back as the steps' own dataclasses,
from what ``mlflow run`` logs (shell-quoted text) and from runs of earlier versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pixel_threshold.runs import records, tracking
from pixel_threshold.runs.params import AttackParams, TrainParams
from tests.tracking_store import sqlite_experiment


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    with sqlite_experiment(tmp_path, "records") as experiment_id:
        yield experiment_id


def _run(experiment: str, step: str, params: dict[str, str], tags: dict[str, str]) -> str:
    client = MlflowClient()
    run_id: str = client.create_run(experiment, tags={tracking.STEP_TAG: step, **tags}).info.run_id
    for name, value in params.items():
        client.log_param(run_id, name, value)
    client.log_metric(run_id, "success_rate", 0.25)
    client.set_terminated(run_id)
    return run_id


def test_an_attack_run_as_mlflow_run_logs_it_reads_as_its_parameters(experiment: str) -> None:
    logged = {
        "model": "'/models/my model.keras'",  # mlflow run quotes what the shell would split
        "data": "'/data/two words'",
        "th": "3",
        "es": "2",
        "max_iter": "0",
        "popsize": "0",
        "target": "-1",
        "loss": "margin",
        "resume": "",
    }
    run = records.attack_run(_run(experiment, "attack", logged, {}), param="run")
    assert run.params.model == "/models/my model.keras"
    assert run.data == "/data/two words"  # no data tag: the parameter
    assert (run.params.th, run.params.es, run.budget) == (3, 2, (10_000, 1))
    assert run.metric("success_rate") == 0.25


def test_an_attack_run_from_before_the_loss_parameter_ran_with_probability(
    experiment: str,
) -> None:
    logged = {"th": "1", "es": "1", "max_iter": "100", "popsize": "400", "limit": "50"}
    tags = {tracking.MODEL_URI_TAG: "runs:/abc/model", tracking.DATA_TAG: "digits"}
    run = records.attack_run(_run(experiment, "attack", logged, tags), param="run")
    assert run.params.loss == "probability"  # the only objective before 2026-12-02
    assert run.params.batch_size == AttackParams().batch_size  # missing: the default
    assert (run.model_uri, run.budget, run.params.limit) == ("runs:/abc/model", (100, 400), 50)


def test_a_value_that_does_not_read_is_refused_naming_it(experiment: str) -> None:
    run_id = _run(experiment, "attack", {"th": "three"}, {})
    with pytest.raises(ValueError, match=f"expected th of run {run_id} to be int, got th='three'"):
        records.attack_run(run_id, param="run")


def test_a_train_run_reads_as_its_parameters_and_model(experiment: str) -> None:
    logged = {"dataset": "digits", "learning_rate": "1e-3", "epochs": "3"}
    run_id = _run(experiment, "train", logged, {})
    run = records.train_run_or_none(run_id)
    assert run is not None
    assert run.params == TrainParams(learning_rate=0.001, epochs=3)
    assert run.model_uri == f"runs:/{run_id}/model"
    assert records.latest_train_run(experiment) == run
    assert records.train_run_or_none(_run(experiment, "attack", {}, {})) is None


def test_a_run_of_another_step_is_refused(experiment: str) -> None:
    run_id = _run(experiment, "train", {}, {})
    with pytest.raises(ValueError, match="expected run_ids to name an attack run"):
        records.attack_run(run_id, param="run_ids")
    with pytest.raises(ValueError, match="to be an attack run, got step 'train'"):
        records.AttackRun.of(mlflow.get_run(run_id))
