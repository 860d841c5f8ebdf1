"""The kinds that need more than the default suite installs or waits for: a PyTorch CNN
(torch, the ``torch`` extra that ``make test-slow`` installs), as a TorchScript file and
as MLflow's pytorch flavour, attacked with torchvision-style parameters alone; and a
model served by ``mlflow models serve`` (a server the test starts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from pixel_threshold.runs import tracking
from pixel_threshold.runs.params import AttackParams, EvaluateParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from tests import model_kinds
from tests.tracking_store import model_server, sqlite_experiment

pytestmark = pytest.mark.slow
TORCHVISION_STYLE = {"input_range": "0,1", "mean": "0.5", "std": "0.25"}
ATTACK = {"th": 2, "es": 2, "limit": 12, "max_iter": 100}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_experiment(tmp_path_factory.mktemp("kinds-slow"), "kinds") as experiment_id:
        yield experiment_id


def _attack_and_evaluate(model: str, kind: str, **options: Any) -> str:
    attack_id = run_attack(AttackParams(model=model, **{**ATTACK, **options}))
    attack = mlflow.get_run(attack_id)
    assert attack.data.tags[tracking.MODEL_KIND_TAG] == kind
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack_id)))
    assert evaluated.data.metrics["attack_agreement"] == 1.0
    assert (
        evaluated.data.metrics["adversarial_accuracy"]
        == attack.data.metrics["adversarial_accuracy"]
    )
    assert attack.data.metrics["success_rate"] > 0
    assert attack.data.metrics["l_0_norm_max"] <= ATTACK["th"]
    return attack_id


def test_a_torchvision_style_pytorch_model_with_parameters_alone(
    experiment: str, tmp_path: Path
) -> None:
    """NCHW (pytorch's own layout), normalised floats, logits out: no wrapper code."""
    cnn = model_kinds.digits_torch_cnn()
    for uri in (model_kinds.save_torchscript(cnn, tmp_path), model_kinds.log_pytorch(cnn)):
        attack_id = _attack_and_evaluate(uri, "pytorch", **TORCHVISION_STYLE)
        assert mlflow.get_run(attack_id).data.tags[tracking.MODEL_OUTPUTS_TAG] == "logits"


@pytest.fixture
def served(experiment: str, tmp_path: Path) -> Iterator[str]:
    """``mlflow models serve`` of the digits MLP (sklearn flavour, predict_proba)."""
    uri = model_kinds.log_sklearn(model_kinds.digits_mlp())
    with model_server(uri, tmp_path / "serve.log") as server:
        yield server.url


def test_a_model_served_by_mlflow_models_serve(served: str) -> None:
    _attack_and_evaluate(served, "http", input_range="0,1", layout="flat", batch_size=64)
