"""Logins to a team's tracking server, kept out of everything a run leaves.

A server with logins (``mlflow server --app-name basic-auth``) takes a user name and
password from MLflow's environment variables, `USERNAME` and `PASSWORD` (or a token from
``MLFLOW_TRACKING_TOKEN``); MLflow's client sends them with each request, and nothing
here logs, prints or stores them. A tracking server's URI holding a login
(``http://user:password@host``) is refused (`check_uri`): the URI is printed and kept in
outbox parcels. A database URI must hold its login (``postgresql://user:password@host/db``);
it is shown and kept with the password masked (`shown`).

A server that refuses a login (401) or a permission (403) raises MLflow's exception;
`refusal` says what went wrong in words that name the user and what to ask for.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

USERNAME = "MLFLOW_TRACKING_USERNAME"
PASSWORD = "MLFLOW_TRACKING_PASSWORD"
MASK = "***"
SERVER_SCHEMES = ("http://", "https://")
_ENDPOINT = re.compile(r"endpoint (\S+) failed with error code")
_WRITES = re.compile(r"create|log|set|update|delete|rename|restore")
"""Words of the REST endpoints that change what they name (an experiment's runs need
EDIT permission for these, READ for the others)."""


def check_uri(uri: str) -> None:
    """Raise ValueError if ``uri``, a tracking server's, holds a login."""
    parts = urlsplit(uri)
    if uri.startswith(SERVER_SCHEMES) and (parts.username or parts.password):
        raise ValueError(
            f"expected MLFLOW_TRACKING_URI without a login, got {shown(uri)!r}: put the user "
            f"name in {USERNAME} and the password in {PASSWORD} instead, so that no run, "
            "printed line or kept result holds them"
        )


def shown(uri: str) -> str:
    """``uri`` with any password in it masked (`MASK`)."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def is_masked(uri: str) -> bool:
    """Whether ``uri`` is a `shown` one whose password was masked."""
    return urlsplit(uri).password == MASK


def login_refused(error: BaseException) -> bool:
    """Whether ``error`` is MLflow's exception for a login the server did not take (401)."""
    return getattr(error, "error_code", "") == "UNAUTHENTICATED"


def refusal(error: BaseException, uri: str) -> str:
    """What the tracking server at ``uri`` refused, naming the user, if ``error`` is
    MLflow's exception for a refused login (401) or permission (403); else ''."""
    user = os.environ.get(USERNAME, "")
    where = f"the tracking server at {shown(uri)}"
    if login_refused(error) and not user:
        return f"{where} asks for a login: set {USERNAME} and {PASSWORD}"
    if login_refused(error):
        return (
            f"{where} did not take the login of user {user!r} ({USERNAME}, {PASSWORD}): "
            "check the password (an admin may have changed it)"
        )
    if getattr(error, "error_code", "") != "PERMISSION_DENIED":
        return ""
    found = _ENDPOINT.search(str(error))
    endpoint = found.group(1) if found else "a request"
    needed = "EDIT" if found and _WRITES.search(endpoint.rsplit("/", 1)[-1]) else "READ"
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get(
        "MLFLOW_EXPERIMENT_ID", ""
    )
    scope = f" (experiment {experiment!r})" if experiment else ""
    return (
        f"user {user or '(none)'!r} lacks the permission {where} asked for {endpoint}{scope}: "
        f"ask a user with MANAGE permission on that experiment or model, or an admin, to "
        f"grant {user or 'you'} {needed} on it"
    )
