"""Nothing lost: the tracking server dies while an attack searches; the attack keeps its
results on disk, names the folder, and ``python -m pixel_threshold.runs.outbox`` uploads
them to the same run once a server is back on the same store (slow: two servers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pixel_threshold.runs import failures
from pixel_threshold.runs.params import EvaluateParams, TrainParams
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.train import run_train
from tests.tracking_store import SEARCHING, mlflow_server, wait_for

ROOT = Path(__file__).resolve().parents[1]


def _environment(server: str, outbox: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "MLFLOW_EXPERIMENT_NAME": "outbox",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # fail at once, not after minutes of retries
        "PIXEL_THRESHOLD_OUTBOX": str(outbox),
    }


@pytest.mark.slow
def test_results_survive_a_tracking_server_that_dies_before_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, artifacts = f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts"
    outbox = tmp_path / "outbox"
    with mlflow_server(backend, tmp_path / "first.log", artifacts=artifacts) as first:
        for name, value in _environment(first.url, outbox).items():
            monkeypatch.setenv(name, value)
        train_run_id = run_train(TrainParams(epochs=2))
        model = f"--model=runs:/{train_run_id}/model"
        options = [model, "--th=1", "--es=1", "--limit=100", "--max-iter=30", "--popsize=100"]
        attack = subprocess.Popen(
            [sys.executable, str(ROOT / "entrypoints" / "attack.py"), *options],
            cwd=tmp_path,
            env=_environment(first.url, outbox),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started = wait_for(attack, SEARCHING)
        first.kill()
    printed, rest = attack.communicate(timeout=300)
    stderr = (started + rest).decode(errors="replace")
    assert attack.returncode == 1, stderr[-3000:]
    (parcel,) = outbox.iterdir()
    run_id = parcel.name
    assert (
        f"They are kept in {parcel}: once the server answers, upload them with "
        f"`python -m pixel_threshold.runs.outbox {parcel}`"
    ) in stderr
    assert "Traceback" not in stderr
    assert not printed  # no outcome: the run did not finish
    with mlflow_server(backend, tmp_path / "second.log", artifacts=artifacts) as second:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", second.url)
        client = MlflowClient(second.url)
        assert "success_rate" not in client.get_run(run_id).data.metrics  # lost but for the parcel
        upload = subprocess.run(
            [sys.executable, "-m", "pixel_threshold.runs.outbox"],
            env=_environment(second.url, outbox),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert upload.returncode == 0, upload.stderr[-3000:]
        assert f"uploaded run {run_id} (adv_testing.tar.gz, " in upload.stdout
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert failures.ERROR_TAG not in run.data.tags
        assert run.data.metrics["images_attacked"] > 50
        assert {item.path for item in client.list_artifacts(run_id)} == {
            "adv_testing.tar.gz",
            "distance_metrics.csv.gz",
            "examples.png",
            "queries.png",
        }
        evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=run_id)))
    assert (
        evaluated.data.metrics["adversarial_accuracy"] == run.data.metrics["adversarial_accuracy"]
    )
    assert not outbox.exists() or not any(outbox.iterdir())
