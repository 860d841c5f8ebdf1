"""``attack`` with ``th=-1`` in-process against a temporary sqlite store: each image's
smallest th, held to the images of ``adv_testing.tar.gz``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from PIL import Image

from pixel_threshold.artifacts.tarball import AdvTesting, read_adv_testing
from pixel_threshold.attack.distances import image_distances
from pixel_threshold.data.datasets import digits
from pixel_threshold.runs.params import AttackParams, EvaluateParams, TrainParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.train import run_train
from tests.tracking_store import sqlite_experiment

LIMIT = 16
TH_MAX = {"pixel": 8, "threshold": 48}
DISTANCE = {"pixel": "l_0_norm", "threshold": "l_infinity_norm"}
"""The distance each attack's budget bounds."""
ATTACK_TYPES = sorted(TH_MAX)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_experiment(tmp_path_factory.mktemp("smallest"), "smallest") as experiment_id:
        yield experiment_id


@pytest.fixture(scope="module")
def runs(experiment: str, digits_weights: Path) -> dict[str, Run]:
    """A train run (the session's trained CNN), then a th=-1 attack of each type with a
    small random-search budget."""
    run_train(TrainParams(weights=str(digits_weights), epochs=0))
    return {
        attack_type: mlflow.get_run(
            run_attack(
                AttackParams(
                    attack_type=attack_type,
                    th=-1,
                    th_max=th_max,
                    es=2,
                    max_iter=200,
                    limit=LIMIT,
                )
            )
        )
        for attack_type, th_max in TH_MAX.items()
    }


def _adv_testing(run: Run, folder: Path) -> AdvTesting:
    tarball = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="adv_testing.tar.gz", dst_path=str(folder)
    )
    return read_adv_testing(Path(tarball), folder / "extracted")


def _min_th(adv: AdvTesting) -> list[int | None]:
    return [int(text) if text else None for text in adv.manifest["min_th"]]


@pytest.mark.parametrize("attack_type", ATTACK_TYPES)
def test_every_fooled_image_fools_the_model_within_its_min_th(
    runs: dict[str, Run], attack_type: str, tmp_path: Path
) -> None:
    run = runs[attack_type]
    adv = _adv_testing(run, tmp_path)
    originals = digits().test_images[:LIMIT]
    min_th = _min_th(adv)
    fooled = np.array([level is not None for level in min_th])
    assert fooled.any(), "a test of nothing: no image was fooled"
    success = np.array(adv.manifest["success"]) == "True"
    np.testing.assert_array_equal(success, fooled)
    distance = image_distances(originals, adv.images)[DISTANCE[attack_type]]
    for row in np.flatnonzero(fooled):
        assert 1 <= distance[row] <= min_th[row] <= TH_MAX[attack_type], row
    np.testing.assert_array_equal(adv.images[~fooled], originals[~fooled])
    assert (adv.column("label_after")[fooled] != adv.labels[fooled]).all()
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=run.info.run_id)))
    # evaluate scores the saved images as the manifest says: each fooled one fools the model
    assert evaluated.data.metrics["attack_agreement"] == 1.0
    assert (
        evaluated.data.metrics["adversarial_accuracy"] == run.data.metrics["adversarial_accuracy"]
    )


@pytest.mark.parametrize("attack_type", ATTACK_TYPES)
def test_robust_accuracy_is_logged_for_every_th_and_never_rises(
    runs: dict[str, Run], attack_type: str, tmp_path: Path
) -> None:
    run, th_max = runs[attack_type], TH_MAX[attack_type]
    history = MlflowClient().get_metric_history(run.info.run_id, "robust_accuracy")
    assert sorted(metric.step for metric in history) == list(range(th_max + 1))
    assert len({metric.timestamp for metric in history}) == 1  # one batch
    accuracy = np.array([metric.value for metric in sorted(history, key=lambda m: m.step)])
    assert (np.diff(accuracy) <= 0).all()
    assert accuracy[0] == run.data.metrics["clean_accuracy"]
    adv = _adv_testing(run, tmp_path)
    right = adv.column("label_before") == adv.labels
    levels = np.array([th_max + 1 if level is None else level for level in _min_th(adv)])
    expected = [np.mean(right & (levels > th)) for th in range(th_max + 1)]
    np.testing.assert_allclose(accuracy, expected, rtol=0, atol=1e-12)
    attacked = np.array(adv.manifest["attacked"]) == "True"
    metrics = run.data.metrics
    assert metrics["th_max"] == th_max
    assert metrics["median_min_th"] == np.median(levels[attacked])
    assert metrics["mean_min_th"] == pytest.approx(np.mean(levels[levels <= th_max]))


