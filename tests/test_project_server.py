"""The pipeline against a real ``mlflow server`` (slow: the server takes ~15 s to start),
and a server that is down (fast: a clear error, not MLflow's minutes of retries)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.keras
import pytest
from mlflow import MlflowClient

from pixel_threshold.artifacts.tarball import read_adv_testing
from pixel_threshold.runs import tracking
from tests import entry_points
from tests.tracking_store import mlflow_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("server")
    backend = f"sqlite:///{folder / 'server.db'}"
    with mlflow_server(backend, folder / "server.log", artifacts=folder / "artifacts") as running:
        yield running.url


@pytest.mark.slow
def test_main_against_a_tracking_server(server: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(ROOT),
            "-e",
            "main",
            "--env-manager",
            "local",
            "--experiment-name",
            "server",
            "-P",
            "th_values=2",
            "-P",
            "es_values=1",
            "-P",
            "limit=6",
            "-P",
            "epochs=1",
            "-P",
            "max_iter=3",
            "-P",
            "popsize=10",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("server")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    by_step = {run.data.tags[tracking.STEP_TAG]: run for run in runs}
    assert sorted(by_step) == ["attack", "evaluate", "main", "report", "train"]
    assert all(run.info.status == "FINISHED" for run in runs)
    attack, evaluate = by_step["attack"], by_step["evaluate"]
    assert (
        evaluate.data.metrics["adversarial_accuracy"] == attack.data.metrics["adversarial_accuracy"]
    )
    assert "adv_testing.tar.gz" in {item.path for item in client.list_artifacts(attack.info.run_id)}
    compared = {item.path for item in client.list_artifacts(by_step["main"].info.run_id)}
    assert {"comparison.csv", "queries.png"} <= compared  # manifests read through the server
    reported = {item.path for item in client.list_artifacts(by_step["report"].info.run_id)}
    assert {"report.html", "report.md"} <= reported  # the tarballs read through the server
    assert not (tmp_path / "mlruns").exists()  # artifacts went to the server


def _mlflow_run(server: str, folder: Path, entry_point: str, **params: object) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry_point]
    command += ["--env-manager", "local", "--experiment-name", "chain"]
    command += [f"-P{name}={value}" for name, value in params.items()]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_train_attack_evaluate_against_a_tracking_server(server: str, tmp_path: Path) -> None:
    _mlflow_run(server, tmp_path, "train", epochs=1)
    _mlflow_run(server, tmp_path, "attack", th=2, limit=8, max_iter=3, popsize=10)
    _mlflow_run(server, tmp_path, "evaluate")
    _mlflow_run(server, tmp_path, "compare")
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("chain")
    assert experiment is not None
    runs = {
        run.data.tags[tracking.STEP_TAG]: run
        for run in client.search_runs([experiment.experiment_id])
    }
    assert sorted(runs) == ["attack", "compare", "evaluate", "train"]
    assert all(run.info.status == "FINISHED" for run in runs.values())
    train, attack, evaluate = runs["train"], runs["attack"], runs["evaluate"]
    assert attack.data.tags[tracking.TRAIN_RUN_TAG] == train.info.run_id
    assert evaluate.data.tags[tracking.ATTACK_RUN_TAG] == attack.info.run_id
    mlflow.set_tracking_uri(server)
    try:
        model = mlflow.keras.load_model(f"runs:/{train.info.run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    assert model.input_shape == (None, 8, 8, 1)
    tarball = client.download_artifacts(attack.info.run_id, "adv_testing.tar.gz", str(tmp_path))
    adv = read_adv_testing(Path(tarball), tmp_path / "extracted", shape=(8, 8, 1))
    assert adv.column("index").tolist() == list(range(8))
    assert {item.path for item in client.list_artifacts(evaluate.info.run_id)} == {
        "confusion_matrix_clean.csv",
        "confusion_matrix_adversarial.csv",
        "confusion_matrix_clean.png",
        "confusion_matrix_adversarial.png",
    }
    table = client.download_artifacts(runs["compare"].info.run_id, "comparison.csv", str(tmp_path))
    with open(table) as handle:
        assert [row["attack_run_id"] for row in csv.DictReader(handle)] == [attack.info.run_id]
    assert (
        evaluate.data.metrics["adversarial_accuracy"] == attack.data.metrics["adversarial_accuracy"]
    )
    assert not (tmp_path / "mlruns").exists()  # every artifact went through the server


def test_a_server_that_is_down_gives_a_clear_error_without_retries(tmp_path: Path) -> None:
    """A tracking server that takes connections and answers none: one request, no
    retries (MLflow's default retries would take about 4 minutes), a clear error."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections = []

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connections.append(connection)
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    try:
        done = entry_points.run("evaluate", cwd=tmp_path, env=env, timeout=300)
    finally:
        listener.close()
    assert done.returncode == 1
    assert f"expected an MLflow tracking server at MLFLOW_TRACKING_URI='{uri}'" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(connections) == 1  # one try: no retries
