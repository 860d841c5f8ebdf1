"""Runs as an earlier version logged them (`tests/fixtures/`), put into a tracking store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag

FIXTURES = Path(__file__).parent / "fixtures"


def log_fixture_run(folder: Path, experiment_id: str, model: str) -> str:
    """Create a run in the active store from ``folder`` (``run.json`` and ``artifacts/``),
    ``{model}`` in its parameters and tags replaced by ``model``; return its id."""
    logged = json.loads((folder / "run.json").read_text().replace("{model}", model))
    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=logged["run_name"])
    run_id: str = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[
            Metric(name, value, 0, step)
            for name, history in logged["metrics"].items()
            for step, value in history
        ],
        params=[Param(name, value) for name, value in logged["params"].items()],
        tags=[RunTag(name, value) for name, value in logged["tags"].items()],
    )
    client.log_artifacts(run_id, str(folder / "artifacts"))
    client.set_terminated(run_id, logged["status"])
    assert mlflow.get_run(run_id).info.status == RunStatus.to_string(
        RunStatus.from_string(logged["status"])
    )
    return run_id
