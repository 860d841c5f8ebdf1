"""Attacking a model behind a scoring server (answering as MLflow's does), and the
mistakes a model can make, each a clear error that fails the run with nothing lost."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from pixel_threshold.models.backends import http
from pixel_threshold.runs import failures, outbox, records, tracking
from pixel_threshold.runs.params import AttackParams, EvaluateParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from tests import model_kinds
from tests.scoring_server import Scoring, scoring_server
from tests.tracking_store import sqlite_experiment

ENDPOINT = {"th": 2, "es": 2, "limit": 12, "max_iter": 100, "input_range": "0,1"}
ENDPOINT_FLAT = {**ENDPOINT, "layout": "flat", "batch_size": 64}
TOKEN = "s3cret-t0ken-for-the-test"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_experiment(tmp_path_factory.mktemp("endpoints"), "endpoints") as experiment_id:
        yield experiment_id


@pytest.fixture(scope="module")
def mlp(experiment: str) -> Any:
    return model_kinds.digits_mlp()


def _latest(experiment: str) -> Any:
    return mlflow.search_runs(
        experiment_ids=[experiment],
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )[0]


def _everything_logged(run_id: str, folder: Path) -> str:
    """The run's params, tags and every artifact's bytes, as one text."""
    run = mlflow.get_run(run_id)
    texts = [repr(run.data.params), repr(run.data.tags)]
    local = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(folder))
    texts += [
        path.read_bytes().decode("latin-1") for path in Path(local).rglob("*") if path.is_file()
    ]
    return "\n".join(texts)


def test_an_endpoint_is_attacked_in_batched_requests_with_a_token_that_is_never_logged(
    experiment: str, mlp: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(http.TOKEN_VARIABLE, TOKEN)
    scoring = Scoring(mlp.predict_proba, token=TOKEN)
    with scoring_server(scoring) as url:
        attack_id = run_attack(AttackParams(model=url, **ENDPOINT_FLAT))
        evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack_id)))
    attack = mlflow.get_run(attack_id)
    assert attack.info.status == "FINISHED"
    assert attack.data.tags[tracking.MODEL_KIND_TAG] == "http"
    assert attack.data.tags[tracking.MODEL_OUTPUTS_TAG] == "probabilities"
    assert evaluated.data.metrics["attack_agreement"] == 1.0
    assert (
        evaluated.data.metrics["adversarial_accuracy"]
        == attack.data.metrics["adversarial_accuracy"]
    )
    assert scoring.authorizations == {f"Bearer {TOKEN}"}
    assert max(scoring.rows) <= -(-64 // http.IN_FLIGHT)  # a call's rows split in requests
    for run_id in (attack_id, evaluated.info.run_id):
        assert TOKEN not in _everything_logged(run_id, tmp_path / run_id)
    assert not any(TOKEN in path.read_text() for path in outbox.root().rglob("*.json"))


def test_a_server_that_fails_mid_attack_fails_the_run_keeping_the_finished_images(
    experiment: str, mlp: Any
) -> None:
    """Failed requests are retried, then fail the attack; the images done are logged
    and a resumed attack finishes the rest once the server answers again."""
    scoring = Scoring(mlp.predict_proba, fail_after=500)
    params = AttackParams(**{**ENDPOINT_FLAT, "batch_size": 4, "limit": 20})
    with scoring_server(scoring) as url:
        with pytest.raises(
            ValueError, match=r"did not answer a request of 1 rows after 4 tries: HTTP 500"
        ):
            run_attack(dataclasses.replace(params, model=url))
        failed = _latest(experiment)
        assert failed.info.status == "FAILED"
        assert "HTTP 500" in failed.data.tags[failures.ERROR_TAG]
        done, total = failed.data.tags["images_done"].split(" of ")
        assert total == "20" and 0 < int(done) < 20
        scoring.fail_after = None
        resumed = mlflow.get_run(
            run_attack(dataclasses.replace(params, model=url, resume=failed.info.run_id))
        )
    assert resumed.info.status == "FINISHED" and resumed.data.tags["resumed_from"]


def test_an_unreachable_url_fails_the_run_before_any_query(experiment: str) -> None:
    with pytest.raises(ValueError, match=r"model='http://127.0.0.1:9/invocations' did not answer"):
        run_attack(AttackParams(model="http://127.0.0.1:9", **ENDPOINT))
    failed = _latest(experiment)
    assert failed.info.status == "FAILED" and "did not answer" in failed.data.tags["error"]


def test_credentials_in_the_url_are_refused(experiment: str) -> None:
    with pytest.raises(ValueError, match=f"put a bearer token in the {http.TOKEN_VARIABLE}"):
        run_attack(AttackParams(model="http://user:pw@127.0.0.1:9", **ENDPOINT))


class Labels(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: Any, params: Any = None) -> np.ndarray:
        return np.zeros(len(model_input), dtype=np.int64)


class NotANumber(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: Any, params: Any = None) -> np.ndarray:
        return np.full((len(model_input), 10), np.nan)


def _pyfunc(model: Any) -> str:
    with mlflow.start_run():
        uri: str = mlflow.pyfunc.log_model(name="model", python_model=model).model_uri
    return uri


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("labels", {}, r"got labels only, shape \(12,\): log it so that it predicts class "),
        ("nan", {}, "expected finite outputs from the model, got NaN or inf for 12 of 12"),
        ("onnx", {"layout": "NCHW"}, r"score \(8, 8, 1\) \(H, W, C\) images laid out NCHW"),
        ("svm", {}, "without predict_proba .it returns labels only."),
    ],
)
def test_models_that_cannot_be_attacked_as_asked_are_refused_before_any_query(
    experiment: str, mlp: Any, tmp_path: Path, model: str, options: dict[str, str], message: str
) -> None:
    if model == "labels":
        uri = _pyfunc(Labels())
    elif model == "nan":
        uri = _pyfunc(NotANumber())
    elif model == "onnx":
        uri = model_kinds.save_onnx(mlp, tmp_path)
    else:
        from sklearn.svm import LinearSVC

        split = model_kinds.digits()
        svm = LinearSVC().fit(
            split.train_images.reshape(len(split.train_images), -1), split.train_labels
        )
        with mlflow.start_run():
            uri = mlflow.sklearn.log_model(svm, name="model").model_uri
    params = AttackParams(model=uri, **{**ENDPOINT, "limit": 12, **options})
    with pytest.raises(ValueError, match=message):
        run_attack(params)
    failed = records.LoggedRun.of(_latest(experiment))
    assert failed.status == "FAILED"
    assert not MlflowClient().get_metric_history(failed.run_id, "images_attacked")
