"""Writes that runs started together race to make (`runs.races`): the refusal of the
write another run made first is told from other refusals, and made once more."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE

from pixel_threshold.runs import races

POSTGRESQL = (
    '(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"'
)
SQLITE = "(sqlite3.IntegrityError) UNIQUE constraint failed: experiment_tags.key"
MYSQL = "(pymysql.err.IntegrityError) (1062, \"Duplicate entry '1-digits' for key 'PRIMARY'\")"


@pytest.mark.parametrize("message", [POSTGRESQL, SQLITE, MYSQL])
def test_a_broken_unique_key_is_a_lost_race(message: str) -> None:
    assert races.lost_race(MlflowException(message, BAD_REQUEST))


@pytest.mark.parametrize(
    "error",
    [
        MlflowException("Changing param values is not allowed", BAD_REQUEST),
        MlflowException(POSTGRESQL, INVALID_PARAMETER_VALUE),
        ValueError(POSTGRESQL),
    ],
)
def test_other_refusals_are_not(error: Exception) -> None:
    assert not races.lost_race(error)


class Writes:
    """A write refused with ``errors`` in turn, then done."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.made = 0

    def __call__(self) -> str:
        self.made += 1
        if self.errors:
            raise self.errors.pop(0)
        return "written"


def test_a_write_that_lost_the_race_is_made_again() -> None:
    write = Writes(MlflowException(POSTGRESQL, BAD_REQUEST))
    assert races.written(write) == "written"
    assert write.made == 2


def test_a_write_is_made_once_when_it_goes_through() -> None:
    write = Writes()
    assert races.written(write) == "written"
    assert write.made == 1


def test_another_refusal_is_raised_at_once() -> None:
    refusal = MlflowException("Changing param values is not allowed", BAD_REQUEST)
    write = Writes(refusal)
    with pytest.raises(MlflowException) as raised:
        races.written(write)
    assert raised.value is refusal
    assert write.made == 1


def test_a_second_refusal_is_raised() -> None:
    again = MlflowException(POSTGRESQL, BAD_REQUEST)
    write = Writes(MlflowException(POSTGRESQL, BAD_REQUEST), again)
    with pytest.raises(MlflowException) as raised:
        races.written(write)
    assert raised.value is again
    assert write.made == 2
