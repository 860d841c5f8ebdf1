"""A step's run created once, though MLflow's client may send its creation twice.

MLflow's client retries any request, a POST too, whose connection closes before the
answer comes. A tracking server killed after it committed a new run but before it
answered has made that run; the retried request makes a second one, and the first,
which nobody holds, stays RUNNING for ever. An answer cut off mid-way, which MLflow
does not retry, the step asks for once more itself (`start`), to the same end. So every
run a step creates carries a token of its own (`CREATION_TAG`): once the run is
created, any other run with its token was made by a lost answer, and is ended KILLED
with a note naming the run that holds the step (`end_copies`). Ending it needs the
permission creating it did (EDIT); deleting it would need MANAGE, which a team's users
may not have.
"""

from __future__ import annotations

import os
import sys
import uuid

import mlflow
from mlflow.entities import RunStatus
from mlflow.environment_variables import MLFLOW_RUN_ID

from pixel_threshold.models.sources import once_more_if_cut
from pixel_threshold.runs.failures import DESCRIPTION_TAG

CREATION_TAG = "creation_token"
"""A token made for one creation request; the runs holding it were made by that request."""
COPY_OF_TAG = "copy_of"
"""On a run ended as a copy: the run that holds the step."""


def start(nested: bool) -> mlflow.ActiveRun:
    """``mlflow.start_run(nested=nested)`` for a step: a new run carries a token of its
    own (`CREATION_TAG`); the run ``mlflow run`` made for the process (``MLFLOW_RUN_ID``),
    made by MLflow without one, is taken up as it is. Asked once more if its answer was
    cut off (`sources.once_more_if_cut`): a run created by the first request is then a
    copy (`end_copies`)."""
    made_for_us = os.environ.pop(MLFLOW_RUN_ID.name, None)  # as start_run does: not a child's
    tags = None if made_for_us else {CREATION_TAG: uuid.uuid4().hex}
    return once_more_if_cut(
        lambda: mlflow.start_run(run_id=made_for_us, nested=nested, tags=tags),
        "starting the step's run",
    )


def end_copies(kept: mlflow.ActiveRun) -> None:
    """End KILLED every run of ``kept``'s experiment created with ``kept``'s token
    (`start`) but ``kept``, tagged `COPY_OF_TAG` and with a note; say so on stderr.
    A run without a token has no copies."""
    token = kept.data.tags.get(CREATION_TAG)
    if not token:
        return
    client = mlflow.MlflowClient()
    made = client.search_runs(
        [kept.info.experiment_id], filter_string=f"tags.{CREATION_TAG} = '{token}'"
    )
    note = (
        f"A copy of run {kept.info.run_id}, made when MLflow's client sent the request that "
        "created it again (the tracking server made the run, but its answer was lost). "
        "Nothing ran in it."
    )
    for run in made:
        if run.info.run_id == kept.info.run_id:
            continue
        client.set_tag(run.info.run_id, COPY_OF_TAG, kept.info.run_id)
        client.set_tag(run.info.run_id, DESCRIPTION_TAG, note)
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        print(
            f"the tracking server created run {kept.info.run_id} twice (its first answer was "
            f"lost); the copy {run.info.run_id} is ended KILLED",
            file=sys.stderr,
        )
