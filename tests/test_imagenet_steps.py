"""train with epochs=0 wraps a pretrained ImageNet model, attack and evaluate it on
imagenet-sample; and the errors that stop a bad request first."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from pixel_threshold.data import imagenet
from pixel_threshold.data.datasets import digits
from pixel_threshold.models import registry
from pixel_threshold.models.imagenet import lite0
from pixel_threshold.runs import tracking
from pixel_threshold.runs.params import AttackParams, EvaluateParams, TrainParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.train import run_train


@pytest.fixture
def experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = MlflowClient(uri).create_experiment(
        "imagenet", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    yield experiment_id


def _failed_with(experiment: str, params: TrainParams, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_train(params)
    run = mlflow.search_runs([experiment], output_format="list")[0]
    assert run.info.status == "FAILED"


def test_epochs_0_needs_pretrained_weights(experiment: str) -> None:
    _failed_with(
        experiment,
        TrainParams(epochs=0),
        r"expected epochs >= 1, or pretrained weights to wrap with epochs=0, got epochs=0 "
        "with weights=none",
    )


def test_epochs_0_evaluates_a_weights_file_as_it_is(experiment: str, digits_weights: Path) -> None:
    split = digits()
    model = registry.build_model("small_cnn", (8, 8, 1), 10, weights=str(digits_weights))
    predicted = np.argmax(model(split.test_images.astype(np.float32)).numpy(), axis=1)
    run_id = run_train(TrainParams(weights=str(digits_weights), epochs=0))
    metrics = mlflow.get_run(run_id).data.metrics
    assert metrics["test_images"] == len(split.test_labels)
    assert metrics["test_accuracy"] == pytest.approx(np.mean(predicted == split.test_labels))
    assert metrics["test_accuracy"] > 0.5
    history = MlflowClient().get_metric_history(run_id, "val_accuracy")
    assert history == []


def test_missing_keras_weights_fail_before_any_work(experiment: str) -> None:
    _failed_with(
        experiment,
        TrainParams(architecture="resnet50", weights="imagenet", epochs=0),
        r"put resnet50_weights_tf_dim_ordering_tf_kernels\.h5 in .*keras/models/",
    )


def test_an_imagenet_model_needs_imagenet_images(experiment: str, tmp_path: Path) -> None:
    pytest.importorskip(lite0.PACKAGE, reason="the imagenet extra is not installed")
    _failed_with(
        experiment,
        TrainParams(architecture="efficientnet_lite0", weights="imagenet", epochs=0),
        r"expected a model taking \(8, 8, 1\) images for dataset='digits', got a model "
        r"taking \(224, 224, 3\)",
    )
    for name in ("cats", "dogs"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        Image.new("RGB", (30, 20)).save(tmp_path / "photos" / name / "1.png")
    with pytest.raises(ValueError, match=r"1000 ImageNet classes .* got 2 classes"):
        run_train(
            TrainParams(
                dataset=str(tmp_path / "photos"),
                architecture="efficientnet_lite0",
                weights="imagenet",
                epochs=0,
            )
        )


def test_imagenet_sample_has_nothing_to_train_on(experiment: str) -> None:
    _failed_with(
        experiment,
        TrainParams(dataset="imagenet-sample", epochs=1),
        r"expected training images in dataset='imagenet-sample', got none",
    )


def test_wrap_attack_and_evaluate_lite0_on_imagenet_sample(
    experiment: str, tmp_path: Path, lite0_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(lite0_cache))  # converted once a session
    train_id = run_train(
        TrainParams(
            dataset="imagenet-sample",
            architecture="efficientnet_lite0",
            weights="imagenet",
            epochs=0,
            register_model_name="lite0",
        )
    )
    train_run = mlflow.get_run(train_id)
    assert train_run.data.metrics["test_images"] == imagenet.SAMPLE_SIZE
    assert train_run.data.metrics["test_accuracy"] >= 0.5
    names = mlflow.artifacts.load_dict(f"runs:/{train_id}/class_names.json")
    assert names["class_names"] == list(imagenet.wnids())
    assert names["imagenet_classes"][285] == {
        "index": 285,
        "wnid": "n02124075",
        "words": "Egyptian cat",
    }
    assert MlflowClient().get_model_version("lite0", "1").run_id == train_id

    attack_id = run_attack(
        AttackParams(
            model="models:/lite0/1", data="imagenet-sample", th=3, limit=3, max_iter=2, popsize=20
        )
    )
    attack_run = mlflow.get_run(attack_id)
    assert attack_run.data.tags[tracking.TRAIN_RUN_TAG] == train_id
    tarball = mlflow.artifacts.download_artifacts(
        run_id=attack_id, artifact_path="adv_testing.tar.gz", dst_path=str(tmp_path)
    )
    with tarfile.open(tarball) as tar:
        pngs = sorted(name for name in tar.getnames() if name.endswith(".png"))
    assert pngs == [
        "adv_testing/n02123159/00000.png",
        "adv_testing/n03773504/00002.png",
        "adv_testing/n07920052/00001.png",
    ]
    evaluate_run = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack_id)))
    assert (
        evaluate_run.data.metrics["adversarial_accuracy"]
        == attack_run.data.metrics["adversarial_accuracy"]
    )
