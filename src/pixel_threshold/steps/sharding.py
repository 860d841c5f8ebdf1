"""Where an attack's images are searched: here, or in shards on a Ray cluster.

With ``ray_address`` empty the attack step runs the core on the classifier it loaded.
With ``ray_address`` set, the driver (the attack step's process) cuts the images into
shards of ``shard_size``, Ray tasks attack them, and the driver takes their results
back as shards finish; it alone talks to MLflow. Only this module imports Ray, and
only then: the core never does.

What travels: the model once, as the bytes of a ``.keras`` file (``ray.put``; a worker
never reads the tracking server), this package's code (Ray's ``py_modules``, so the
workers run the driver's code), the core's configuration, and each shard's samples;
each task returns its shard's ``ImageResult``s. A worker process loads the model for
its first shard and keeps it for the next. A task whose worker process or node dies is
re-run by Ray. Every image's search is seeded by (seed, index) and does not depend on
the images around it, so a sharded run's results equal a local run's, bit for bit,
wherever the workers compute the model's outputs as the driver does (same kind of
processor and TensorFlow build).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

import pixel_threshold
from pixel_threshold.attack import AttackConfig, ImageResult, PixelThresholdAttack, Sample
from pixel_threshold.models import loading
from pixel_threshold.models.backends.http import TOKEN_VARIABLE
from pixel_threshold.models.classifier import CompiledClassifier
from pixel_threshold.models.options import ModelOptions
from pixel_threshold.models.scoring import Classifier
from pixel_threshold.runs import logins

Search = Callable[[Iterable[Sample]], Iterator[ImageResult]]
"""Attacks samples; yields each image's result once it is final, in any order."""

