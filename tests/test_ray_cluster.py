"""A sharded attack on a real Ray head on 127.0.0.1, compared with the same attack run here.

Slow: the head takes seconds to start, and each worker process imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.entities import Run

from pixel_threshold.artifacts.tarball import AdvTesting, read_adv_testing
from pixel_threshold.data.datasets import digits
from pixel_threshold.models import small_cnn, training
from pixel_threshold.runs.params import AttackParams
from pixel_threshold.steps import sharding
from pixel_threshold.steps.attack import run_attack
from tests import model_kinds
from tests.ray_head import Head, ray_head
from tests.tracking_store import sqlite_experiment

pytestmark = pytest.mark.slow
LIMIT = 24
SHARD_SIZE = 3
BUSY = "ray::attack_shard"
"""A Ray worker's process title while it runs the shard task."""
TIMING = ("attack_seconds", "queries_per_second")


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    with ray_head(num_cpus=2) as running:
        yield running


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackParams]:
    root = tmp_path_factory.mktemp("tracking")
    split = digits()
    model = small_cnn.small_cnn((8, 8, 1), 10, seed=0)
    training.train_classifier(model, split.train_images, split.train_labels, epochs=3)
    model.save(root / "digits.keras")
    with sqlite_experiment(root, "sharding"):
        yield AttackParams(
            model=str(root / "digits.keras"), th=1, es=1, limit=LIMIT, max_iter=10, popsize=50
        )


@pytest.fixture(scope="module")
def local(params: AttackParams) -> Run:
    return mlflow.get_run(run_attack(params))


def _sharded(params: AttackParams, head: Head, **changes: Any) -> AttackParams:
    return dataclasses.replace(params, ray_address=head.address, shard_size=SHARD_SIZE, **changes)


def _files(run: Run, folder: Path) -> dict[str, bytes]:
    """Every file in the run's adv_testing.tar.gz (PNGs and manifest), by name."""
    tarball = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="adv_testing.tar.gz", dst_path=str(folder)
    )
    with tarfile.open(tarball) as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def _read(run: Run, folder: Path) -> AdvTesting:
    tarball = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="adv_testing.tar.gz", dst_path=str(folder)
    )
    return read_adv_testing(Path(tarball), folder / "extracted")


def _untimed(run: Run) -> dict[str, float]:
    return {name: value for name, value in run.data.metrics.items() if name not in TIMING}


def _busy_workers(head: Head) -> list[int]:
    """The head's worker processes running a shard task now."""
    parents: dict[int, int] = {}
    titles: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            )
            titles[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, IndexError, ValueError):
            continue

    def under_head(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == head.pid:
                return True
        return False

    return [pid for pid, title in titles.items() if title == BUSY and under_head(pid)]


class WorkerKiller(threading.Thread):
    """SIGKILLs the first worker of ``head`` seen running a shard, once, until stopped."""

    def __init__(self, head: Head) -> None:
        super().__init__(daemon=True)
        self.head = head
        self.stopped = threading.Event()
        self.killed: list[int] = []

    def run(self) -> None:
        while not self.killed and not self.stopped.is_set():
            busy = _busy_workers(self.head)
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                self.killed.append(busy[0])
            time.sleep(0.05)


def test_a_sharded_attack_logs_what_a_local_attack_does(
    head: Head, params: AttackParams, local: Run, tmp_path: Path
) -> None:
    sharded = mlflow.get_run(run_attack(_sharded(params, head)))
    assert sharded.info.status == "FINISHED"
    assert sharded.data.params["ray_address"] == head.address
    assert len(_files(local, tmp_path / "local")) == LIMIT + 1  # the PNGs and the manifest
    assert _files(sharded, tmp_path / "sharded") == _files(local, tmp_path / "local")
    assert _untimed(sharded) == _untimed(local)


def test_a_killed_worker_s_shard_runs_again_and_no_image_is_lost_or_repeated(
    head: Head, params: AttackParams, local: Run, tmp_path: Path
) -> None:
    killer = WorkerKiller(head)
    killer.start()
    sharded = mlflow.get_run(run_attack(_sharded(params, head)))
    killer.stopped.set()
    killer.join()
    assert len(killer.killed) == 1
    assert _files(sharded, tmp_path / "sharded") == _files(local, tmp_path / "local")
    assert _untimed(sharded) == _untimed(local)


def _interrupting_after(results: int, searching: Callable[..., Any]) -> Callable[..., Any]:
    """``sharding.searching`` whose search raises KeyboardInterrupt (as Ctrl-C does) once
    it has yielded ``results`` results."""

    @contextmanager
    def interrupting(*args: Any, **kwargs: Any) -> Iterator[Callable[..., Any]]:
        with searching(*args, **kwargs) as search:

            def stopping(samples: Any) -> Iterator[Any]:
                for count, result in enumerate(search(samples)):
                    if count == results:
                        raise KeyboardInterrupt
                    yield result

            yield stopping

    return interrupting


def _no_busy_worker(head: Head, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while _busy_workers(head):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_an_interrupted_sharded_attack_keeps_its_finished_shards_and_resumes(
    head: Head, params: AttackParams, local: Run, tmp_path: Path
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sharding, "searching", _interrupting_after(SHARD_SIZE, sharding.searching))
        with pytest.raises(KeyboardInterrupt):
            run_attack(_sharded(params, head))
    assert _no_busy_worker(head)  # the shards in flight were cancelled
    killed = mlflow.search_runs(filter_string="attributes.status = 'KILLED'", output_format="list")[
        0
    ]
    assert killed.data.tags["images_done"] == f"{SHARD_SIZE} of {LIMIT}"
    partial = _read(killed, tmp_path / "partial")
    full = _read(local, tmp_path / "full")
    rows = partial.column("index")
    assert len(rows) == SHARD_SIZE
    np.testing.assert_array_equal(partial.images, full.images[rows])
    for name, values in partial.manifest.items():
        if name != "file":  # files are numbered row by row
            assert values == [full.manifest[name][row] for row in rows]

    resumed = mlflow.get_run(run_attack(_sharded(params, head, resume=killed.info.run_id)))
    assert resumed.data.tags["resumed_from"] == killed.info.run_id
    assert _files(resumed, tmp_path / "resumed") == _files(local, tmp_path / "local")
    assert _untimed(resumed) == _untimed(local)


def test_a_model_of_another_kind_is_loaded_by_each_worker_itself(
    head: Head, params: AttackParams, tmp_path: Path
) -> None:
    """An ONNX model (the digits MLP in ONNX Runtime): each worker loads the file itself;
    the sharded run's adversarial set and metrics equal a local run's."""
    onnx_params = dataclasses.replace(
        params,
        model=model_kinds.save_onnx(model_kinds.digits_mlp(), tmp_path),
        input_range="0,1",
        es=2,
        max_iter=100,
        popsize=1,
    )
    here = mlflow.get_run(run_attack(onnx_params))
    sharded = mlflow.get_run(run_attack(_sharded(onnx_params, head)))
    assert sharded.data.tags["model_kind"] == "onnx"
    assert _files(sharded, tmp_path / "sharded") == _files(here, tmp_path / "here")
    assert _untimed(sharded) == _untimed(here)
