"""Results kept on disk until the tracking server has them (`outbox`), against a sqlite
store and a server that is not there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from pixel_threshold.runs import failures, outbox
from tests.ray_head import free_port
from tests.tracking_store import sqlite_experiment


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    with sqlite_experiment(tmp_path, "outbox") as experiment_id:
        yield experiment_id


def _parcel(run_id: str) -> outbox.Parcel:
    parcel = outbox.new_parcel(run_id, mlflow.get_tracking_uri())
    parcel.metrics |= {"success_rate": 0.25, "mean_queries": 120.0}
    parcel.histories["robust_accuracy"] = [0.9, 0.5, 0.1]
    parcel.tags["images_done"] = "4 of 4"
    (parcel.artifacts / "adv_testing.tar.gz").write_bytes(b"results")
    return parcel


def _logged(run_id: str) -> tuple[dict[str, float], dict[str, str], set[str]]:
    run = mlflow.get_run(run_id)
    listed = {item.path for item in mlflow.MlflowClient().list_artifacts(run_id)}
    return run.data.metrics, run.data.tags, listed


def test_a_parcel_that_is_sent_is_logged_and_removed(experiment: str) -> None:
    with mlflow.start_run() as run:
        parcel = _parcel(run.info.run_id)
        outbox.send(parcel)
    metrics, tags, listed = _logged(run.info.run_id)
    assert metrics["success_rate"] == 0.25
    assert tags["images_done"] == "4 of 4"
    assert listed == {"adv_testing.tar.gz"}
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "robust_accuracy")
    assert [(point.step, point.value) for point in history] == [(0, 0.9), (1, 0.5), (2, 0.1)]
    assert not parcel.folder.exists()


def test_a_failed_upload_keeps_the_parcel_and_the_command_uploads_it_later(
    experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = mlflow.get_tracking_uri()
    run = mlflow.MlflowClient().create_run(experiment)
    run_id = run.info.run_id
    parcel = _parcel(run_id)
    mlflow.MlflowClient().set_tag(run_id, failures.ERROR_TAG, "could not log the results")
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(outbox.UploadFailed) as raised:
        outbox.send(parcel)
    assert str(raised.value).startswith(
        f"could not log the results of run {run_id} to the tracking server at {down}: "
    )
    assert str(raised.value).endswith(
        f"They are kept in {parcel.folder}: once the server answers, upload them with "
        f"`python -m pixel_threshold.runs.outbox {parcel.folder}`"
    )
    assert (parcel.folder / outbox.PENDING).is_file()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    done = CliRunner().invoke(outbox.main, [str(parcel.folder)])
    assert done.exit_code == 0, done.output
    assert done.output == (
        f"uploaded run {run_id} (adv_testing.tar.gz; 2 metrics), ended it FINISHED, "
        f"removed {parcel.folder}\n"
    )
    metrics, tags, listed = _logged(run_id)
    assert (metrics["mean_queries"], listed) == (120.0, {"adv_testing.tar.gz"})
    assert failures.ERROR_TAG not in tags
    assert mlflow.get_run(run_id).info.status == "FINISHED"
    assert not parcel.folder.exists()
    assert CliRunner().invoke(outbox.main, []).output == f"nothing to upload in {outbox.root()}\n"


def test_an_incomplete_parcel_is_not_uploaded(experiment: str) -> None:
    folder = outbox.new_parcel("0123", mlflow.get_tracking_uri()).folder  # never saved
    done = CliRunner().invoke(outbox.main, [str(folder)])
    assert done.exit_code == 1
    assert f"expected a parcel with pending.json in {folder}, found none" in done.output
