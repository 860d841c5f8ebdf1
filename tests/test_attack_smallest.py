"""``th=-1``: each image's smallest th, found by walking down from ``th_max``."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest

from pixel_threshold.attack import AttackConfig, ImageResult, PixelThresholdAttack, Sample

from .conftest import LinearSoftmax
from .strategy_cases import budgets

GRAY = np.full((8, 8, 1), 128, dtype=np.uint8)
"""Mid-grey: every th up to 127 moves it without clipping, and no corner colour (0 or
255) leaves a pixel as it was."""


class FooledFrom:
    """Two classes: class 1 once a candidate is at least ``k`` from ``original`` (pixels
    changed for the pixel attack, largest change for the threshold attack). Counts rows."""

    def __init__(self, original: npt.NDArray[np.uint8], attack_type: str, k: int) -> None:
        self.original = original.astype(np.float32)
        self.attack_type = attack_type
        self.k = k
        self.rows = 0

    def distance(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        delta = (pixels - self.original).reshape(len(pixels), -1, pixels.shape[-1])
        if self.attack_type == "pixel":
            return np.any(delta != 0, axis=2).sum(axis=1).astype(np.float64)
        return np.abs(delta).max(axis=(1, 2)).astype(np.float64)

    def __call__(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        self.rows += len(pixels)
        fooled = self.distance(pixels) >= self.k
        return np.stack([np.where(fooled, 0.2, 0.8), np.where(fooled, 0.8, 0.2)], axis=1)


def run(config: AttackConfig, samples: list[Sample], predict) -> list[ImageResult]:
    return sorted(PixelThresholdAttack(config).run(samples, predict), key=lambda r: r.index)


def bisection_probes(high: int, k: int) -> int:
    """Queries a bisection between 0 (not fooled) and ``high`` (fooled) spends to find k."""
    low, probes = 0, 0
    while high - low > 1:
        middle = (low + high) // 2
        probes += 1
        low, high = (low, middle) if middle >= k else (middle, high)
    return probes


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize(("es", "max_iter", "popsize"), budgets(4, 10))
@pytest.mark.parametrize(("attack_type", "th_max"), [("pixel", 20), ("threshold", 127)])
def test_min_th_is_the_smallest_budget_that_fools(
    attack_type: str, th_max: int, es: int, max_iter: int, popsize: int, k: int
) -> None:
    model = FooledFrom(GRAY, attack_type, k)
    config = AttackConfig(
        attack_type=attack_type, th=-1, th_max=th_max, es=es, max_iter=max_iter, popsize=popsize
    )
    [result] = run(config, [Sample(0, GRAY, 0)], model)
    assert result.success and result.min_th == k
    assert model.distance(result.adversarial[None].astype(np.float32))[0] == k
    assert (result.l0 if attack_type == "pixel" else result.linf) == k
    assert result.label_after == 1 and result.p_true_after == pytest.approx(0.2)


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize(("attack_type", "th_max"), [("pixel", 20), ("threshold", 127)])
def test_queries_are_every_search_and_tightening(attack_type: str, th_max: int, k: int) -> None:
    """Random search, one query a step: th_max fools at once, and one more query
    confirms it alone; tightening costs one query per changed pixel (pixel) or per
    bisection probe (threshold); the search at k - 1 spends its whole budget, unless
    k = 1 settles it. The one other row the model sees is the clean image, classified
    once for all levels."""
    model = FooledFrom(GRAY, attack_type, k)
    config = AttackConfig(
        attack_type=attack_type, th=-1, th_max=th_max, es=2, max_iter=40, popsize=1
    )
    [result] = run(config, [Sample(0, GRAY, 0)], model)
    tightening = th_max if attack_type == "pixel" else bisection_probes(th_max, k)
    searches = 1 if k == 1 else 2
    assert result.queries == 1 + 1 + tightening + (searches - 1) * 40
    assert model.rows == result.queries + 1


def test_an_image_not_fooled_within_th_max_is_written_unchanged() -> None:
    """after as many searches at th_max as a binary search over 1..th_max has probes
    (20: 5), each with its own seed"""
    model = FooledFrom(GRAY, "pixel", 30)
    config = AttackConfig(th=-1, th_max=20, es=1, max_iter=3, popsize=10)
    [result] = run(config, [Sample(0, GRAY, 0)], model)
    assert not result.success and result.attacked and result.min_th is None
    assert np.array_equal(result.adversarial, GRAY) and result.l0 == 0
    assert result.queries == 5 * 30 and result.generations == 5 * 3
    assert model.rows == result.queries + 1


@pytest.mark.parametrize(("es", "max_iter", "popsize"), budgets(1, 3))
def test_a_search_that_fails_at_th_max_is_tried_again_with_another_seed(
    es: int, max_iter: int, popsize: int
) -> None:
    """A model fooled only by a change of pixel (0, 0), th_max = 3: two tries (3 has 2
    bits). Images fooled after a first search that spent its whole budget show that the
    second try has a stream of its own; an image neither fools spends both budgets."""
    images = np.full((60, 4, 4, 1), 128, dtype=np.uint8)

    def corner(pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        fooled = pixels[:, 0, 0, 0] != 128
        return np.stack([np.where(fooled, 0.2, 0.8), np.where(fooled, 0.8, 0.2)], axis=1)

    config = AttackConfig(th=-1, th_max=3, es=es, max_iter=max_iter, popsize=popsize)
    results = run(config, [Sample(i, image, 0) for i, image in enumerate(images)], corner)
    budget = max_iter * popsize
    tightening = 1 + 3  # the claim confirmed alone, one query per changed pixel at most
    second = [r for r in results if r.success and r.queries > budget + tightening]
    assert second and all(r.min_th == 1 and r.queries <= 2 * budget + 4 for r in second)
    failed = [r for r in results if not r.success]
    assert failed and all(r.queries == 2 * budget for r in failed)


def test_an_image_the_model_gets_wrong_is_not_attacked() -> None:
    model = FooledFrom(GRAY, "threshold", 5)
    config = AttackConfig(attack_type="threshold", th=-1, es=2, max_iter=10, popsize=1)
    [result] = run(config, [Sample(0, GRAY, 1)], model)
    assert not result.attacked and not result.success and result.min_th is None
    assert result.queries == 0


@pytest.fixture
def linear_samples(gray_images: npt.NDArray[np.uint8]) -> tuple[LinearSoftmax, list[Sample]]:
    model = LinearSoftmax((8, 8, 1), 10)
    labels = model.labels(gray_images)
    samples = [
        Sample(i, image, int(label))
        for i, (image, label) in enumerate(zip(gray_images, labels, strict=True))
    ]
    return model, samples


@pytest.mark.parametrize(("es", "max_iter", "popsize"), budgets(6, 10))
@pytest.mark.parametrize("attack_type", ["pixel", "threshold"])
def test_same_result_whatever_the_batch_and_reports_hold(
    linear_samples: tuple[LinearSoftmax, list[Sample]],
    attack_type: str,
    es: int,
    max_iter: int,
    popsize: int,
) -> None:
    model, samples = linear_samples
    base = AttackConfig(
        attack_type=attack_type, th=-1, th_max=40, es=es, max_iter=max_iter, popsize=popsize
    )
    reference = run(dataclasses.replace(base, batch_size=64), samples, model)

    def comparable(results: list[ImageResult]) -> list[tuple[object, ...]]:
        return [(r.index, r.min_th, r.queries, r.adversarial.tobytes()) for r in results]

    for batch_size in (5, 500):
        again = run(dataclasses.replace(base, batch_size=batch_size), samples, model)
        assert comparable(again) == comparable(reference)
    assert comparable(run(base, samples[3:4], model)) == comparable(reference[3:4])
    fooled = [r for r in reference if r.success]
    assert len({r.min_th for r in fooled}) > 1, "images differ in robustness"
    labels = model.labels(np.stack([r.adversarial for r in fooled]))
    assert all(label != r.label for label, r in zip(labels, fooled, strict=True))
    for r in fooled:
        assert r.min_th is not None and 1 <= r.min_th <= 40
        assert (r.l0 if attack_type == "pixel" else r.linf) == r.min_th
    assert all(r.min_th is None for r in reference if not r.success)


def test_targeted_smallest_th_reaches_the_target(
    linear_samples: tuple[LinearSoftmax, list[Sample]],
) -> None:
    model, samples = linear_samples
    config = AttackConfig(attack_type="threshold", th=-1, es=2, max_iter=60, popsize=1, target=4)
    results = [r for r in run(config, samples[:8], model) if r.success]
    assert results
    labels = model.labels(np.stack([r.adversarial for r in results]))
    assert np.all(labels == 4) and all(r.label_after == 4 for r in results)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"th": -2}, "th=-2"),
        ({"th": -1, "th_max": 256}, "th_max=256"),
        ({"th": -1, "th_max": -1}, "th_max=-1"),
    ],
)
def test_bad_smallest_settings_are_rejected(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AttackConfig(**options)


def test_th_max_past_the_pixels_of_the_image_is_rejected() -> None:
    config = AttackConfig(th=-1, th_max=65, es=2, max_iter=5, popsize=1)
    with pytest.raises(ValueError, match=r"th_max <= 64 .*th_max=65"):
        run(config, [Sample(0, GRAY, 0)], FooledFrom(GRAY, "pixel", 1))
