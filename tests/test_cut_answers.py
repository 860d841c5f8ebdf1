"""A model whose loading the tracking server cuts off mid-answer (killed or restarted
under a team's load) is loaded once more (`models.sources.answer_cut_off`): MLflow
retries a server that does not answer, not an answer that stops half-way."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import numpy as np
import pytest

from pixel_threshold.models import loading
from pixel_threshold.models.options import ModelOptions
from pixel_threshold.models.scoring import Classifier
from pixel_threshold.models.small_cnn import small_cnn
from tests.cutting_proxy import Cuts, cutting_proxy
from tests.tracking_store import mlflow_server

RUN_ANSWER = "/api/2.0/mlflow/runs/get"
"""The run a ``runs:/`` model URI names, read before anything is downloaded."""
MODEL_FILE = "model.keras"
"""The model's file, downloaded through the server's artifact proxy."""


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A tracking server (sqlite, proxied artifacts) holding a small Keras model: its URL
    and the model's ``runs:/`` URI."""
    folder = tmp_path_factory.mktemp("cut-answers")
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    with mlflow_server(backend, folder / "server.log", artifacts=folder / "artifacts") as server:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", server.url)
            with mlflow.start_run() as run:
                model = small_cnn((8, 8, 1), 10)
                loading.log_model(model, name="model", example=np.zeros((1, 8, 8, 1)))
        yield server.url, f"runs:/{run.info.run_id}/model"


def _load(proxy: str, model_uri: str, monkeypatch: pytest.MonkeyPatch) -> Classifier:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
    return loading.load_classifier(model_uri, ModelOptions())


@pytest.mark.parametrize("path", [RUN_ANSWER, MODEL_FILE])
def test_a_load_cut_off_once_is_made_again(
    served_model: tuple[str, str],
    path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, model_uri = served_model
    cuts = Cuts(path, times=1)
    with cutting_proxy(server, cuts) as proxy:
        classifier = _load(proxy, model_uri, monkeypatch)
    assert len(cuts.made) == 1 and path in cuts.made[0]
    scores = np.asarray(classifier(np.zeros((2, 8, 8, 1), dtype=np.float32)))
    assert scores.shape == (2, 10)
    assert f"model={model_uri!r} did not load" in capsys.readouterr().err


def test_a_load_cut_off_twice_fails_naming_the_model(
    served_model: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, model_uri = served_model
    cuts = Cuts(RUN_ANSWER, times=3)
    with cutting_proxy(server, cuts) as proxy, pytest.raises(ValueError) as refused:
        _load(proxy, model_uri, monkeypatch)
    assert len(cuts.made) == 2
    assert f"cannot load model={model_uri!r}" in str(refused.value)
    assert "Connection broken" in str(refused.value)


def test_a_model_that_is_not_there_is_not_loaded_again(
    served_model: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _ = served_model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    with pytest.raises(ValueError, match="cannot load model="):
        loading.load_classifier("runs:/" + "0" * 32 + "/model", ModelOptions())
    assert "did not load" not in capsys.readouterr().err
