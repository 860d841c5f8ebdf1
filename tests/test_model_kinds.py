"""Attacking every kind of model through the steps: a scikit-learn MLP (sklearn flavour),
the same MLP in ONNX Runtime (a .onnx file and the onnx flavour) and a custom pyfunc,
each trained in the test on the digits. For each: attack, then evaluate with
attack_agreement 1.0, every saved image scored again as the attack recorded it, and the
budget held."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from pixel_threshold.artifacts import manifest
from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Sample
from pixel_threshold.data.datasets import digits
from pixel_threshold.models import loading
from pixel_threshold.models.options import ModelOptions
from pixel_threshold.runs import tracking
from pixel_threshold.runs.params import AttackParams, EvaluateParams, MainParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.main import run_main
from tests import model_kinds
from tests.tracking_store import sqlite_experiment

TH = 2
ATTACK = {"th": TH, "es": 2, "limit": 15, "max_iter": 150, "input_range": "0,1"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_experiment(tmp_path_factory.mktemp("kinds"), "kinds") as experiment_id:
        yield experiment_id


@pytest.fixture(scope="module")
def mlp(experiment: str) -> Any:
    return model_kinds.digits_mlp()


def _attack_and_evaluate(model: str, kind: str, **options: Any) -> None:
    attack_id = run_attack(AttackParams(model=model, **{**ATTACK, **options}))
    attack = mlflow.get_run(attack_id)
    assert attack.data.tags[tracking.MODEL_KIND_TAG] == kind
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack_id)))
    metrics = evaluated.data.metrics
    assert metrics["attack_agreement"] == 1.0
    assert metrics["adversarial_accuracy"] == attack.data.metrics["adversarial_accuracy"]
    assert attack.data.metrics["images_attacked"] > 5
    assert attack.data.metrics["success_rate"] > 0
    adv = tracking.read_adversarial_set(attack_id, (8, 8, 1))
    logged = manifest.read(adv.manifest, source=attack_id)
    originals = digits().test_images[logged["index"]]
    changed = np.any(adv.images != originals, axis=-1).sum(axis=(1, 2))
    assert np.all(changed <= TH) and np.all((changed > 0) == logged["success"])


def test_a_scikit_learn_mlp(experiment: str, mlp: Any) -> None:
    _attack_and_evaluate(model_kinds.log_sklearn(mlp), "sklearn")


def test_the_mlp_in_onnx_runtime_as_a_file_and_as_an_mlflow_model(
    experiment: str, mlp: Any, tmp_path: Path
) -> None:
    _attack_and_evaluate(model_kinds.save_onnx(mlp, tmp_path), "onnx")
    _attack_and_evaluate(model_kinds.log_onnx(mlp), "onnx")


def test_a_custom_pyfunc_returning_logits(experiment: str, mlp: Any) -> None:
    _attack_and_evaluate(model_kinds.log_pyfunc(mlp), "pyfunc")
    attack = mlflow.get_run(run_attack(AttackParams(model=model_kinds.log_pyfunc(mlp), **ATTACK)))
    assert attack.data.tags[tracking.MODEL_OUTPUTS_TAG] == "logits"


def test_one_network_in_two_runtimes_gives_the_same_attack(
    experiment: str, mlp: Any, tmp_path: Path
) -> None:
    """The MLP in scikit-learn and in ONNX Runtime: same seeds, same successes and
    queries, image by image."""
    options = ModelOptions(batch_size=100, input_range="0,1")
    runtimes = {
        "sklearn": loading.load_classifier(model_kinds.log_sklearn(mlp), options),
        "onnx": loading.load_classifier(model_kinds.save_onnx(mlp, tmp_path), options),
    }
    split = digits()
    samples = [
        Sample(index, image, int(label))
        for index, (image, label) in enumerate(
            zip(split.test_images[:40], split.test_labels[:40], strict=True)
        )
    ]
    config = AttackConfig(th=TH, es=2, max_iter=150, popsize=1, batch_size=100, seed=0)
    outcomes = {
        name: sorted(
            (r.index, r.success, r.queries, r.label_after)
            for r in PixelThresholdAttack(config).run(samples, runtime)
        )
        for name, runtime in runtimes.items()
    }
    assert outcomes["sklearn"] == outcomes["onnx"]
    assert any(success for _, success, _, _ in outcomes["onnx"])


def test_main_attacks_a_model_of_its_own_without_training(
    experiment: str, mlp: Any, tmp_path: Path
) -> None:
    model = model_kinds.save_onnx(mlp, tmp_path)
    parent = run_main(
        MainParams(
            model=model,
            input_range="0,1",
            th_values="2",
            es_values="1,2",
            limit=10,
            max_iter=5,
            popsize=20,
        )
    )
    children = mlflow.search_runs(
        experiment_ids=[experiment],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    assert [child.data.tags[tracking.STEP_TAG] for child in children] == [
        *["attack", "evaluate"] * 2,
        "report",
    ]
    assert all(child.info.status == "FINISHED" for child in children)
    assert {child.data.tags[tracking.MODEL_URI_TAG] for child in children} == {model}
    assert tracking.TRAIN_RUN_TAG not in mlflow.get_run(parent).data.tags


def test_the_run_shows_its_model_kind_and_data_and_sits_under_training_runs(
    experiment: str, mlp: Any, tmp_path: Path
) -> None:
    """The UI's Dataset column reads the run's dataset input; MLflow's UI lists an
    experiment tagged custom_model_development under "Training runs"."""
    attack = mlflow.get_run(
        run_attack(AttackParams(model=model_kinds.save_onnx(mlp, tmp_path), **ATTACK))
    )
    [dataset_input] = attack.inputs.dataset_inputs
    assert dataset_input.dataset.name == "digits"
    assert [tag.value for tag in dataset_input.tags] == ["attack"]
    assert attack.data.tags[tracking.MODEL_KIND_TAG] == "onnx"
    kind = mlflow.get_experiment(experiment).tags[tracking.EXPERIMENT_KIND_TAG]
    assert kind == tracking.MODEL_DEVELOPMENT