@pytest.mark.parametrize("attack_type", ATTACK_TYPES)
def test_a_smallest_th_run_is_named_and_logs_its_robustness_curve(
    runs: dict[str, Run], attack_type: str, tmp_path: Path
) -> None:
    run, th_max = runs[attack_type], TH_MAX[attack_type]
    assert (run.data.params["th"], run.data.params["th_max"]) == ("-1", str(th_max))
    assert run.info.run_name == (
        f"attack {attack_type} th=-1 (smallest<={th_max}) es=2 random search 200x1 digits_small_cnn"
    )
    names = {item.path for item in MlflowClient().list_artifacts(run.info.run_id)}
    assert names == {
        "adv_testing.tar.gz",
        "distance_metrics.csv.gz",
        "examples.png",
        "queries.png",
        "robustness_curve.png",
    }
    curve = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="robustness_curve.png", dst_path=str(tmp_path)
    )
    with Image.open(curve) as image:
        assert (image.format, image.size) == ("PNG", (600, 400))


def test_th_max_0_is_the_whole_range_logged_as_resolved(runs: dict[str, Run]) -> None:
    run = mlflow.get_run(run_attack(AttackParams(th=-1, es=2, max_iter=20, limit=2)))
    assert run.data.params["th_max"] == "0"
    assert run.data.metrics["th_max"] == 64  # 8x8 pixels
    assert "th=-1 (smallest<=64)" in run.info.run_name
    history = MlflowClient().get_metric_history(run.info.run_id, "robust_accuracy")
    assert max(metric.step for metric in history) == 64


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            AttackParams(th=-1, th_max=65, limit=2),
            r"expected 0 <= th_max <= 64 for the pixel attack on 8x8 images \(0: 64\), "
            "got th_max=65",
        ),
        (AttackParams(attack_type="threshold", th=-1, th_max=256), "got th_max=256"),
        (AttackParams(th=-1, th_max=-1), "got th_max=-1"),
        (AttackParams(th=-2), r"th >= 1 or th=-1 \(each image's smallest\), got th=-2"),
    ],
)
def test_a_bad_th_max_fails_the_run_naming_it(
    runs: dict[str, Run], experiment: str, params: AttackParams, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_attack(params)
    failed = mlflow.search_runs(
        experiment_ids=[experiment],
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )[0]
    assert failed.info.status == "FAILED"
    assert failed.data.params["th_max"] == str(params.th_max)


@pytest.mark.parametrize("batch_size", [1, 400])
def test_evaluate_agrees_with_a_threshold_walk_at_any_batch_size(
    runs: dict[str, Run], batch_size: int
) -> None:
    """The tightening saves Threshold images right at the decision boundary; each was
    scored alone before it counted, so evaluate, scoring in batches of 1 or of 400 as
    the attack ran, classifies every saved image as the attack recorded it."""
    attack = run_attack(
        AttackParams(
            attack_type="threshold",
            th=-1,
            th_max=TH_MAX["threshold"],
            es=2,
            max_iter=100,
            limit=LIMIT,
            batch_size=batch_size,
        )
    )
    assert mlflow.get_run(attack).data.metrics["success_rate"] > 0
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=attack)))
    assert evaluated.data.metrics["attack_agreement"] == 1.0
