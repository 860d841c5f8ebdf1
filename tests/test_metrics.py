"""Distances with Dioptra's names, their summaries, the Wilson interval, attack metrics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from pixel_threshold.attack import ImageResult
from pixel_threshold.attack.distances import DISTANCES, image_distances
from pixel_threshold.metrics import (
    SUMMARIES,
    attack_metrics,
    fooled_share,
    robust_accuracy,
    smallest_th_metrics,
    summarize,
    wilson_interval,
)


def test_distances_match_hand_computed_values() -> None:
    clean = np.array([10, 20, 30, 40], dtype=np.uint8).reshape(1, 2, 2, 1)
    adversarial = np.array([10, 25, 30, 37], dtype=np.uint8).reshape(1, 2, 2, 1)
    got = {name: float(values[0]) for name, values in image_distances(clean, adversarial).items()}
    assert got["l_0_norm"] == 2
    assert got["l_1_norm"] == got["manhattan_distance"] == 8
    assert got["l_2_norm"] == got["euclidean_distance"] == pytest.approx(math.sqrt(34))
    assert got["l_infinity_norm"] == 5
    assert got["cosine_similarity"] == pytest.approx(2980 / math.sqrt(3000 * 2994))
    # sorted values 10 20 30 40 against 10 25 30 37: mean gap (0 + 5 + 0 + 3) / 4
    assert got["wasserstein_distance"] == pytest.approx(2.0)


def test_l0_counts_pixels_not_channel_values() -> None:
    clean = np.zeros((1, 3, 3, 3), dtype=np.uint8)
    adversarial = clean.copy()
    adversarial[0, 1, 1] = (255, 7, 0)  # two channels of one pixel
    adversarial[0, 2, 0, 2] = 1
    distances = image_distances(clean, adversarial)
    assert distances["l_0_norm"].tolist() == [2.0]
    assert distances["l_infinity_norm"].tolist() == [255.0]


def test_identical_images_are_at_distance_zero_and_similarity_one() -> None:
    images = np.zeros((2, 4, 4, 1), dtype=np.uint8)
    images[1] = 200
    distances = image_distances(images, images.copy())
    for name in DISTANCES:
        expected = 1.0 if name == "cosine_similarity" else 0.0
        assert distances[name].tolist() == [expected, expected], name


def test_wasserstein_agrees_with_scipy() -> None:
    rng = np.random.default_rng(3)
    clean = rng.integers(0, 256, size=(5, 6, 6, 3), dtype=np.uint8)
    adversarial = rng.integers(0, 256, size=(5, 6, 6, 3), dtype=np.uint8)
    ours = image_distances(clean, adversarial)["wasserstein_distance"]
    for row in range(5):
        reference = wasserstein_distance(clean[row].ravel(), adversarial[row].ravel())
        assert ours[row] == pytest.approx(reference)


def test_summaries_of_known_values() -> None:
    got = summarize("l_0_norm", np.array([1.0, 2.0, 3.0, 4.0]))
    assert got == pytest.approx(
        {
            "l_0_norm_mean": 2.5,
            "l_0_norm_median": 2.5,
            "l_0_norm_stdev": math.sqrt(1.25),
            "l_0_norm_iqr": 1.5,
            "l_0_norm_min": 1.0,
            "l_0_norm_max": 4.0,
        }
    )
    empty = summarize("x", np.array([]))
    assert list(empty) == [f"x_{name}" for name in SUMMARIES]
    assert all(math.isnan(value) for value in empty.values())


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_interval_matches_published_values(
    successes: int, trials: int, low: float, high: float
) -> None:
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_without_trials_is_uninformative_and_checks_counts() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="11 of 10"):
        wilson_interval(11, 10)


def _result(
    index: int, label: int, before: int, after: int, success: bool, queries: int
) -> ImageResult:
    return ImageResult(
        index=index,
        label=label,
        adversarial=np.zeros((2, 2, 1), dtype=np.uint8),
        attacked=before == label,
        success=success,
        queries=queries,
        generations=queries // 100,
        p_true_before=0.9,
        p_true_after=0.2 if success else 0.9,
        label_before=before,
        label_after=after,
        l0=0,
        l2=0.0,
        linf=0.0,
    )


def test_attack_metrics_follow_the_design_definitions() -> None:
    results = [
        _result(0, label=1, before=2, after=2, success=False, queries=0),  # already wrong
        _result(1, label=1, before=1, after=3, success=True, queries=100),
        _result(2, label=0, before=0, after=0, success=False, queries=500),
        _result(3, label=4, before=4, after=0, success=True, queries=300),
    ]
    distances = {name: np.array([0.0, 1.0, 0.0, 3.0]) for name in DISTANCES}
    metrics = attack_metrics(results, np.array([2, 3, 0, 0]), distances, seconds=2.0)
    low, high = wilson_interval(2, 3)
    assert metrics == pytest.approx(
        {
            "clean_accuracy": 0.75,
            "adversarial_accuracy": 0.25,
            "images_attacked": 3,
            "success_rate": 2 / 3,
            "success_rate_ci_low": low,
            "success_rate_ci_high": high,
            "mean_queries": 300,
            "median_queries_successful": 200,
            "attack_seconds": 2.0,
            "queries_per_second": 450,
            **{
                key: value
                for name in DISTANCES
                for key, value in summarize(name, np.array([1.0, 3.0])).items()
            },
        }
    )


def test_attack_metrics_without_attacked_images_are_nan() -> None:
    results = [_result(0, label=1, before=2, after=2, success=False, queries=0)]
    distances = {name: np.zeros(1) for name in DISTANCES}
    metrics = attack_metrics(results, np.array([2]), distances, seconds=0.5)
    assert metrics["images_attacked"] == 0 and metrics["clean_accuracy"] == 0
    for name in ("success_rate", "mean_queries", "median_queries_successful", "l_0_norm_mean"):
        assert math.isnan(metrics[name]), name


def _smallest(label: int, before: int, min_th: int | None) -> ImageResult:
    """A ``th=-1`` result: fooled first at ``min_th``, or not fooled (None)."""
    fooled = min_th is not None
    result = _result(
        0, label, before, after=label + 1 if fooled else before, success=fooled, queries=0
    )
    return dataclasses.replace(result, min_th=min_th)


SMALLEST = [
    _smallest(label=1, before=2, min_th=None),  # already wrong: not attacked
    _smallest(label=1, before=1, min_th=1),
    _smallest(label=3, before=3, min_th=3),
    _smallest(label=5, before=5, min_th=3),
    _smallest(label=0, before=0, min_th=None),
    _smallest(label=2, before=2, min_th=None),
]


def test_robust_accuracy_counts_the_right_images_not_yet_fooled_at_each_th() -> None:
    accuracy = robust_accuracy(SMALLEST, th_max=4)
    assert accuracy.tolist() == pytest.approx([5 / 6, 4 / 6, 4 / 6, 2 / 6, 2 / 6])
    # a right image left unattacked (its class is the target) stays right at every th
    spared = dataclasses.replace(SMALLEST[4], attacked=False)
    assert robust_accuracy([SMALLEST[1], spared], th_max=2).tolist() == [1.0, 0.5, 0.5]


def test_fooled_share_is_the_cumulative_share_of_attacked_images_fooled() -> None:
    assert fooled_share(SMALLEST, th_max=4).tolist() == pytest.approx([0, 0.2, 0.2, 0.6, 0.6])
    assert np.isnan(fooled_share(SMALLEST[:1], th_max=2)).all()


def test_median_counts_images_not_fooled_above_th_max_and_mean_takes_the_fooled() -> None:
    # attacked images' levels 1, 3, 3, 5, 5 (not fooled: th_max + 1)
    assert smallest_th_metrics(SMALLEST, th_max=4) == {"median_min_th": 3.0, "mean_min_th": 7 / 3}
    assert smallest_th_metrics(SMALLEST[3:], th_max=4) == {"median_min_th": 5.0, "mean_min_th": 3.0}
    assert smallest_th_metrics(SMALLEST[4:], th_max=4) == {"median_min_th": 5.0}
    assert math.isnan(smallest_th_metrics(SMALLEST[:1], th_max=4)["median_min_th"])


@pytest.mark.parametrize("min_th", [0, 5])
def test_a_min_th_outside_1_to_th_max_is_refused(min_th: int) -> None:
    results = [*SMALLEST, _smallest(label=1, before=1, min_th=min_th)]
    with pytest.raises(ValueError, match=rf"min_th in \[1, 4\] or None, got min_th={min_th}"):
        robust_accuracy(results, th_max=4)
