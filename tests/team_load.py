"""A team's load on one tracking server: attacks and ``main`` sweeps started at once by
``mlflow run`` in processes of their own, and what they leave checked: every run ended
with its reason, every artifact complete, ``compare`` over them right, no login anywhere.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from pixel_threshold.artifacts import names
from pixel_threshold.artifacts.tarball import read_adv_testing
from pixel_threshold.runs import creation, failures, tracking
from tests.team_server import Login

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = 8
SWEEPS = 2
IMAGES = 50
BUDGET = {"max_iter": 5, "popsize": 20}
SHARED_RUN_NAME = "team load"
"""The run name three of the attacks share (names need not be unique)."""
ATTACK_ARTIFACTS = {
    names.ADV_TESTING,
    names.DISTANCE_METRICS,
    "examples.png",
    "queries.png",
}
JOB_SECONDS = 1200
PARENT_TAG = "mlflow.parentRunId"


@dataclass
class Job:
    """One ``mlflow run`` of the load, as one user; its output goes to files."""

    name: str
    login: Login
    arguments: list[str]
    process: subprocess.Popen[bytes] | None = None
    output: Path = field(default_factory=Path)

    def printed(self) -> str:
        return self.output.read_text(errors="replace")


def load_jobs(model_uri: str, logins: Sequence[Login]) -> list[Job]:
    """`ATTACKS` attacks (both attack types, es 0, 1 and 2, three of them sharing a run
    name) and `SWEEPS` ``main`` sweeps (es 1 and 2), all on ``model_uri``'s first
    `IMAGES` digits at th=1, taking turns among ``logins``."""
    budget = [f"-P{name}={value}" for name, value in BUDGET.items()]
    common = [f"-Pmodel={model_uri}", f"-Plimit={IMAGES}", *budget]
    jobs = []
    for index in range(ATTACKS):
        attack_type = ("pixel", "threshold")[index % 2]
        arguments = ["-e", "attack", *common, f"-Pattack_type={attack_type}", "-Pth=1"]
        arguments.append(f"-Pes={index % 3}")
        arguments += ["--run-name", SHARED_RUN_NAME] if index < 3 else []
        jobs.append(Job(f"attack {index}", logins[index % len(logins)], arguments))
    for index in range(SWEEPS):
        arguments = ["-e", "main", *common, "-Pth_values=1", "-Pes_values=1,2"]
        jobs.append(Job(f"main {index}", logins[(index + 1) % len(logins)], arguments))
    return jobs


def environment(server: str, login: Login, outbox: Path, **extra: str) -> dict[str, str]:
    """A user's environment for a step against ``server``: the login in MLflow's
    variables, the outbox ``outbox``, this interpreter's folder first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        **login.env,
        "PIXEL_THRESHOLD_OUTBOX": str(outbox),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }


def start(jobs: Sequence[Job], server: str, experiment: str, folder: Path, **extra: str) -> None:
    """Start every job at once: ``mlflow run`` of this checkout in ``experiment``, in
    ``folder`` (where each job's output goes too), the outbox ``folder/outbox``."""
    where = ["--env-manager", "local", "--experiment-name", experiment]
    for index, job in enumerate(jobs):
        job.output = folder / f"job-{index}.log"
        with open(job.output, "wb") as output:
            job.process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "run", str(ROOT), *job.arguments, *where],
                cwd=folder,
                env=environment(server, job.login, folder / "outbox", **extra),
                stdout=output,
                stderr=subprocess.STDOUT,
            )


def finish(jobs: Sequence[Job]) -> list[int]:
    """Wait for every job (at most `JOB_SECONDS` each); their exit statuses."""
    statuses = []
    for job in jobs:
        assert job.process is not None
        statuses.append(job.process.wait(timeout=JOB_SECONDS))
    return statuses


def wait_until_all_started(client: MlflowClient, experiment_id: str, jobs: Sequence[Job]) -> None:
    """Return once every job's own run is tagged with its step (its first request to the
    server done): the middle of the load. Fails if a job ends first."""
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        started = [
            run
            for run in top_level_runs(client, experiment_id)
            if run.data.tags.get(tracking.STEP_TAG)
        ]
        if len(started) >= len(jobs):
            return
        ended = [
            job.name for job in jobs if job.process is not None and job.process.poll() is not None
        ]
        assert not ended, f"{ended} ended before every job started:\n{jobs[0].printed()[-3000:]}"
        time.sleep(1)
    raise AssertionError(f"the jobs did not all start within {JOB_SECONDS} s")


def runs_of(client: MlflowClient, experiment_id: str) -> list[Run]:
    return list(client.search_runs([experiment_id], max_results=1000))


