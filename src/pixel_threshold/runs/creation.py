"""A step's run created once, though MLflow's client may send its creation twice.

MLflow's client retries any request, a POST too, whose connection closes before the
answer comes. A tracking server killed after it committed a new run but before it
answered has made that run; the retried request makes a second one, and the first,
which nobody holds, stays RUNNING for ever. So every run a step creates carries a token
of its own (`CREATION_TAG`): once the run is created, any other run with its token was
made by a lost answer, and is ended KILLED with a note naming the run that holds the
step (`started`). Ending it needs the permission creating it did (EDIT); deleting it
would need MANAGE, which a team's users may not have.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.entities import RunInfo, RunStatus
from mlflow.environment_variables import MLFLOW_RUN_ID

from pixel_threshold.runs.failures import DESCRIPTION_TAG

CREATION_TAG = "creation_token"
"""A token made for one creation request; the runs holding it were made by that request."""
COPY_OF_TAG = "copy_of"
"""On a run ended as a copy: the run that holds the step."""


@contextmanager
def started(nested: bool) -> Iterator[mlflow.ActiveRun]:
    """``mlflow.start_run(nested=nested)``, with any copy of a run it creates ended (the
    module's docstring). The run ``mlflow run`` made for the process (``MLFLOW_RUN_ID``),
    which ``start_run`` takes up, is started as it is."""
    token = "" if os.environ.get(MLFLOW_RUN_ID.name) else uuid.uuid4().hex
    with mlflow.start_run(nested=nested, tags={CREATION_TAG: token} if token else None) as run:
        if token:
            end_copies(run.info, token)
        yield run


def end_copies(kept: RunInfo, token: str) -> None:
    """End KILLED every run of ``kept``'s experiment created with ``token`` but ``kept``,
    tagged `COPY_OF_TAG` and with a note; say so on stderr."""
    client = mlflow.MlflowClient()
    made = client.search_runs(
        [kept.experiment_id], filter_string=f"tags.{CREATION_TAG} = '{token}'"
    )
    note = (
        f"A copy of run {kept.run_id}, made when MLflow's client sent the request that "
        "created it again (the tracking server made the run, but its answer was lost). "
        "Nothing ran in it."
    )
    for run in made:
        if run.info.run_id == kept.run_id:
            continue
        client.set_tag(run.info.run_id, COPY_OF_TAG, kept.run_id)
        client.set_tag(run.info.run_id, DESCRIPTION_TAG, note)
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        print(
            f"the tracking server created run {kept.run_id} twice (its first answer was "
            f"lost); the copy {run.info.run_id} is ended KILLED",
            file=sys.stderr,
        )
