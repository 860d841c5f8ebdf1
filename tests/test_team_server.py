"""A team's tracking server under load (`make test-server`): PostgreSQL (and sqlite, the
same suite), proxied artifacts, logins; eight attacks and two ``main`` sweeps at once,
with the server killed, the database restarted or the artifact folder read-only in the
middle; nothing left RUNNING, nothing lost, no login in anything a run leaves."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from pixel_threshold.data import datasets
from pixel_threshold.data.datasets import ImageSet
from pixel_threshold.runs import failures, tracking
from tests import entry_points, team_load
from tests.team_server import BACKENDS, Login, TeamServer, read_only, team_server
from tests.tracking_store import SEARCHING, wait_for

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "test-output" / "team-server"
RETRIES_WHEN_FAILING = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
"""For the read-only fault: a failing upload gives up after two retries, not minutes."""


@dataclasses.dataclass(frozen=True)
class Team:
    """The server, its users (alice and carol work together, bob is outside the
    team), and alice's trained model (experiment ``models``, carol may read it)."""

    server: TeamServer
    alice: Login
    carol: Login
    bob: Login
    model_uri: str

    def client(self, login: Login) -> MlflowClient:
        """A client of the server as ``login``: MLflow's client reads the login from the
        environment at each request, so this sets it for the whole test process."""
        for name, value in login.env.items():
            os.environ[name] = value
        return MlflowClient(self.server.url)

    def experiment(self, name: str) -> str:
        """A new experiment of alice's that carol may edit."""
        experiment_id: str = self.client(self.alice).create_experiment(name)
        self.server.grant(self.carol, experiment_id, "EDIT")
        return experiment_id


@pytest.fixture(scope="module")
def team(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Team]:
    folder = tmp_path_factory.mktemp(request.param)
    with team_server(folder, request.param) as server:
        alice, carol, bob = (server.add_user(name) for name in ("alice", "carol", "bob"))
        env = team_load.environment(
            server.url, alice, folder / "outbox", MLFLOW_EXPERIMENT_NAME="models"
        )
        trained = entry_points.run("train", "--epochs", "2", cwd=folder, env=env)
        assert trained.returncode == 0, trained.stderr[-3000:]
        saved = os.environ.copy()
        try:
            client = Team(server, alice, carol, bob, "").client(alice)
            models = client.get_experiment_by_name("models")
            assert models is not None
            server.grant(carol, models.experiment_id, "READ")
            (run,) = client.search_runs([models.experiment_id])
            yield Team(server, alice, carol, bob, f"runs:/{run.info.run_id}/model")
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _under_load(team: Team, name: str, folder: Path, fault: str, **extra: str) -> dict[str, object]:
    """Start the load in a new experiment, bring ``fault`` on once every job has started
    (none, kill, database, read-only), let every job end, upload what was kept with the
    one outbox command, and check what is left; return the figures."""
    experiment_id = team.experiment(name)
    client = team.client(team.alice)
    jobs = team_load.load_jobs(team.model_uri, [team.alice, team.carol])
    started = time.monotonic()
    team_load.start(jobs, team.server.url, name, folder, **extra)
    team_load.wait_until_all_started(client, experiment_id, jobs)
    if fault == "kill":
        team.server.kill()
        time.sleep(5)
        team.server.start()
        statuses = team_load.finish(jobs)
    elif fault == "database":
        assert team.server.cluster is not None
        team.server.cluster.restart()
        statuses = team_load.finish(jobs)
    elif fault == "read-only":
        with read_only(team.server.artifacts):
            statuses = team_load.finish(jobs)
    else:
        statuses = team_load.finish(jobs)
    seconds = time.monotonic() - started
    outbox = folder / "outbox"
    kept = sorted(path.name for path in outbox.iterdir()) if outbox.exists() else []
    logins = [team.alice, team.carol]
    leaked = team_load.leaks(team_load.files_in(folder), logins)  # output, outbox
    uploaded = team_load.upload_kept(team.server.url, team.alice, outbox)
    assert uploaded.returncode == 0, uploaded.stderr[-3000:]
    settled = team_load.settle(client, experiment_id, folder / "settled")
    compared = _compare(team, name, folder)
    runs = team_load.run_contents(client, experiment_id, folder / "scan")
    leaked += team_load.leaks(runs, logins)
    failed_jobs = {
        job.name: job.printed().strip().splitlines()[-8:]
        for job, status in zip(jobs, statuses, strict=True)
        if status != 0
    }
    unclear = [job.name for job in jobs if "Traceback" in job.printed()]
    figures = {
        "backend": _backend(team),
        "fault": fault,
        "jobs": len(jobs),
        "jobs_failed": failed_jobs,
        "jobs_with_a_traceback": unclear,
        "parcels_kept": len(kept),
        "wall_seconds": round(seconds, 1),
        **dataclasses.asdict(settled),
        "compared": compared,
        "leaks": leaked,
    }
    shown = json.dumps(figures, indent=1)  # a string: pytest shows it whole, a dict cut
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(shown + "\n")
    assert not unclear, shown  # a failed job says why in a line
    assert not settled.left_running, shown
    assert not settled.failed_without_reason, shown
    assert not settled.artifacts_missing, shown
    assert not settled.manifests_wrong, shown
    assert not leaked, leaked
    assert compared == settled.attack_runs
    assert not (outbox.exists() and any(outbox.iterdir()))  # all uploaded
    return figures