def top_level_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    return [run for run in runs_of(client, experiment_id) if PARENT_TAG not in run.data.tags]


def upload_kept(server: str, login: Login, outbox: Path) -> subprocess.CompletedProcess[str]:
    """The one command that uploads every parcel the load kept, as ``login``."""
    return subprocess.run(
        [sys.executable, "-m", "pixel_threshold.runs.outbox"],
        env=environment(server, login, outbox),
        capture_output=True,
        text=True,
        timeout=600,
    )


@dataclass
class Settled:
    """What the load left on the server: its runs by status, the attack runs' images and
    artifacts, and what is wrong (each list empty when nothing is)."""

    runs: dict[str, int]
    attack_runs: list[str]
    images: int
    artifacts: int
    left_running: list[str]
    copies_ended: list[str]
    """Runs the server made twice (`runs.creation`), the copy ended KILLED."""
    failed_without_reason: list[str]
    artifacts_missing: list[str]
    manifests_wrong: list[str]


def settle(client: MlflowClient, experiment_id: str, folder: Path) -> Settled:
    """Check every run of the experiment: ended, a failed one with its error; every
    finished attack run's artifacts listed and its tarball read back whole (manifest
    rows for `IMAGES` images, in order)."""
    runs = runs_of(client, experiment_id)
    by_status: dict[str, int] = {}
    for run in runs:
        by_status[run.info.status] = by_status.get(run.info.status, 0) + 1
    attacks = [
        run
        for run in runs
        if run.data.tags.get(tracking.STEP_TAG) == "attack" and run.info.status == "FINISHED"
    ]
    missing, wrong, images = [], [], 0
    for run in attacks:
        run_id = run.info.run_id
        listed = {item.path for item in client.list_artifacts(run_id)}
        missing += [f"{run_id}/{name}" for name in sorted(ATTACK_ARTIFACTS - listed)]
        if names.ADV_TESTING not in listed:
            continue
        tarball = client.download_artifacts(run_id, names.ADV_TESTING, str(folder))
        indices = read_adv_testing(Path(tarball), folder / run_id, shape=(8, 8, 1)).column("index")
        if indices.tolist() != list(range(IMAGES)):
            wrong.append(run_id)
        images += len(indices)
    return Settled(
        runs=by_status,
        attack_runs=sorted(run.info.run_id for run in attacks),
        images=images,
        artifacts=sum(len(client.list_artifacts(run.info.run_id)) for run in runs),
        left_running=[run.info.run_id for run in runs if run.info.status == "RUNNING"],
        copies_ended=[run.info.run_id for run in runs if creation.COPY_OF_TAG in run.data.tags],
        failed_without_reason=[
            run.info.run_id
            for run in runs
            if run.info.status == "FAILED" and not run.data.tags.get(failures.ERROR_TAG)
        ],
        artifacts_missing=missing,
        manifests_wrong=wrong,
    )


def secrets_of(login: Login) -> list[bytes]:
    """What a leaked login looks like: its password, and the basic-auth header's value."""
    pair = f"{login.username}:{login.password}".encode()
    return [login.password.encode(), base64.b64encode(pair)]


def leaks(content: Iterator[tuple[str, bytes]], logins: Sequence[Login]) -> list[str]:
    """Where in ``content`` (where, bytes) any of ``logins`` appears."""
    secrets = [secret for login in logins for secret in secrets_of(login)]
    return [where for where, content in content for secret in secrets if secret in content]


def run_contents(
    client: MlflowClient, experiment_id: str, folder: Path
) -> Iterator[tuple[str, bytes]]:
    """What the experiment's runs hold: params, tags and metric names, and every artifact
    (downloaded into ``folder``), unpacked."""
    for run in runs_of(client, experiment_id):
        run_id = run.info.run_id
        recorded = {
            "params": run.data.params,
            "tags": run.data.tags,
            "metrics": list(run.data.metrics),
        }
        yield f"run {run_id} params, tags, metrics", json.dumps(recorded).encode()
        yield from files_in(Path(client.download_artifacts(run_id, "", str(folder / run_id))))


def files_in(folder: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under ``folder``, unpacked (`_unpacked`), with where it is."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield from _unpacked(str(path), path.read_bytes())


def _unpacked(where: str, content: bytes) -> Iterator[tuple[str, bytes]]:
    """``content``, and what a gzip or tar file holds."""
    yield where, content
    if content[:2] == b"\x1f\x8b":
        yield from _unpacked(f"{where} (gunzipped)", gzip.decompress(content))
    elif len(content) > 262 and content[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(content)) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    yield from _unpacked(f"{where}:{member.name}", extracted.read())
