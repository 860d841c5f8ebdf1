"""Throw-away MLflow stores for tests: sqlite in a temporary folder, and ``mlflow server``
on one; and reading a step's output until it says it searches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.ray_head import free_port

SERVER_START_SECONDS = 120
SEARCHING = b"pixel th=1 es=1:"
"""The progress bar's start: the attack has made its last request before the search."""


@contextmanager
def sqlite_experiment(root: Path, name: str) -> Iterator[str]:
    """Create experiment ``name`` in a sqlite store under ``root`` and make it the
    tracking URI and experiment of the block (``MLFLOW_TRACKING_URI``,
    ``MLFLOW_EXPERIMENT_ID``); yield its id."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment_id = MlflowClient(uri).create_experiment(
        name, artifact_location=(root / "artifacts").as_uri()
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
        yield experiment_id


@dataclass(frozen=True)
class Server:
    """A running ``mlflow server``: its URL and process (the leader of its group)."""

    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """Kill the server and its workers at once (SIGKILL), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextmanager
def mlflow_server(
    backend_uri: str, log: Path, *, artifacts: Path | None = None
) -> Iterator[Server]:
    """``mlflow server`` of ``backend_uri`` on 127.0.0.1 at a free port, one worker,
    proxying artifacts to ``artifacts`` if given, its output in ``log``; yields it once
    ``/health`` answers and stops it after (if it still runs)."""
    command = ["server", "--backend-store-uri", backend_uri]
    command += ["--artifacts-destination", str(artifacts)] if artifacts else []
    with _serving(command, "/health", log, port_option="--port", extra=["--workers", "1"]) as up:
        yield up


@contextmanager
def model_server(model_uri: str, log: Path) -> Iterator[Server]:
    """``mlflow models serve`` of ``model_uri`` (this environment: ``--env-manager
    local``) on 127.0.0.1 at a free port, its output in ``log``; yields it once ``/ping``
    answers and stops it after."""
    command = ["models", "serve", "-m", model_uri, "--env-manager", "local"]
    with _serving(command, "/ping", log, port_option="-p") as up:
        yield up


@contextmanager
def _serving(
    command: list[str], health: str, log: Path, *, port_option: str, extra: Sequence[str] = ()
) -> Iterator[Server]:
    server = start_mlflow(
        command, health, log, port=free_port(), port_option=port_option, extra=extra
    )
    try:
        yield server
    finally:
        stop(server)


def start_mlflow(
    command: Sequence[str],
    health: str,
    log: Path,
    *,
    port: int,
    port_option: str = "--port",
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    account: Mapping[str, Any] | None = None,
) -> Server:
    """Start ``mlflow <command>`` on 127.0.0.1 at ``port`` in a session of its own, its
    output appended to ``log``, with ``env`` added to this environment and as
    ``account`` (`subprocess.Popen`'s ``user``, ``group``, ``extra_groups``) if given;
    return it once ``health`` answers (the test fails if it exits or does not answer
    within `SERVER_START_SECONDS`)."""
    bin_dir = str(Path(sys.executable).parent)
    with open(log, "a") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                *command,
                "--host",
                "127.0.0.1",
                port_option,
                str(port),
                *extra,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log.parent,
            env={
                **os.environ,
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                **(env or {}),
            },
            **(account or {}),
        )
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        _wait_until_up(server, health, log)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server) -> None:
    """Stop ``server`` and its workers (SIGTERM, SIGKILL after 30 s) if it still runs."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_until_up(server: Server, health: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"mlflow exited with {server.process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}{health}", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(
        f"mlflow did not answer at {server.url} within {SERVER_START_SECONDS} s:\n{log.read_text()}"
    )


def wait_for(process: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """Read ``process``'s stderr until ``marker`` appears; return what was read."""
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + 300
    while marker not in seen:
        chunk = os.read(process.stderr.fileno(), 4096)
        assert chunk and time.monotonic() < deadline, seen.decode(errors="replace")[-3000:]
        seen += chunk
    return seen