def _compare(team: Team, experiment: str, folder: Path) -> list[str]:
    """``compare`` over the experiment's finished attack runs, as carol: the runs its
    table lists."""
    env = team_load.environment(team.server.url, team.carol, folder / "outbox")
    env["MLFLOW_EXPERIMENT_NAME"] = experiment
    done = entry_points.run("compare", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    client = team.client(team.carol)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (run,) = client.search_runs([experiment_id], f"tags.{tracking.STEP_TAG} = 'compare'")
    table = Path(client.download_artifacts(run.info.run_id, "comparison.csv", str(folder)))
    lines = table.read_text().splitlines()
    column = lines[0].split(",").index("attack_run_id")
    return sorted(line.split(",")[column] for line in lines[1:])


@pytest.mark.parametrize("team", BACKENDS, indirect=True)
def test_eight_attacks_and_two_sweeps_at_once(team: Team, tmp_path: Path) -> None:
    figures = _under_load(team, f"load-{_backend(team)}", tmp_path, "none")
    assert figures["jobs_failed"] == {}
    assert figures["parcels_kept"] == 0
    assert figures["runs"] == {"FINISHED": team_load.ATTACKS + team_load.SWEEPS * 6}
    assert figures["images"] == (team_load.ATTACKS + team_load.SWEEPS * 2) * team_load.IMAGES


TOGETHER = 10


def _attack_run_started_together(barrier: Any, images: ImageSet) -> None:
    """One attack run of ``barrier``'s: started, then its dataset logged, at once with
    the others'."""
    barrier.wait()
    with tracking.step_run("attack"):
        barrier.wait()
        tracking.log_attacked_data(images, "digits")


@pytest.mark.parametrize("team", BACKENDS, indirect=True)
def test_runs_started_together_share_their_experiment_and_dataset(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack runs of a new experiment started at once all mark it, and log the same
    dataset at once: both writes race in MLflow's store (`races`); no run fails."""
    experiment_id = team.experiment(f"together-{_backend(team)}")
    client = team.client(team.alice)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.server.url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    test = datasets.digits().test_set()
    images = ImageSet(test.images[:5], test.labels[:5], test.class_names, ())
    processes = multiprocessing.get_context("spawn")
    barrier = processes.Barrier(TOGETHER)
    runs = [
        processes.Process(target=_attack_run_started_together, args=(barrier, images))
        for _ in range(TOGETHER)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=300)
    assert [run.exitcode for run in runs] == [0] * TOGETHER
    logged = client.search_runs([experiment_id])
    assert [run.info.status for run in logged] == ["FINISHED"] * TOGETHER
    assert all(len(run.inputs.dataset_inputs) == 1 for run in logged)
    experiment = client.get_experiment(experiment_id)
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_DEVELOPMENT


@pytest.mark.parametrize("team", BACKENDS, indirect=True)
def test_the_server_killed_and_restarted_under_load(team: Team, tmp_path: Path) -> None:
    _under_load(team, f"kill-{_backend(team)}", tmp_path, "kill")


@pytest.mark.parametrize("team", ["postgresql"], indirect=True)
def test_the_database_restarted_under_load(team: Team, tmp_path: Path) -> None:
    figures = _under_load(team, "database-postgresql", tmp_path, "database")
    assert len(figures["attack_runs"]) == team_load.ATTACKS + team_load.SWEEPS * 2


@pytest.mark.parametrize("team", BACKENDS, indirect=True)
def test_a_read_only_artifact_folder_under_load(team: Team, tmp_path: Path) -> None:
    figures = _under_load(
        team, f"read-only-{_backend(team)}", tmp_path, "read-only", **RETRIES_WHEN_FAILING
    )
    assert figures["parcels_kept"] > 0  # the attacks that ended while it was read-only
    assert len(figures["attack_runs"]) >= team_load.ATTACKS  # every attack, uploaded after


def _backend(team: Team) -> str:
    return "postgresql" if team.server.cluster is not None else "sqlite"


@pytest.mark.parametrize("team", BACKENDS, indirect=True)
def test_a_user_without_permission_is_refused_before_any_query(team: Team, tmp_path: Path) -> None:
    backend = _backend(team)
    experiment_id = team.experiment(f"private-{backend}")
    model = f"--model={team.model_uri}"
    outbox = tmp_path / "outbox"
    env = team_load.environment(
        team.server.url, team.bob, outbox, MLFLOW_EXPERIMENT_NAME=f"private-{backend}"
    )
    done = entry_points.run("attack", model, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "user 'bob' lacks the permission the tracking server at" in done.stderr
    assert "to grant bob " in done.stderr
    assert "attack plan:" not in done.stderr  # refused before the model loaded
    assert "Traceback" not in done.stderr
    assert not team.client(team.alice).search_runs([experiment_id])
    project = ["run", str(ROOT), "-e", "attack", "--env-manager", "local"]
    project += ["--experiment-name", f"private-{backend}", f"-Pmodel={team.model_uri}"]
    by_mlflow_run = subprocess.run(
        [sys.executable, "-m", "mlflow", *project],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert by_mlflow_run.returncode != 0  # MLflow's own refusal: it makes the run, not us
    assert "403" in by_mlflow_run.stderr and "Permission denied" in by_mlflow_run.stderr
    assert not team.client(team.alice).search_runs([experiment_id])
    own = team.client(team.bob).create_experiment(f"bob-{backend}")
    env["MLFLOW_EXPERIMENT_NAME"] = f"bob-{backend}"
    done = entry_points.run("attack", model, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "user 'bob' lacks the permission" in done.stderr, done.stderr[-3000:]
    assert "to grant bob READ on it" in done.stderr
    assert "attack plan:" not in done.stderr  # no query: the model never loaded
    assert "Traceback" not in done.stderr
    (run,) = team.client(team.bob).search_runs([own])
    assert run.info.status == "FAILED"
    assert run.data.tags[failures.ERROR_TAG].startswith("user 'bob' lacks the permission")
    assert "success_rate" not in run.data.metrics
    assert not outbox.exists()


@pytest.mark.parametrize("team", BACKENDS, indirect=True)
def test_a_password_changed_during_an_attack_keeps_its_results(team: Team, tmp_path: Path) -> None:
    backend = _backend(team)
    dave = team.server.add_user("dave")
    models = team.client(team.alice).get_experiment_by_name("models")
    assert models is not None
    team.server.grant(dave, models.experiment_id, "READ")
    team.server.grant(dave, team.experiment(f"password-{backend}"), "EDIT")
    outbox = tmp_path / "outbox"
    env = team_load.environment(
        team.server.url, dave, outbox, MLFLOW_EXPERIMENT_NAME=f"password-{backend}"
    )
    options = ["--th=1", "--es=1", "--limit=100", "--max-iter=30", "--popsize=100"]
    attack = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "entrypoints" / "attack.py"),
            f"--model={team.model_uri}",
            *options,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    started = wait_for(attack, SEARCHING)
    changed = team.server.new_password(dave)
    printed, rest = attack.communicate(timeout=600)
    said = printed.decode() + (started + rest).decode(errors="replace")
    assert attack.returncode == 1, said[-3000:]
    (parcel,) = outbox.iterdir()
    assert "did not take the login of user 'dave'" in said
    assert (
        f"They are kept in {parcel}: once MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
        f"hold a login it takes, upload them with `python -m pixel_threshold.runs.outbox {parcel}`"
    ) in said
    assert "Traceback" not in said
    assert not team_load.leaks(iter([("output", said.encode())]), [dave, changed])
    assert not team_load.leaks(team_load.files_in(outbox), [dave, changed])
    uploaded = team_load.upload_kept(team.server.url, changed, outbox)
    assert uploaded.returncode == 0, uploaded.stderr[-3000:]
    client = team.client(team.alice)
    run = client.get_run(parcel.name)
    assert run.info.status == "FINISHED"
    assert {item.path for item in client.list_artifacts(parcel.name)} == team_load.ATTACK_ARTIFACTS
    assert {"success_rate", "images_attacked"} <= set(run.data.metrics)
