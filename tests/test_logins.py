"""Logins stay in MLflow's environment variables: a tracking URI holding one is refused,
a database URI's password is masked wherever it is shown or kept, and a refused login or
permission is said in words naming the user (the team server itself:
tests/test_team_server.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, UNAUTHENTICATED

from pixel_threshold.runs import logins, outbox
from tests import entry_points

SECRET = "s3cret-Pa55"


def test_a_tracking_uri_holding_a_login_is_refused_without_showing_its_password(
    tmp_path: Path,
) -> None:
    uri = f"http://alice:{SECRET}@127.0.0.1:9"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = entry_points.run("evaluate", cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 1
    assert (
        "expected MLFLOW_TRACKING_URI without a login, got 'http://alice:***@127.0.0.1:9': put "
        "the user name in MLFLOW_TRACKING_USERNAME and the password in MLFLOW_TRACKING_PASSWORD"
    ) in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"postgresql://mlflow:{SECRET}@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        ("postgresql://mlflow@db/mlflow", "postgresql://mlflow@db/mlflow"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_shown_masks_a_password(uri: str, expected: str) -> None:
    assert logins.shown(uri) == expected
    assert logins.is_masked(logins.shown(uri)) == (SECRET in uri)


def test_a_parcel_keeps_no_password_and_asks_for_the_uri_to_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(outbox.OUTBOX_VARIABLE, str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    parcel = outbox.new_parcel("abc", f"postgresql://mlflow:{SECRET}@db/mlflow")
    with pytest.raises(outbox.UploadFailed, match="set MLFLOW_TRACKING_URI to that store's URI"):
        outbox.send(parcel)
    kept = (parcel.folder / outbox.PENDING).read_text()
    assert "postgresql://mlflow:***@db/mlflow" in kept
    assert SECRET not in kept


def _refused(code: int, endpoint: str) -> MlflowException:
    return MlflowException(
        f"API request to endpoint {endpoint} failed with error code 403 != 200. "
        "Response body: 'Permission denied'",
        error_code=code,
    )


def test_refusals_name_the_user_and_what_to_ask_for(monkeypatch: pytest.MonkeyPatch) -> None:
    server = "http://127.0.0.1:5000"
    monkeypatch.setenv(logins.USERNAME, "bob")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    created = logins.refusal(_refused(PERMISSION_DENIED, "/api/2.0/mlflow/runs/create"), server)
    assert created == (
        "user 'bob' lacks the permission the tracking server at http://127.0.0.1:5000 asked for "
        "/api/2.0/mlflow/runs/create (experiment 'team'): ask a user with MANAGE permission on "
        "that experiment or model, or an admin, to grant bob EDIT on it"
    )
    read = logins.refusal(_refused(PERMISSION_DENIED, "/api/2.0/mlflow/runs/get"), server)
    assert read.endswith("to grant bob READ on it")
    wrong = logins.refusal(_refused(UNAUTHENTICATED, "/api/2.0/mlflow/runs/get"), server)
    assert "did not take the login of user 'bob'" in wrong
    monkeypatch.delenv(logins.USERNAME)
    asked = logins.refusal(_refused(UNAUTHENTICATED, "/api/2.0/mlflow/runs/get"), server)
    assert asked.endswith(
        "asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    )
    assert logins.refusal(_refused(RESOURCE_DOES_NOT_EXIST, "x"), server) == ""
    assert logins.refusal(ValueError("no"), server) == ""