RAY_INSTALL = "pip install '.[ray]'"
TASK_RETRIES = 3
"""How many times Ray re-runs a shard whose worker process or node died."""
SHARDS_PER_SLOT = 2
"""Shards in flight per worker slot: one running and one queued, so that no worker
waits for the driver, while the images of the rest stay on the driver."""
CONNECT_SECONDS = 10
"""How long a ``host:port`` has to accept a connection (Ray itself waits minutes)."""
WAIT_SECONDS = 0.5
"""The driver's longest wait for a shard at a time, so that it reacts to Ctrl-C and
SIGTERM within that."""
TRACKING_URI = "MLFLOW_TRACKING_URI"
WORKER_ENV = {
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
"""A task holds one CPU, and TensorFlow in its worker uses one thread: N workers on
an N-core node do not fight over the cores (TensorFlow's default is a thread per
core in every process)."""


@dataclass(frozen=True)
class WorkerModel:
    """How a worker gets and calls the model: a Keras model from the bytes of its
    ``.keras`` file (``digest``, their sha256, names it in a worker's cache), called as
    the driver's compiled classifier is; any other kind loaded by the worker itself from
    ``uri`` with ``options``, as the driver loaded it."""

    digest: str
    batch_size: int
    input_range: tuple[float, float] = (0.0, 255.0)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    uri: str = ""
    options: ModelOptions | None = None


_loaded: dict[WorkerModel, Classifier] = {}
"""A worker process's classifier, loaded by the first shard it attacks."""


def attack_shard(
    model_file: bytes, model: WorkerModel, config: AttackConfig, shard: list[Sample]
) -> list[ImageResult]:
    """The Ray task: the results of the ``shard``'s images, in completion order, with the
    model of ``model_file`` (loaded once per worker process)."""
    return list(PixelThresholdAttack(config).run(shard, worker_classifier(model_file, model)))


def worker_classifier(model_file: bytes, model: WorkerModel) -> Classifier:
    """The classifier of ``model``: loaded on a process's first call (from
    ``model_file``, or by its URI), the same object on the next ones."""
    classifier = _loaded.get(model)
    if classifier is None and model.options is not None:
        _loaded.clear()
        classifier = _loaded[model] = loading.load_classifier(model.uri, model.options)
    if classifier is None:
        keras_model = loading.load_keras_bytes(model_file)
        _loaded.clear()
        classifier = _loaded[model] = CompiledClassifier(
            keras_model,
            batch_size=model.batch_size,
            input_range=model.input_range,
            mean=model.mean,
            std=model.std,
        )
    return classifier


@contextmanager
def searching(
    config: AttackConfig,
    classifier: Classifier,
    *,
    ray_address: str = "",
    shard_size: int = 10,
    model_uri: str = "",
    options: ModelOptions | None = None,
) -> Iterator[Search]:
    """The search of an attack with ``config``: the core on ``classifier`` here, or, with
    a ``ray_address``, shards of ``shard_size`` images on that Ray cluster, connected for
    the block, each worker calling the classifier's model as ``classifier`` does: a Keras
    model sent as its file's bytes, any other kind loaded by each worker from
    ``model_uri`` with ``options`` (for ``runs:/`` and ``models:/`` URIs the workers
    reach the driver's tracking URI; an endpoint's token goes to them in their
    environment).

    Raises ValueError, naming ``ray_address``, if Ray is not installed or no cluster
    answers there. A block left early (an error, Ctrl-C) cancels the shards in flight.
    """
    if not ray_address:
        yield partial(PixelThresholdAttack(config).run, predict=classifier)
        return
    ray = _connect(ray_address)
    try:
        if isinstance(classifier, CompiledClassifier):
            model_file = loading.keras_bytes(classifier.model)
            worker_model = WorkerModel(
                digest=hashlib.sha256(model_file).hexdigest(),
                batch_size=config.batch_size,
                input_range=classifier.input_range,
                mean=classifier.mean,
                std=classifier.std,
            )
        else:
            model_file = b""
            worker_model = WorkerModel(
                digest="", batch_size=config.batch_size, uri=model_uri, options=options
            )
        search = ShardedSearch(ray, config, model_file, worker_model, shard_size=shard_size)
        try:
            yield search
        finally:
            search.cancel()
    finally:
        ray.shutdown()


def _connect(address: str) -> Any:
    """The ``ray`` module, connected to the cluster at ``address``."""
    try:
        import ray
    except ImportError as error:
        raise ValueError(
            f"ray_address={address!r} needs Ray, which is not installed: {RAY_INSTALL}"
        ) from error
    _check_listening(address)
    try:
        ray.init(
            address=address,
            runtime_env={"py_modules": [pixel_threshold], "env_vars": _worker_env()},
            logging_level=logging.WARNING,
        )
    except (ConnectionError, ValueError) as error:
        raise ValueError(
            f"cannot connect to a Ray cluster at ray_address={address!r}: {error}"
        ) from error
    return ray


def _worker_env() -> dict[str, str]:
    """`WORKER_ENV`, and what a worker needs to load a model itself: the tracking URI
    and its login, an endpoint's token."""
    needed = (TRACKING_URI, logins.USERNAME, logins.PASSWORD, TOKEN_VARIABLE)
    passed = {name: os.environ[name] for name in needed if os.environ.get(name)}
    return {**WORKER_ENV, **passed}


def _check_listening(address: str) -> None:
    """Raise ValueError, naming ``ray_address``, unless a ``host:port`` accepts a TCP
    connection within ``CONNECT_SECONDS`` (``auto`` and ``ray://`` are left to Ray)."""
    host, colon, port = address.rpartition(":")
    if address == "auto" or address.startswith("ray://") or not colon:
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except (OSError, ValueError) as error:
        raise ValueError(
            f"expected a Ray cluster's head at ray_address={address!r} (auto or host:port), "
            f"but nothing answers there: {error}"
        ) from error


class ShardedSearch:
    """Attacks samples in shards of ``shard_size`` on the connected Ray cluster, each
    a Ray task on the model of ``model_file``.

    A worker slot is a GPU (with a CPU) when the cluster has GPUs, else a CPU; at most
    ``SHARDS_PER_SLOT`` shards per slot are in flight. Each finished shard's results
    are checked to be its images, each once, and yielded.
    """

    def __init__(
        self,
        ray: Any,
        config: AttackConfig,
        model_file: bytes,
        worker_model: WorkerModel,
        *,
        shard_size: int,
    ) -> None:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        self.slots = gpus or max(1, int(resources.get("CPU", 0)))
        self.shard_size = shard_size
        self._ray = ray
        self._task = ray.remote(attack_shard).options(
            num_cpus=1, num_gpus=1 if gpus else 0, max_retries=TASK_RETRIES
        )
        self._arguments = (ray.put(model_file), worker_model, config)
        self._pending: dict[Any, list[int]] = {}

    def __call__(self, samples: Iterable[Sample]) -> Iterator[ImageResult]:
        """Attack ``samples``; yield their results as shards finish."""
        stream = iter(samples)
        while True:
            while len(self._pending) < self.slots * SHARDS_PER_SLOT and (
                shard := list(islice(stream, self.shard_size))
            ):
                task = self._task.remote(*self._arguments, shard)
                self._pending[task] = sorted(sample.index for sample in shard)
            if not self._pending:
                return
            done, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=WAIT_SECONDS)
            for task in done:
                indices = self._pending.pop(task)
                results: list[ImageResult] = self._ray.get(task)
                got = sorted(result.index for result in results)
                if got != indices:
                    raise RuntimeError(f"expected the results of images {indices}, got {got}")
                yield from results

    def cancel(self) -> None:
        """Stop the shards in flight (their workers are killed)."""
        for task in self._pending:
            self._ray.cancel(task, force=True)
        self._pending.clear()
