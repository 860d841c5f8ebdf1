"""Writes that runs started together race to make on one tracking server.

MLflow 3.17's SQL store writes an experiment's tag, or a dataset an experiment's runs
share, by looking for the row and inserting it if there is none. When two runs do so at
once (a team's attacks started together on PostgreSQL), both find none, one insert
breaks the table's unique key, and the server answers BAD_REQUEST naming the
constraint. The row is there by then, so the same write again succeeds: `written`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mlflow.exceptions import MlflowException

T = TypeVar("T")
UNIQUE_KEY_BROKEN = ("unique constraint", "duplicate key", "duplicate entry")
"""How PostgreSQL, sqlite and MySQL word an insert that broke a unique key."""


def lost_race(error: Exception) -> bool:
    """Whether ``error`` is the tracking server refusing a write another run made first."""
    if not isinstance(error, MlflowException) or error.error_code != "BAD_REQUEST":
        return False
    message = error.message.lower()
    return any(words in message for words in UNIQUE_KEY_BROKEN)


def written(write: Callable[[], T]) -> T:
    """``write()``, made once more if another run's same write won the race to it."""
    try:
        return write()
    except MlflowException as error:
        if not lost_race(error):
            raise
    return write()
