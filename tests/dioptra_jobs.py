"""A Dioptra 1.2.2 job run in this process through the worker's own code
(`dioptra.rq.tasks.run_v1_dioptra_job`), the REST API replaced by `StubClient`, which
answers from the resource files (`tests.dioptra_resources`) and records every call."""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import dioptra.sdk.utilities.logging.config as log_config
import dioptra.sdk.utilities.run_dioptra_job as worker
import mlflow
from dioptra.rq.tasks import run_v1_dioptra_job
from dioptra.sdk.utilities import auth_client

from tests.dioptra_resources import (
    IDENTIFIER,
    Resources,
    artifact_plugins,
    forget_plugins,
    job_config,
    job_parameters,
    plugins_bundle,
)

# --- the REST API, stubbed ---------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of the client: its endpoint (``jobs.get_config``) and its arguments."""

    endpoint: str
    arguments: dict[str, Any]


@dataclass
class StubClient:
    """Stands in for Dioptra's ``DioptraClient`` (JSON answers) for one job of
    ``entrypoint`` with ``parameters`` (coerced: `job_parameters`): answers what the worker
    asks from the resource files, records every call in ``calls`` and what the job posted
    (``statuses``, ``metrics``, ``artifacts_created``, ``mlflow_run_id``, ``logs``).

    Each endpoint takes the real client method's arguments (by name), so a plugin calling
    it with other names fails here as it would there."""

    resources: Resources
    entrypoint: str
    parameters: dict[str, Any]
    job_id: int = 1
    group_id: int = 1
    calls: list[Call] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    artifacts_created: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    mlflow_run_id: str | None = None

    def __post_init__(self) -> None:
        handlers: dict[str, Callable[..., Any]] = {
            "auth.login": self._login,
            "experiments.jobs.set_status": self._set_status,
            "jobs.get_by_id": self._get_job,
            "jobs.get_config": self._get_config,
            "jobs.get_parameters": self._get_parameters,
            "jobs.get_artifact_parameters": self._get_artifact_parameters,
            "jobs.set_mlflow_run_id": self._set_mlflow_run_id,
            "jobs.append_metric_by_id": self._append_metric,
            "jobs.append_logs_by_id": self._append_logs,
            "entrypoints.snapshots.get_plugins_bundle": partial(self._bundle, "plugins"),
            "entrypoints.snapshots.get_artifact_plugins_bundle": partial(
                self._bundle, "artifact_plugins"
            ),
            "entrypoints.snapshots.get_artifact_plugins": self._artifact_plugins,
            "artifacts.create": self._create_artifact,
        }
        for name, collection in _collections(handlers, self._recorded).items():
            setattr(self, name, collection)

    def endpoints(self) -> list[str]:
        """The endpoints called, in order."""
        return [call.endpoint for call in self.calls]

    def _recorded(self, endpoint: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(handler)

        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            self.calls.append(Call(endpoint, dict(bound.arguments)))
            return handler(*bound.args, **bound.kwargs)

        return call

    def _check_job(self, job_id: str | int) -> None:
        if str(job_id) != str(self.job_id):
            raise LookupError(f"stub serves job {self.job_id}, not {job_id}")

    def _login(self, username: str, password: str) -> dict[str, Any]:
        return {"username": username}

    def _set_status(self, experiment_id: str | int, job_id: str | int, status: str) -> None:
        self._check_job(job_id)
        self.statuses.append(status)

    def _get_job(self, job_id: str | int) -> dict[str, Any]:
        self._check_job(job_id)
        return {
            "id": self.job_id,
            "group": {"id": self.group_id},
            "entrypoint": {"id": 1, "snapshotId": 2, "name": self.entrypoint},
        }

    def _get_config(self, job_id: int) -> dict[str, Any]:
        self._check_job(job_id)
        return job_config(self.resources, self.entrypoint)

    def _get_parameters(self, job_id: str | int) -> dict[str, Any]:
        self._check_job(job_id)
        return copy.deepcopy(self.parameters)

    def _get_artifact_parameters(self, job_id: str | int) -> dict[str, Any]:
        self._check_job(job_id)
        return {}

    def _set_mlflow_run_id(self, job_id: str | int, mlflow_run_id: str) -> None:
        self._check_job(job_id)
        self.mlflow_run_id = mlflow_run_id

    def _append_metric(
        self,
        job_id: str | int,
        metric_name: str,
        metric_value: float,
        metric_step: int | None = None,
        timestamp: object = None,
    ) -> None:
        self._check_job(job_id)
        if not IDENTIFIER.fullmatch(metric_name):
            raise ValueError(f"Dioptra refuses the metric name {metric_name!r}")
        self.metrics.append({"name": metric_name, "value": metric_value, "step": metric_step})

    def _append_logs(self, job_id: str | int, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)

    def _bundle(
        self,
        plugins: str,
        entrypoint_id: str | int,
        entrypoint_snapshot_id: str | int,
        file_type: Any = None,
        output_dir: Path | None = None,
        file_stem: str = "plugins",
    ) -> Path:
        """The entrypoint's ``plugins`` (its ``plugins`` or ``artifact_plugins``) as the
        bundle the REST API sends, in ``output_dir``."""
        names = self.resources.entrypoints()[self.entrypoint].get(plugins, [])
        return plugins_bundle(self.resources, names, Path(output_dir or ".", file_stem + ".tar.gz"))

    def _artifact_plugins(
        self, entrypoint_id: str | int, entrypoint_snapshot_id: str | int
    ) -> list[dict[str, Any]]:
        return artifact_plugins(self.resources, self.entrypoint)

    def _create_artifact(
        self,
        group_id: str | int,
        job_id: str | int,
        artifact_uri: str,
        plugin_snapshot_id: str | int | None = None,
        task_id: str | int | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        self._check_job(job_id)
        created = {"id": len(self.artifacts_created) + 1, "artifact_uri": artifact_uri}
        created |= {"plugin_snapshot_id": plugin_snapshot_id, "task_id": task_id}
        self.artifacts_created.append(created)
        return created


def _collections(
    handlers: Mapping[str, Callable[..., Any]],
    recorded: Callable[[str, Callable[..., Any]], Callable[..., Any]],
) -> dict[str, SimpleNamespace]:
    """``{"jobs.get_config": f}`` -> ``{"jobs": namespace(get_config=recorded f)}``, nested
    as deep as the dotted names go."""
    top: dict[str, SimpleNamespace] = {}
    for endpoint, handler in handlers.items():
        *path, method = endpoint.split(".")
        namespace = top.setdefault(path[0], SimpleNamespace())
        for part in path[1:]:
            if not hasattr(namespace, part):
                setattr(namespace, part, SimpleNamespace())
            namespace = getattr(namespace, part)
        setattr(namespace, method, recorded(endpoint, handler))
    return top


# --- running a job -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    """A job run by `run_job`: the stub it talked to and what it raised (None if nothing)."""

    client: StubClient
    error: BaseException | None

    @property
    def mlflow_run_id(self) -> str:
        if self.client.mlflow_run_id is None:
            raise AssertionError(f"the job never started its MLflow run: {self.error!r}")
        return self.client.mlflow_run_id


def run_job(
    resources: Resources,
    entrypoint: str,
    values: Mapping[str, object],
    *,
    job_id: int = 1,
    experiment_id: int = 1,
) -> JobRun:
    """Run a job of ``entrypoint`` with parameter ``values`` in this process through the
    worker's own entry point (``run_v1_dioptra_job``: a temporary working directory, logs
    forwarded, ``run_dioptra_job.main``), the REST API a `StubClient`; return the stub and
    what the job raised (the worker re-raises after posting status ``failed``).

    The caller sets ``MLFLOW_TRACKING_URI`` and pins an experiment whose artifact location
    is absolute (``MLFLOW_EXPERIMENT_ID`` or ``_NAME``): the worker starts its run with
    neither, in its temporary directory, where a new store's default experiment would
    keep (and lose) the artifacts. ``MLFLOW_S3_ENDPOINT_URL`` is set for the job if unset
    (the worker insists on it even with no S3)."""
    _check_tracking()
    client = StubClient(
        resources,
        entrypoint,
        job_parameters(resources, entrypoint, values),
        job_id=job_id,
    )
    error: BaseException | None = None
    names = list(resources.plugins())
    forget_plugins(names)
    try:
        with _worker_patched(client):
            run_v1_dioptra_job(job_id=job_id, experiment_id=experiment_id)
    except Exception as raised:
        error = raised
    finally:
        forget_plugins(names)
    return JobRun(client, error)


def _check_tracking() -> None:
    """Refuse to run where the job's run and artifacts would not land in the caller's store."""
    if "MLFLOW_TRACKING_URI" not in os.environ:
        raise RuntimeError("set MLFLOW_TRACKING_URI (the worker requires it)")
    pinned = os.environ.get("MLFLOW_EXPERIMENT_ID") or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not pinned:
        raise RuntimeError("pin an experiment with an absolute artifact location")
    if mlflow.active_run() is not None:
        raise RuntimeError("an MLflow run is active: the job's run would nest under it")


@contextmanager
def _worker_patched(client: StubClient) -> Iterator[None]:
    """The worker and plugin code reach the REST API through ``client``: the worker's
    ``_get_client`` (which would log in from ``DIOPTRA_WORKER_*``), the log forwarder's
    and plugins' ``get_authenticated_worker_client``."""
    s3 = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or "http://s3.invalid"

    def connected(*args: Any, **kwargs: Any) -> StubClient:
        return client

    with (
        mock.patch.dict(os.environ, {"MLFLOW_S3_ENDPOINT_URL": s3}),
        mock.patch.object(worker, "_get_client", connected),
        mock.patch.object(log_config, "get_authenticated_worker_client", connected),
        mock.patch.object(auth_client, "get_authenticated_worker_client", connected),
    ):
        yield
