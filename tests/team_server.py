"""A team's tracking server for the tests: PostgreSQL in a throw-away cluster, and
``mlflow server`` on it (or on sqlite) with proxied artifacts and logins (MLflow's
basic-auth app), started from nothing and stopped after.

PostgreSQL refuses to run as root: where the tests run as root, the cluster runs as the
account Debian's postgresql package creates (``postgres``, else ``nobody``), in a
folder of its own under the system's temporary folder (pytest's are private to root).
Debian's package is what `make test-server` installs where it is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ray_head import free_port
from tests.tracking_store import Server, start_mlflow, stop

POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"
"""Where Debian's postgresql packages put ``initdb``, ``pg_ctl`` and ``createdb``."""
DATABASE_USER = "mlflow"
ADMIN = "admin"
BACKENDS = ("postgresql", "sqlite")
HEALTH = "/health"
LOGIN_CACHE_SECONDS = 60
"""MLflow's cache of checked logins (``auth_cache_ttl_seconds``): without it, every
request costs a scrypt hash (~0.13 s of CPU here), most of a loaded 2-core machine. A
changed password reaches only the worker that changed it before the cache expires, so
the server runs one worker (`WORKERS`)."""
WORKERS = 1


@dataclass(frozen=True)
class Login:
    """A user of the team server, as MLflow's client takes it: environment variables."""

    username: str
    password: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }


def service_account() -> dict[str, Any]:
    """`subprocess.Popen`'s ``user``, ``group`` and ``extra_groups`` for PostgreSQL:
    empty unless this process is root (then ``postgres``, else ``nobody``)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    pytest.fail("expected a 'postgres' or 'nobody' account to run PostgreSQL as, found neither")


def owned_folder(path: Path, account: dict[str, Any]) -> Path:
    """``path`` (an existing folder), owned by ``account`` if one is given."""
    if account:
        os.chown(path, account["user"], account["group"])
    return path


def postgres_binaries() -> Path:
    """The folder of PostgreSQL's server programs: Debian's newest, else those on PATH."""
    found = sorted(glob.glob(POSTGRES_BINARIES), key=lambda folder: int(Path(folder).parent.name))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail(
            "expected PostgreSQL's server programs (initdb, pg_ctl) in "
            f"{POSTGRES_BINARIES} or on PATH: `make test-server` installs Debian's postgresql"
        )
    return Path(initdb).parent


@dataclass(frozen=True)
class Postgres:
    """A running throw-away cluster: databases of `DATABASE_USER`, no password, on
    127.0.0.1 at ``port``."""

    binaries: Path
    data: Path
    port: int
    log: Path
    account: dict[str, Any]

    def uri(self, database: str) -> str:
        return f"postgresql://{DATABASE_USER}@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *arguments: str) -> None:
        """One of PostgreSQL's programs, as the cluster's account; the test fails with
        its output if it fails."""
        done = subprocess.run(
            [str(self.binaries / program), *arguments],
            capture_output=True,
            text=True,
            cwd=self.data.parent,
            **self.account,
        )
        if done.returncode != 0:
            pytest.fail(f"{program} {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}")

    def ctl(self, *arguments: str) -> None:
        """``pg_ctl`` on the cluster, waiting for it to finish."""
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", *arguments)

    def restart(self) -> None:
        """Stop the database at once (``-m fast``: open connections are cut) and start it."""
        self.ctl("restart", "-m", "fast")


@contextmanager
def postgres() -> Iterator[Postgres]:
    """A cluster initialised in a new temporary folder and started; stopped and removed
    after."""
    account = service_account()
    folder = owned_folder(Path(tempfile.mkdtemp(prefix="pixel-threshold-postgres-")), account)
    cluster = Postgres(
        postgres_binaries(), folder / "data", free_port(), folder / "postgres.log", account
    )
    cluster.run(
        "initdb",
        "-D",
        str(cluster.data),
        "-U",
        DATABASE_USER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    options = f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    cluster.ctl("start", "-o", options)
    try:
        for database in ("mlflow", "auth"):
            cluster.run(
                "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(cluster.port),
                "-U",
                DATABASE_USER,
                database,
            )
        yield cluster
    finally:
        cluster.ctl("stop", "-m", "immediate")
        shutil.rmtree(folder)


class TeamServer:
    """``mlflow server --app-name basic-auth`` on ``backend`` (tracking and logins),
    artifacts proxied to ``artifacts``; users are added by its admin. Killed and started
    again at the same address."""

    def __init__(
        self, folder: Path, backend: str, auth_database: str, cluster: Postgres | None = None
    ) -> None:
        self.cluster = cluster
        self.folder = folder
        self.artifacts = folder / "artifacts"
        self.artifacts.mkdir(parents=True)
        self.log = folder / "server.log"
        self.admin = Login(ADMIN, secrets.token_urlsafe(16))
        config = folder / "auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = {auth_database}\n"
            f"admin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            f"auth_cache_ttl_seconds = {LOGIN_CACHE_SECONDS}\n"
        )
        self.env = {
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin.password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }
        self.command = ["server", "--app-name", "basic-auth", "--backend-store-uri", backend]
        self.command += ["--artifacts-destination", str(self.artifacts)]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Server | None = None

    def start(self) -> None:
        self.server = start_mlflow(
            self.command,
            HEALTH,
            self.log,
            port=self.port,
            extra=["--workers", str(WORKERS)],
            env=self.env,
        )

    def kill(self) -> None:
        """Kill the server and its workers at once, as a crash would."""
        assert self.server is not None
        self.server.kill()

    def stop(self) -> None:
        if self.server is not None:
            stop(self.server)

    def add_user(self, username: str) -> Login:
        login = Login(username, secrets.token_urlsafe(16))
        self._admin_request("POST", "/api/2.0/mlflow/users/create", json=login.__dict__)
        return login

    def new_password(self, login: Login) -> Login:
        """Give ``login``'s user a new password (as an admin would); return the new login."""
        changed = Login(login.username, secrets.token_urlsafe(16))
        self._admin_request("PATCH", "/api/2.0/mlflow/users/update-password", json=changed.__dict__)
        return changed

    def grant(self, login: Login, experiment_id: str, permission: str) -> None:
        """Give ``login``'s user ``permission`` (READ, EDIT, MANAGE) on an experiment."""
        grant = {
            "username": login.username,
            "resource_type": "experiment",
            "resource_id": experiment_id,
            "permission": permission,
        }
        self._admin_request("POST", "/api/3.0/mlflow/users/permissions/grant", json=grant)

    def _admin_request(self, method: str, path: str, **kwargs: Any) -> None:
        answer = requests.request(
            method,
            f"{self.url}{path}",
            auth=(self.admin.username, self.admin.password),
            timeout=60,
            **kwargs,
        )
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:500]}"


@contextmanager
def team_server(folder: Path, backend: str) -> Iterator[TeamServer]:
    """A `TeamServer` on a fresh PostgreSQL cluster (``backend`` postgresql) or on
    sqlite files, started; stopped after (the cluster too)."""
    if backend == "postgresql":
        with postgres() as cluster:
            server = TeamServer(
                folder / "mlflow", cluster.uri("mlflow"), cluster.uri("auth"), cluster
            )
            with _running(server):
                yield server
    else:
        mlflow_folder = folder / "mlflow"
        server = TeamServer(
            mlflow_folder,
            f"sqlite:///{mlflow_folder / 'mlflow.db'}",
            f"sqlite:///{mlflow_folder / 'auth.db'}",
        )
        with _running(server):
            yield server


@contextmanager
def _running(server: TeamServer) -> Iterator[None]:
    server.start()
    try:
        yield
    finally:
        server.stop()


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for the block, to the server too: as root (whom file modes do
    not stop), a read-only bind mount of it on itself; else its modes without write."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    paths = [folder, *folder.rglob("*")]
    modes = {path: path.stat().st_mode for path in paths}
    for path, mode in modes.items():
        path.chmod(mode & ~0o222)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
