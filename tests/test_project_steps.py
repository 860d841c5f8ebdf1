"""The steps in-process against a temporary sqlite tracking store."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from PIL import Image

from pixel_threshold import models, tracking
from pixel_threshold.artifacts import AdvTesting, read_adv_testing
from pixel_threshold.data import digits
from pixel_threshold.metrics import DISTANCES, SUMMARIES
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.main import run_main
from pixel_threshold.steps.params import AttackParams, EvaluateParams, MainParams, TrainParams
from pixel_threshold.steps.train import run_train

ATTACK_METRICS = {
    "success_rate",
    "success_rate_ci_low",
    "success_rate_ci_high",
    "clean_accuracy",
    "adversarial_accuracy",
    "images_attacked",
    "mean_queries",
    "median_queries_successful",
    "attack_seconds",
    "queries_per_second",
} | {f"{name}_{summary}" for name in DISTANCES for summary in SUMMARIES}
SMALL = {"max_iter": 10, "popsize": 50}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment_id = MlflowClient(uri).create_experiment(
        "steps", artifact_location=(root / "artifacts").as_uri()
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
        yield experiment_id


@pytest.fixture(scope="module")
def train_run(experiment: str) -> Run:
    return mlflow.get_run(run_train(TrainParams(epochs=3, register_model_name="steps-digits")))


@pytest.fixture(scope="module")
def attack_run(train_run: Run) -> Run:
    return mlflow.get_run(run_attack(AttackParams(th=3, es=1, limit=30, **SMALL)))


def _adv_testing(run: Run, folder: Path) -> AdvTesting:
    tarball = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="adv_testing.tar.gz", dst_path=str(folder)
    )
    return read_adv_testing(Path(tarball), folder / "extracted")


def _latest_run(experiment: str) -> Run:
    runs = mlflow.search_runs(
        experiment_ids=[experiment],
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0]


def test_train_logs_parameters_metrics_and_a_registered_model(train_run: Run) -> None:
    run_id = train_run.info.run_id
    assert train_run.data.params == {
        "dataset": "digits",
        "architecture": "small_cnn",
        "weights": "none",
        "epochs": "3",
        "batch_size": "64",
        "learning_rate": "0.001",
        "seed": "0",
        "register_model_name": "steps-digits",
    }
    assert train_run.data.tags[tracking.STEP_TAG] == "train"
    assert train_run.data.metrics["test_accuracy"] >= 0.85
    history = MlflowClient().get_metric_history(run_id, "val_accuracy")
    assert [metric.step for metric in history] == [0, 1, 2]
    signature = mlflow.models.get_model_info(f"runs:/{run_id}/model").signature
    assert tuple(signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 8, 8, 1)
    assert MlflowClient().get_model_version("steps-digits", "1").run_id == run_id


def test_attack_logs_parameters_metrics_artifacts_and_lineage(
    attack_run: Run, train_run: Run
) -> None:
    params = attack_run.data.params
    assert (params["th"], params["es"], params["model"], params["limit"]) == ("3", "1", "", "30")
    train_id = train_run.info.run_id
    tags = attack_run.data.tags
    assert tags[tracking.MODEL_URI_TAG] == f"runs:/{train_id}/model"
    assert tags[tracking.TRAIN_RUN_TAG] == train_id
    assert set(attack_run.data.metrics) == ATTACK_METRICS
    assert attack_run.data.metrics["success_rate"] >= 0.3
    names = {item.path for item in MlflowClient().list_artifacts(attack_run.info.run_id)}
    assert names == {"adv_testing.tar.gz", "distance_metrics.csv.gz", "examples.png"}


def test_tarball_holds_the_attacked_set_and_agrees_with_the_metrics(
    attack_run: Run, tmp_path: Path
) -> None:
    adv = _adv_testing(attack_run, tmp_path)
    split = digits()
    assert adv.column("index").tolist() == list(range(30))
    assert adv.labels.tolist() == split.test_labels[:30].tolist()
    assert all(
        file == f"adv_testing/{name}/{row:05d}.png"
        for row, (file, name) in enumerate(
            zip(adv.manifest["file"], adv.manifest["label_name"], strict=True)
        )
    )
    success = np.array(adv.manifest["success"]) == "True"
    attacked = np.array(adv.manifest["attacked"]) == "True"
    changed = np.any(adv.images != split.test_images[:30], axis=-1).sum(axis=(1, 2))
    assert (changed[~success] == 0).all()
    assert (changed[success] >= 1).all() and (changed <= 3).all()
    assert changed.tolist() == [float(value) for value in adv.manifest["l_0_norm"]]
    metrics = attack_run.data.metrics
    assert metrics["success_rate"] == success.sum() / attacked.sum()
    assert metrics["clean_accuracy"] == np.mean(adv.column("label_before") == adv.labels)


def test_evaluate_reproduces_the_attack_exactly(attack_run: Run, tmp_path: Path) -> None:
    run = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack_run.info.run_id)))
    assert run.data.tags[tracking.ATTACK_RUN_TAG] == attack_run.info.run_id
    assert run.data.tags[tracking.MODEL_URI_TAG] == attack_run.data.tags[tracking.MODEL_URI_TAG]
    metrics, attacked = run.data.metrics, attack_run.data.metrics
    assert metrics["adversarial_accuracy"] == attacked["adversarial_accuracy"]
    assert metrics["clean_accuracy"] == attacked["clean_accuracy"]
    assert metrics["attack_agreement"] == 1.0
    assert metrics["adversarial_f1"] < metrics["clean_f1"]
    matrix_file = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="confusion_matrix_adversarial.csv",
        dst_path=str(tmp_path),
    )
    with open(matrix_file) as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["true_class", *map(str, range(10))]
    counts = np.array([row[1:] for row in rows[1:]], dtype=int)
    assert counts.sum() == 30
    assert np.trace(counts) == round(metrics["adversarial_accuracy"] * 30)


def test_registered_model_by_alias_and_latest_attack_by_default(train_run: Run) -> None:
    MlflowClient().set_registered_model_alias("steps-digits", "champion", "1")
    attack_id = run_attack(
        AttackParams(model="models:/steps-digits@champion", limit=4, max_iter=2, popsize=10)
    )
    assert mlflow.get_run(attack_id).data.tags[tracking.TRAIN_RUN_TAG] == train_run.info.run_id
    evaluate_id = run_evaluate(EvaluateParams())
    assert mlflow.get_run(evaluate_id).data.tags[tracking.ATTACK_RUN_TAG] == attack_id


@pytest.mark.parametrize(
    ("step", "params", "message"),
    [
        (run_attack, AttackParams(th=0), "got th=0"),
        (run_attack, AttackParams(es=2), "got es=2"),
        (run_attack, AttackParams(attack_type="pixels"), "got 'pixels'"),
        (run_attack, AttackParams(popsize=1), "got popsize=1"),
        (run_attack, AttackParams(limit=0), "got limit=0"),
        (run_attack, AttackParams(input_range="0,2"), "got input_range='0,2'"),
        (run_attack, AttackParams(model="nowhere.keras"), "got model='nowhere.keras'"),
        (
            run_attack,
            AttackParams(model="models:/no-such-model/1", limit=2),
            "model='models:/no-such",
        ),
        (
            run_attack,
            AttackParams(data="no-such-folder", limit=2, **SMALL),
            "got data='no-such-folder'",
        ),
        (run_evaluate, EvaluateParams(attack_run_id="0" * 32), "attack_run_id='0000"),
        (run_train, TrainParams(epochs=0), "got epochs=0"),
        (run_train, TrainParams(architecture="resnet"), "got architecture='resnet'"),
        (run_main, MainParams(th_values="1,x"), "got th_values='1,x'"),
        (run_main, MainParams(es_values="0,2"), "got es=2"),
    ],
)
def test_bad_parameters_fail_the_run_with_a_message_naming_them(
    train_run: Run, experiment: str, step: object, params: object, message: str
) -> None:
    before = len(mlflow.search_runs(experiment_ids=[experiment], output_format="list"))
    with pytest.raises(ValueError, match=message):
        step(params)  # type: ignore[operator]
    failed = _latest_run(experiment)
    assert failed.info.status == "FAILED"
    assert len(mlflow.search_runs(experiment_ids=[experiment], output_format="list")) == before + 1


def test_image_folder_and_keras_file(experiment: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("owl", "cat", "eel"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for number in range(4):
            pixels = rng.integers(0, 256, size=(10, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{number}.png")
    model = models.small_cnn((10, 10, 3), 3, seed=1)
    model.save(tmp_path / "model.keras")
    attack_id = run_attack(
        AttackParams(
            model=str(tmp_path / "model.keras"),
            data=str(tmp_path / "data"),
            th=2,
            limit=10,
            **SMALL,
        )
    )
    attack = mlflow.get_run(attack_id)
    assert tracking.TRAIN_RUN_TAG not in attack.data.tags
    adv = _adv_testing(attack, tmp_path / "download")
    assert adv.manifest["source"][:5] == [
        "cat/0.png",
        "cat/1.png",
        "cat/2.png",
        "cat/3.png",
        "eel/0.png",
    ]
    assert {Path(file).parent.name for file in adv.manifest["file"]} == {"cat", "eel", "owl"}
    assert adv.images.shape == (10, 10, 10, 3)
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack_id)))
    assert (
        evaluated.data.metrics["adversarial_accuracy"]
        == attack.data.metrics["adversarial_accuracy"]
    )


def test_main_trains_once_then_attacks_and_evaluates_every_pair(
    experiment: str, tmp_path: Path
) -> None:
    parent_id = run_main(
        MainParams(th_values="1,2", es_values="1", limit=10, epochs=1, max_iter=5, popsize=20)
    )
    children = mlflow.search_runs(
        experiment_ids=[experiment],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    assert [child.data.tags[tracking.STEP_TAG] for child in children] == [
        "train",
        "attack",
        "evaluate",
        "attack",
        "evaluate",
    ]
    assert all(child.info.status == "FINISHED" for child in children)
    train, attacks, evaluations = children[0], children[1::2], children[2::2]
    assert [run.data.params["th"] for run in attacks] == ["1", "2"]
    for attack, evaluation in zip(attacks, evaluations, strict=True):
        assert attack.data.tags[tracking.TRAIN_RUN_TAG] == train.info.run_id
        assert evaluation.data.tags[tracking.ATTACK_RUN_TAG] == attack.info.run_id
        assert (
            evaluation.data.metrics["adversarial_accuracy"]
            == attack.data.metrics["adversarial_accuracy"]
        )
    table = mlflow.artifacts.download_artifacts(
        run_id=parent_id, artifact_path="comparison.csv", dst_path=str(tmp_path)
    )
    with open(table) as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["th"], row["es"], row["attack_run_id"]) for row in rows] == [
        ("1", "1", attacks[0].info.run_id),
        ("2", "1", attacks[1].info.run_id),
    ]
    for row, attack in zip(rows, attacks, strict=True):
        expected = attack.data.metrics["success_rate"]
        assert float(row["success_rate"]) == expected or math.isnan(expected)
    names = {item.path for item in MlflowClient().list_artifacts(parent_id)}
    assert names == {"comparison.csv", "success_vs_th.png"}
