"""A throw-away Ray head on 127.0.0.1, for the Ray tests and the scaling benchmark; and
free ports for the tests' servers.

Started as ``ray start --head --block``, which stops every process it started when it
is sent SIGTERM, so no ``ray stop`` (which stops every Ray process of the machine) is
needed. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray on the loopback address:
otherwise it takes the address of the default route, even when told 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pixel_threshold.runs.tracking import variables_set

LOOPBACK = "127.0.0.1"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
STARTED = "Ray runtime started"
START_SECONDS = 120
STOP_SECONDS = 60


@dataclass(frozen=True)
class Head:
    """A running head: its address (``127.0.0.1:port``) and the pid of ``ray start``,
    the parent of the head's processes."""

    address: str
    pid: int


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 (now)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def ray_head(num_cpus: int) -> Iterator[Head]:
    """A Ray head with ``num_cpus`` CPUs listening on 127.0.0.1; yields it, then stops
    it and removes its files, whatever happened.

    Within the block this process has ``RAY_ENV`` too: a driver that connects to the
    head must also take 127.0.0.1 as its address, or its connection hangs.
    """
    folder = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit 107 bytes
    address = f"{LOOPBACK}:{free_port()}"
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        f"--num-cpus={num_cpus}",
        f"--port={address.rsplit(':', 1)[1]}",
        f"--node-ip-address={LOOPBACK}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={folder}",
    ]
    head = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **RAY_ENV},
        text=True,
    )
    log: list[str] = []
    assert head.stdout is not None
    threading.Thread(target=lambda: log.extend(head.stdout or ()), daemon=True).start()
    try:
        with variables_set(RAY_ENV):
            _wait_started(head, log)
            yield Head(address, head.pid)
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_started(head: subprocess.Popen[str], log: list[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not any(STARTED in line for line in log):
        if head.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Ray head did not start:\n{''.join(log)[-3000:]}")
        time.sleep(0.2)
