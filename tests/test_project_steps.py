"""The steps in-process against a temporary sqlite tracking store."""

from __future__ import annotations

import csv
import dataclasses
import math
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from PIL import Image

from pixel_threshold.artifacts.tarball import AdvTesting, read_adv_testing
from pixel_threshold.attack.distances import DISTANCES
from pixel_threshold.data.datasets import digits
from pixel_threshold.metrics import SUMMARIES
from pixel_threshold.models import small_cnn
from pixel_threshold.runs import failures, outcome, tracking
from pixel_threshold.runs.params import AttackParams, EvaluateParams, MainParams, TrainParams
from pixel_threshold.steps import attack as attack_step
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.main import run_main
from pixel_threshold.steps.train import run_train
from tests.tracking_store import sqlite_experiment

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
    "skipped_images",
    "resized_images",
    "query_budget",
} | {f"{name}_{summary}" for name in DISTANCES for summary in SUMMARIES}
SMALL = {"max_iter": 10, "popsize": 50}
FIRST_LABEL = int(digits().test_labels[0])


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_experiment(tmp_path_factory.mktemp("tracking"), "steps") as experiment_id:
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


def finished_children(experiment: str, parent_id: str, *, attacks: int) -> list:
    """``main``'s child runs in start order, checked to be train then ``attacks`` pairs
    of attack and evaluate, then the report, all finished."""
    children = mlflow.search_runs(
        experiment_ids=[experiment],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    assert [child.data.tags[tracking.STEP_TAG] for child in children] == [
        "train",
        *["attack", "evaluate"] * attacks,
        "report",
    ]
    assert all(child.info.status == "FINISHED" for child in children)
    return children


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
    assert names == {
        "adv_testing.tar.gz",
        "distance_metrics.csv.gz",
        "examples.png",
        "queries.png",
    }


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
    tags = mlflow.get_run(attack_id).data.tags
    assert tags[tracking.TRAIN_RUN_TAG] == train_run.info.run_id
    assert tags[tracking.MODEL_VERSION_TAG] == "1"  # the alias, resolved
    evaluate_id = run_evaluate(EvaluateParams())
    assert mlflow.get_run(evaluate_id).data.tags[tracking.ATTACK_RUN_TAG] == attack_id


@pytest.mark.parametrize(
    ("step", "params", "message"),
    [
        (run_attack, AttackParams(th=0), "got th=0"),
        (
            run_attack,
            AttackParams(es=3),
            r"expected es 0 \(CMA-ES\), 1 \(differential evolution\) or 2 \(random search\), "
            "got es=3",
        ),
        (
            run_attack,
            AttackParams(loss="hinge"),
            r"expected loss in \('margin', 'probability', 'cross_entropy'\), got loss='hinge'",
        ),
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
        (
            run_attack,
            AttackParams(th=65, limit=2),
            r"th <= 64 \(pixels in a 8x8 image\).*got th=65",
        ),
        (run_attack, AttackParams(attack_type="threshold", th=256, limit=2), "got th=256"),
        (
            run_attack,
            AttackParams(max_iter=-1),
            r"expected max_iter >= 1 \(0: the strategy's default\), got max_iter=-1",
        ),
        (run_attack, AttackParams(popsize=-1, es=2), r"default\), got popsize=-1"),
        (run_attack, AttackParams(popsize=1, es=0), "popsize >= 3 for cma-es, got popsize=1"),
        (run_attack, AttackParams(limit=-1), "got limit=-1"),
        (run_attack, AttackParams(target=10, limit=2), r"target in \[0, 10\).*got target=10"),
        (run_attack, AttackParams(target=-2), r"target >= 0 or -1 \(untargeted\), got target=-2"),
        (
            run_attack,
            AttackParams(target=FIRST_LABEL, limit=1),
            f"other than target={FIRST_LABEL}, got only images of class {FIRST_LABEL}",
        ),
        (run_attack, AttackParams(input_range="0-255"), "got input_range='0-255'"),
        # the data is checked before the model is loaded
        (run_attack, AttackParams(data="mnist", model="nowhere.keras"), "got data='mnist'"),
        (run_attack, AttackParams(model="runs:/" + "0" * 32 + "/model"), "model='runs:/0000"),
        (run_attack, AttackParams(resume="0" * 32), "cannot read resume='0000"),
        (run_evaluate, EvaluateParams(attack_run_id="0" * 32), "attack_run_id='0000"),
        (run_train, TrainParams(epochs=0), "got epochs=0"),
        (run_train, TrainParams(architecture="resnet"), "got architecture='resnet'"),
        (run_train, TrainParams(dataset="mnist"), "got dataset='mnist'"),
        (run_train, TrainParams(weights="imagenet"), "got weights='imagenet'"),
        (run_main, MainParams(th_values="1,x"), "got th_values='1,x'"),
        (run_main, MainParams(es_values="0,3"), "got es=3"),
        (run_main, MainParams(loss="hinge"), "got loss='hinge'"),
        (run_main, MainParams(max_iter=-1, es_values="2"), "got max_iter=-1"),
        (
            run_main,
            MainParams(attack_type="pixel,pixle"),
            r"expected attack_type in \('pixel', 'threshold'\) or both comma-separated, "
            "got attack_type='pixel,pixle'",
        ),
        (run_main, MainParams(attack_type="l2"), "got attack_type='l2'"),
        (run_main, MainParams(th_values="-1,0"), "got th=0"),
        (run_main, MainParams(th_values="-1", th_max=256), "got th_max=256"),
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


@pytest.mark.parametrize("loss", ["margin", "probability"])
def test_random_search_logs_its_loss_and_its_default_budget_resolved(
    train_run: Run, loss: str
) -> None:
    run = mlflow.get_run(
        run_attack(AttackParams(attack_type="threshold", th=64, es=2, loss=loss, limit=4))
    )
    params = run.data.params
    assert (params["es"], params["loss"]) == ("2", loss)
    assert (params["max_iter"], params["popsize"]) == ("0", "0")  # logged as given
    assert run.data.metrics["query_budget"] == 10_000
    assert run.info.run_name == (
        "attack threshold th=64 es=2 random search 10000x1 digits_small_cnn"
        + ("" if loss == "margin" else " loss=probability")
    )
    assert run.data.metrics["success_rate"] > 0
    assert run.data.metrics["mean_queries"] < 10_000


def test_image_folder_and_keras_file(experiment: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("owl", "cat", "eel"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for number in range(4):
            pixels = rng.integers(0, 256, size=(10, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{number}.png")
    model = small_cnn.small_cnn((10, 10, 3), 3, seed=1)
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
        MainParams(
            th_values="1,2",
            es_values="1,2",
            limit=10,
            epochs=1,
            max_iter=5,
            popsize=20,
            loss="probability",
        )
    )
    children = finished_children(experiment, parent_id, attacks=4)
    train, attacks, evaluations = children[0], children[1:-1:2], children[2:-1:2]
    assert [(run.data.params["th"], run.data.params["es"]) for run in attacks] == [
        ("1", "1"),
        ("1", "2"),
        ("2", "1"),
        ("2", "2"),
    ]
    # an equal query budget: es=2 takes max_iter x popsize steps of one query
    assert [
        (run.data.params["max_iter"], run.data.params["popsize"], run.data.metrics["query_budget"])
        for run in attacks
    ] == [("5", "20", 100), ("100", "1", 100)] * 2
    assert {run.data.params["loss"] for run in attacks} == {"probability"}
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
    assert [
        (row["th"], row["es"], row["strategy"], row["loss"], row["max_iter"], row["popsize"])
        for row in rows
    ] == [
        (th, es, strategy, "probability", max_iter, popsize)
        for th in ("1", "2")
        for es, strategy, max_iter, popsize in (
            ("1", "differential evolution", "5", "20"),
            ("2", "random search", "100", "1"),
        )
    ]
    assert [row["attack_run_id"] for row in rows] == [run.info.run_id for run in attacks]
    for row, attack in zip(rows, attacks, strict=True):
        expected = attack.data.metrics["success_rate"]
        assert float(row["success_rate"]) == expected or math.isnan(expected)
    names = {item.path for item in MlflowClient().list_artifacts(parent_id)}
    assert names == {"comparison.csv", "comparison.html", "success_vs_th.png", "queries.png"}


def test_main_assesses_both_attacks_at_each_image_s_smallest_th(
    experiment: str, tmp_path: Path
) -> None:
    params = MainParams(
        attack_type="pixel,threshold",
        th_values="-1,2",
        es_values="2",
        th_max=6,
        limit=6,
        epochs=1,
        max_iter=5,
        popsize=10,
    )
    parent_id = run_main(params)
    parent = mlflow.get_run(parent_id)
    assert parent.info.run_name == "main pixel,threshold th=-1,2 es=2 th_max=6"
    children = finished_children(experiment, parent_id, attacks=4)
    attacks = children[1:-1:2]
    assert [
        tuple(run.data.params[name] for name in ("attack_type", "th", "es", "th_max"))
        for run in attacks
    ] == [
        (attack_type, th, "2", "6") for attack_type in ("pixel", "threshold") for th in ("-1", "2")
    ]
    smallest = [attacks[0], attacks[2]]
    client = MlflowClient()
    for attack in smallest:
        history = client.get_metric_history(attack.info.run_id, "robust_accuracy")
        assert sorted(point.step for point in history) == list(range(7))
    names = {item.path for item in client.list_artifacts(parent_id)}
    assert {"robustness_curves.png", "robustness_levels.csv", "comparison.csv"} <= names
    with open(
        mlflow.artifacts.download_artifacts(
            run_id=parent_id, artifact_path="comparison.csv", dst_path=str(tmp_path)
        )
    ) as handle:
        rows = list(csv.DictReader(handle))
    for row, attack in zip(rows, attacks, strict=True):
        for name in ("th_max", "median_min_th", "mean_min_th"):
            assert row[name] == str(attack.data.metrics.get(name, math.nan))
    assert [row["median_min_th"] for row in rows[1::2]] == ["nan", "nan"]  # th=2
    with open(
        mlflow.artifacts.download_artifacts(
            run_id=parent_id, artifact_path="robustness_levels.csv", dst_path=str(tmp_path)
        )
    ) as handle:
        (level,) = csv.DictReader(handle)
    assert (level["pixel_run_id"], level["threshold_run_id"]) == tuple(
        run.info.run_id for run in smallest
    )
    assert (level["pixel_th_max"], level["threshold_th_max"], level["es"]) == ("6.0", "6.0", "2")
    assert float(level["pixel_median_min_th"]) == smallest[0].data.metrics["median_min_th"]
    report = children[-1]
    assert parent.data.tags["report_run_id"] == report.info.run_id
    assert report.data.tags["attack_run_ids"] == ",".join(run.info.run_id for run in attacks)
    assert {"report.html", "report.md", "report_images.csv"} <= {
        item.path for item in client.list_artifacts(report.info.run_id)
    }


def _fails(experiment: str, step: Callable[[Any], str], params: object, message: str) -> Run:
    """Run ``step``, expect a ValueError matching ``message``; return the FAILED run,
    checked to hold the message as its description and its tag ``error``."""
    with pytest.raises(ValueError, match=message) as raised:
        step(params)
    failed = _latest_run(experiment)
    assert failed.info.status == "FAILED"
    tags = failed.data.tags
    assert tags[failures.ERROR_TAG] == str(raised.value)
    assert tags[failures.DESCRIPTION_TAG] == f"{tags[tracking.STEP_TAG]} failed: {raised.value}"
    return failed


def test_models_that_do_not_fit_are_refused(
    experiment: str, attack_run: Run, tmp_path: Path
) -> None:
    no_model = f"runs:/{attack_run.info.run_id}/model"
    _fails(experiment, run_attack, AttackParams(model=no_model), "cannot load model='runs:/")
    small_cnn.small_cnn((8, 8, 1), 3).save(tmp_path / "three.keras")
    _fails(
        experiment,
        run_attack,
        AttackParams(model=str(tmp_path / "three.keras"), limit=2),
        "expected data='digits' to have the model's 3 classes, got 10",
    )
    small_cnn.small_cnn((10, 10, 3), 10).save(tmp_path / "rgb.keras")
    _fails(
        experiment,
        run_attack,
        AttackParams(model=str(tmp_path / "rgb.keras"), limit=2),
        r"got a model taking \(10, 10, 3\)",
    )
    with mlflow.start_run() as run:
        mlflow.log_dict({"flavors": {"python_function": {"loader_module": "x"}}}, "model/MLmodel")
    _fails(
        experiment,
        run_attack,
        AttackParams(model=f"runs:/{run.info.run_id}/model"),
        "as a pyfunc model: ModuleNotFoundError: No module named 'x'",
    )


def test_evaluate_needs_an_adversarial_set_with_a_manifest(
    experiment: str, train_run: Run, tmp_path: Path
) -> None:
    failed = _fails(experiment, run_attack, AttackParams(th=0), "got th=0")
    _fails(
        experiment,
        run_evaluate,
        EvaluateParams(attack_run_id=failed.info.run_id),
        f"expected attack run {failed.info.run_id} .FAILED. to have logged adv_testing.tar.gz",
    )
    tarball = tmp_path / "adv_testing.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path, arcname="adv_testing", recursive=False)
    with mlflow.start_run() as crafted:
        mlflow.set_tags(
            {
                tracking.STEP_TAG: "attack",
                tracking.MODEL_URI_TAG: f"runs:/{train_run.info.run_id}/model",
                tracking.DATA_TAG: "digits",
            }
        )
        mlflow.log_params({"limit": 2, "batch_size": 8, "input_range": "0,255"})
        mlflow.log_artifact(str(tarball))
    _fails(
        experiment,
        run_evaluate,
        EvaluateParams(attack_run_id=crafted.info.run_id),
        "expected adv_testing/manifest.csv in adv_testing.tar.gz, found none",
    )


def test_unreadable_images_are_counted_listed_and_skipped(
    experiment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for number in range(2):
            Image.new("RGB", (6, 6), (number * 90, 0, 0)).save(
                tmp_path / "data" / name / f"{number}.png"
            )
    (tmp_path / "data" / "a" / "0_broken.png").write_bytes(b"not a png")
    small_cnn.small_cnn((6, 6, 3), 2, seed=1).save(tmp_path / "model.keras")
    run = mlflow.get_run(
        run_attack(
            AttackParams(model=str(tmp_path / "model.keras"), data=str(tmp_path / "data"), **SMALL)
        )
    )
    assert run.data.metrics["skipped_images"] == 1
    assert (
        "skipped 1 unreadable image (a/0_broken.png): skipped_images.csv lists each with its reason"
    ) in capsys.readouterr().out
    listed = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="skipped_images.csv", dst_path=str(tmp_path)
    )
    with open(listed) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == ["a/0_broken.png"]
    assert rows[0]["error"].startswith("UnidentifiedImageError")
    assert _adv_testing(run, tmp_path / "adv").manifest["source"] == [
        "a/0.png",
        "a/1.png",
        "b/0.png",
        "b/1.png",
    ]
    for image in (tmp_path / "data").glob("*/[01].png"):
        image.write_bytes(b"")
    _fails(
        experiment,
        run_attack,
        AttackParams(model=str(tmp_path / "model.keras"), data=str(tmp_path / "data"), **SMALL),
        "got none: 5 unreadable files skipped",
    )


RESUMABLE = AttackParams(th=3, es=1, limit=16, max_iter=10, popsize=50, seed=3)
RESUMABLE_RANDOM_SEARCH = AttackParams(th=3, es=2, limit=16, max_iter=300, seed=3)
"""One query a step (popsize 0: es=2's default, 1), so a model call is a step."""
RESUMABLE_SMALLEST = AttackParams(
    th=-1, th_max=4, es=2, limit=16, max_iter=50, seed=3, batch_size=4
)


class _Interrupting:
    """A classifier that raises KeyboardInterrupt (Ctrl-C) on call ``calls + 1``."""

    def __init__(self, classifier: Any, calls: int) -> None:
        self.classifier, self.calls, self.made = classifier, calls, 0
        self.kind, self.batch_size = classifier.kind, classifier.batch_size
        self.image_shape = classifier.image_shape

    def __call__(self, pixels: Any) -> Any:
        self.made += 1
        if self.made > self.calls:
            raise KeyboardInterrupt
        return self.classifier(pixels)


def _interrupt_after(calls: int, patch: pytest.MonkeyPatch) -> None:
    """Make the attack's model raise KeyboardInterrupt on the attack's call ``calls + 1``
    (the probe of its first images and the measure of its rate come before them)."""
    load_classifier = attack_step.loading.load_classifier
    patch.setattr(
        attack_step.loading,
        "load_classifier",
        lambda *args, **kwargs: _Interrupting(load_classifier(*args, **kwargs), calls + 2),
    )


def _without(columns: dict[str, list[str]], *names: str) -> dict[str, list[str]]:
    return {name: values for name, values in columns.items() if name not in names}


MODEL_FLOATS = ("p_true_before", "p_true_after")
"""Manifest columns that hold the model's own outputs: a TensorFlow model's float32
outputs for an image can differ in their last bits with the shape of the call it is in,
and a resumed run calls the model with other images beside it. Every decision (success,
labels, queries, the images) is exact."""


def _same_manifest(resumed: dict[str, list[str]], whole: dict[str, list[str]]) -> None:
    assert _without(resumed, *MODEL_FLOATS) == _without(whole, *MODEL_FLOATS)
    for name in MODEL_FLOATS:
        np.testing.assert_allclose(
            np.array(resumed[name], dtype=float), np.array(whole[name], dtype=float), rtol=1e-5
        )


@pytest.mark.parametrize(
    ("resumable", "calls", "written_out"),
    [
        (RESUMABLE, 6, {}),
        # the default budget written out resumes a run that logged popsize=0
        (RESUMABLE_RANDOM_SEARCH, 40, {"popsize": 1}),
        (RESUMABLE_SMALLEST, 300, {}),
    ],
    ids=["de", "random-search", "smallest-th"],
)
def test_an_interrupted_attack_keeps_its_images_and_resumes_to_the_same_results(
    experiment: str,
    train_run: Run,
    tmp_path: Path,
    resumable: AttackParams,
    calls: int,
    written_out: dict[str, int],
) -> None:
    params = dataclasses.replace(resumable, model=f"runs:/{train_run.info.run_id}/model")
    whole = mlflow.get_run(run_attack(params))
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_after(calls, patch)
        with pytest.raises(KeyboardInterrupt):
            run_attack(params)
    killed = _latest_run(experiment)
    assert killed.info.status == "KILLED"
    done, total = killed.data.tags["images_done"].split(" of ")
    assert total == "16" and 0 < int(done) < 16
    partial = _adv_testing(killed, tmp_path / "partial")
    full = _adv_testing(whole, tmp_path / "whole")
    rows = partial.column("index")
    assert len(rows) == int(done)
    np.testing.assert_array_equal(partial.images, full.images[rows])
    _same_manifest(
        _without(partial.manifest, "file"),
        {
            name: [values[row] for row in rows]
            for name, values in _without(full.manifest, "file").items()
        },
    )
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=killed.info.run_id)))
    agree = partial.column("label_after") == partial.labels
    assert evaluated.data.metrics["adversarial_accuracy"] == np.mean(agree)

    resumed = mlflow.get_run(
        run_attack(dataclasses.replace(params, resume=killed.info.run_id, **written_out))
    )
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumed_from"] == killed.info.run_id
    again = _adv_testing(resumed, tmp_path / "again")
    _same_manifest(again.manifest, full.manifest)
    np.testing.assert_array_equal(again.images, full.images)
    timing = ("attack_seconds", "queries_per_second")
    np.testing.assert_equal(
        {name: value for name, value in resumed.data.metrics.items() if name not in timing},
        {name: value for name, value in whole.data.metrics.items() if name not in timing},
    )


def test_resume_requires_the_interrupted_run_s_parameters(
    experiment: str, attack_run: Run, train_run: Run
) -> None:
    resume = attack_run.info.run_id
    _fails(
        experiment,
        run_attack,
        AttackParams(th=2, es=1, limit=30, resume=resume, **SMALL),
        f"expected th=3 as in the resumed run {resume}, got th=2",
    )
    _fails(
        experiment,
        run_attack,
        AttackParams(th=3, es=1, limit=29, resume=resume, **SMALL),
        f"expected limit=30 as in the resumed run {resume}, got limit=29",
    )
    _fails(
        experiment,
        run_attack,
        AttackParams(th=3, es=1, limit=30, loss="probability", resume=resume, **SMALL),
        f"expected loss=margin as in the resumed run {resume}, got loss=probability",
    )
    _fails(
        experiment,
        run_attack,
        AttackParams(th=3, es=1, limit=30, resume=resume, max_iter=0, popsize=50),
        f"expected max_iter=10 as in the resumed run {resume}, got max_iter=0",
    )
    _fails(
        experiment,
        run_attack,
        AttackParams(th=3, es=1, limit=30, resume=resume, model="other.keras", **SMALL),
        "got model='other.keras'",
    )
    _fails(
        experiment,
        run_attack,
        AttackParams(resume=train_run.info.run_id),
        "expected resume to name an attack run",
    )


def test_resume_needs_a_run_that_finished_images(experiment: str, train_run: Run) -> None:
    params = dataclasses.replace(RESUMABLE, model=f"runs:/{train_run.info.run_id}/model")
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_after(0, patch)
        with pytest.raises(KeyboardInterrupt):
            run_attack(params)
    killed = _latest_run(experiment)
    assert killed.data.tags["images_done"] == "0 of 16"
    _fails(
        experiment,
        run_attack,
        dataclasses.replace(params, resume=killed.info.run_id),
        "to have logged adv_testing.tar.gz, found none .it finished no image.",
    )


def test_an_attack_and_its_evaluation_print_their_outcome(
    train_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    attack_id = run_attack(AttackParams(th=2, es=1, limit=12, **SMALL))
    printed = capsys.readouterr().out
    attack = mlflow.get_run(attack_id)
    metrics = attack.data.metrics
    assert f"attack run {attack_id} {attack.info.run_name!r} FINISHED" in printed
    assert (
        f"success rate {metrics['success_rate']:.2f} [{metrics['success_rate_ci_low']:.2f}, "
        f"{metrics['success_rate_ci_high']:.2f}]"
    ) in printed
    assert f"adversarial accuracy {metrics['adversarial_accuracy']:.2f}" in printed
    assert f"mean queries {metrics['mean_queries']:,.0f}" in printed
    assert f"{metrics['attack_seconds']:.1f} s" in printed
    (artifacts,) = [line for line in printed.splitlines() if line.startswith("  artifacts: ")]
    assert artifacts.endswith(
        "(adv_testing.tar.gz, distance_metrics.csv.gz, examples.png, queries.png)"
    )
    assert (Path(artifacts.split()[1]) / "adv_testing.tar.gz").is_file()
    assert f"#/experiments/{attack.info.experiment_id}/runs/{attack_id}" in printed
    tags = attack.data.tags  # what ran, resolved, where a reader finds it
    assert (tags["strategy"], tags["budget"]) == ("differential evolution", "10x50")
    assert (
        f"model {tags['model_uri']}, keras returning probabilities; differential evolution "
        "10x50 (max_iter x popsize)"
    ) in printed
    evaluate_id = run_evaluate(EvaluateParams(attack_run_id=attack_id))
    printed = capsys.readouterr().out
    evaluate = mlflow.get_run(evaluate_id).data.metrics
    assert printed.startswith(f"evaluate run {evaluate_id} ")
    assert f"attack agreement {evaluate['attack_agreement']:.2f}" in printed
    assert f"attack run {attack_id}" in printed


def test_the_train_outcome_says_where_the_model_is(train_run: Run) -> None:
    lines = outcome.outcome(train_run).splitlines()
    assert lines[0] == f"train run {train_run.info.run_id} 'train small_cnn digits' FINISHED"
    assert f"  test accuracy {train_run.data.metrics['test_accuracy']:.2f}" in lines
    (model_line,) = [line for line in lines if line.startswith("  model: ")]
    model_files = Path(model_line.split(": ")[-1])
    assert (model_files / "MLmodel").is_file()  # the logged model, outside the run's artifacts
    assert f"runs:/{train_run.info.run_id}/model = models:/m-" in model_line
    assert "  registered as models:/steps-digits/1" in lines


def test_an_attack_prints_its_plan_and_refuses_a_budget_nobody_can_finish(
    experiment: str, train_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """es=2 with popsize 1,000,000 is 10^10 queries an image: refused with the numbers
    before any query, unless max_hours=0 says to run it anyway."""
    with pytest.raises(ValueError) as refused:
        run_attack(AttackParams(es=2, popsize=1_000_000, limit=20))
    message = str(refused.value)
    assert message.startswith("expected an attack that can finish within max_hours=24, got about")
    assert "20 images x 10,000,000,000 queries (max_iter=10000 x popsize=1000000)" in message
    assert "or set max_hours=0 to run it anyway" in message
    failed = _latest_run(experiment)
    assert failed.info.status == "FAILED" and "images_attacked" not in failed.data.metrics
    run_attack(AttackParams(es=1, limit=6, **SMALL))
    printed = capsys.readouterr().err
    assert "attack plan: 6 images, at most 500 queries each (3,000 in all" in printed


def test_a_folder_s_photos_of_another_shape_are_resized_as_asked_and_evaluated_alike(
    experiment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for number in range(3):
            pixels = rng.integers(0, 256, size=(8, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{number}.png")
    small_cnn.small_cnn((6, 6, 3), 2, seed=1).save(tmp_path / "model.keras")
    params = AttackParams(model=str(tmp_path / "model.keras"), data=str(tmp_path / "data"), **SMALL)
    attack = mlflow.get_run(run_attack(params))
    assert attack.data.params["resize"] == "crop" and attack.data.metrics["resized_images"] == 6
    assert "resized 6 images to the model's size by resize=crop" in capsys.readouterr().out
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack.info.run_id)))
    assert evaluated.data.metrics["attack_agreement"] == 1.0
    assert (
        evaluated.data.metrics["clean_accuracy"] == attack.data.metrics["clean_accuracy"]
    )  # the same crops
    with pytest.raises(ValueError, match=r"expected images of 6x6 for the model \(resize=refuse\)"):
        run_attack(dataclasses.replace(params, resize="refuse"))
