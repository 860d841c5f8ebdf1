"""The pipeline against a real ``mlflow server`` (slow: the server takes ~15 s to start)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pixel_threshold import tracking

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("server")
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(1)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=30)


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
    assert sorted(by_step) == ["attack", "evaluate", "main", "train"]
    assert all(run.info.status == "FINISHED" for run in runs)
    attack, evaluate = by_step["attack"], by_step["evaluate"]
    assert (
        evaluate.data.metrics["adversarial_accuracy"] == attack.data.metrics["adversarial_accuracy"]
    )
    assert "adv_testing.tar.gz" in {item.path for item in client.list_artifacts(attack.info.run_id)}
    assert not (tmp_path / "mlruns").exists()  # artifacts went to the server
