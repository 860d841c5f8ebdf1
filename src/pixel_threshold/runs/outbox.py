"""An attack's results, kept on disk until the tracking server has them.

An attack writes everything it logs at its end (artifacts, metrics, tags) into a
parcel of its own, ``<outbox>/<run id>/``, before it uploads any of it (`send`); the
parcel is removed once the upload succeeded. If the upload fails (the tracking
server went down during the attack), the parcel stays, the error names its folder,
and ``python -m pixel_threshold.runs.outbox [FOLDER ...]`` uploads it later to the same
run and ends that run as the attack would have.

The outbox is ``$PIXEL_THRESHOLD_OUTBOX``, else ``$XDG_DATA_HOME/pixel-threshold/outbox``
(``~/.local/share/pixel-threshold/outbox``). MLflow is imported only to upload.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from pixel_threshold.runs import failures, logins

OUTBOX_VARIABLE = "PIXEL_THRESHOLD_OUTBOX"
PENDING = "pending.json"
"""What a parcel holds besides its artifacts; written last, so a parcel without it is
incomplete (the attack stopped while writing it)."""
ARTIFACTS = "artifacts"
UPLOAD_COMMAND = "python -m pixel_threshold.runs.outbox"


class UploadFailed(Exception):
    """Results could not be logged to the tracking server; they are kept in a parcel."""


def root() -> Path:
    """The outbox folder (see the module's docstring)."""
    if os.environ.get(OUTBOX_VARIABLE):
        return Path(os.environ[OUTBOX_VARIABLE])
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "pixel-threshold" / "outbox"


@dataclass
class Parcel:
    """What one run still has to log: ``artifacts/`` in ``folder``, ``metrics`` (at
    step 0), ``histories`` (a metric's values at steps 0, 1, ...), ``tags``, and the
    ``status`` to end the run with when the parcel is uploaded after the attack."""

    folder: Path
    run_id: str
    tracking_uri: str
    status: str = "FINISHED"
    metrics: dict[str, float] = field(default_factory=dict)
    histories: dict[str, list[float]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def artifacts(self) -> Path:
        return self.folder / ARTIFACTS

    def save(self) -> None:
        """Write ``pending.json``: the parcel is complete on disk."""
        document = {key: value for key, value in asdict(self).items() if key != "folder"}
        (self.folder / PENDING).write_text(json.dumps(document, indent=1) + "\n")


def new_parcel(run_id: str, tracking_uri: str) -> Parcel:
    """An empty parcel for ``run_id`` (its artifacts folder created, replacing any
    earlier parcel of the run), keeping ``tracking_uri`` without its password
    (`logins.shown`)."""
    folder = root() / run_id
    shutil.rmtree(folder, ignore_errors=True)
    (folder / ARTIFACTS).mkdir(parents=True)
    return Parcel(folder=folder, run_id=run_id, tracking_uri=logins.shown(tracking_uri))


def keep_end(run_id: str, tracking_uri: str, status: str, tags: dict[str, str]) -> Path:
    """Keep a run's end that the tracking server did not take, ``status`` and ``tags``
    (a failed run's error), in the run's parcel, and return its folder. A run that
    already has a parcel (its results) keeps that parcel's status, taking ``tags`` only
    if it ends with ``status`` too; a run without one gets a parcel of no artifacts."""
    try:
        parcel = read_parcel(root() / run_id)
    except ValueError:
        parcel = new_parcel(run_id, tracking_uri)
        parcel.status = status
    if parcel.status == status:
        parcel.tags |= tags
    parcel.save()
    return parcel.folder


def read_parcel(folder: Path) -> Parcel:
    """The parcel saved in ``folder``; raises ValueError if it is not a complete one."""
    pending = folder / PENDING
    if not pending.is_file():
        raise ValueError(f"expected a parcel with {PENDING} in {folder}, found none")
    return Parcel(folder=folder, **json.loads(pending.read_text()))


def send(parcel: Parcel, *, end_run: bool = False) -> None:
    """Save ``parcel``, log it to its run (on ``MLFLOW_TRACKING_URI`` if set, else where
    the run was), then remove it; with ``end_run``, also end the run with the parcel's
    status and clear the error an earlier failed upload recorded. Raises
    `UploadFailed`, naming the folder and how to upload it later, if logging fails (a
    login the server refused, in words: `logins.refusal`). An error the parcel's own
    tags record stays."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    parcel.save()
    now = int(time.time() * 1000)
    metrics = [Metric(name, value, now, 0) for name, value in parcel.metrics.items()]
    metrics += [
        Metric(name, value, now, step)
        for name, values in parcel.histories.items()
        for step, value in enumerate(values)
    ]
    uri = os.environ.get("MLFLOW_TRACKING_URI") or parcel.tracking_uri
    if logins.is_masked(uri):
        raise UploadFailed(
            f"the results of run {parcel.run_id} in {parcel.folder} go to {uri}, whose password "
            "is not kept: set MLFLOW_TRACKING_URI to that store's URI with its password and "
            f"upload them with `{UPLOAD_COMMAND} {parcel.folder}`"
        )
    try:
        client = mlflow.MlflowClient(uri)
        client.log_batch(
            parcel.run_id,
            metrics=metrics,
            tags=[RunTag(name, value) for name, value in parcel.tags.items()],
        )
        client.log_artifacts(parcel.run_id, str(parcel.artifacts))
        if end_run:
            logged = client.get_run(parcel.run_id).data.tags
            for tag in (failures.ERROR_TAG, failures.DESCRIPTION_TAG):
                if tag in logged and tag not in parcel.tags:
                    client.delete_tag(parcel.run_id, tag)
            client.set_terminated(parcel.run_id, parcel.status)
    except Exception as error:  # whatever stopped the upload, the parcel is kept
        refused = logins.refusal(error, uri)
        once = (
            f"once {logins.USERNAME} and {logins.PASSWORD} hold a login it takes"
            if logins.login_refused(error)
            else "once the server answers"
        )
        raise UploadFailed(
            f"could not log the results of run {parcel.run_id} to the tracking server at "
            f"{logins.shown(uri)}: {refused or error}. They are kept in {parcel.folder}: "
            f"{once}, upload them with `{UPLOAD_COMMAND} {parcel.folder}`"
        ) from error
    shutil.rmtree(parcel.folder)


@click.command("outbox")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
def main(folders: Sequence[Path]) -> None:
    """Upload the results kept in FOLDERS (default: every parcel in the outbox) to
    their runs, end each run as its attack would have, and remove the folders. The
    tracking server is MLFLOW_TRACKING_URI if set, else the one each run was on."""
    parcels = list(folders) or sorted(path.parent for path in root().glob(f"*/{PENDING}"))
    if not parcels:
        click.echo(f"nothing to upload in {root()}")
    for folder in parcels:
        try:
            parcel = read_parcel(folder)
            files = sorted(path.name for path in parcel.artifacts.iterdir())
            send(parcel, end_run=True)
        except (ValueError, UploadFailed) as error:
            raise click.ClickException(str(error)) from error
        click.echo(
            f"uploaded run {parcel.run_id} ({', '.join(files)}; {len(parcel.metrics)} metrics), "
            f"ended it {parcel.status}, removed {folder}"
        )


if __name__ == "__main__":
    main()
