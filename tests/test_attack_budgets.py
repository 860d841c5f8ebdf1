"""Budgets are exact: no strategy, seed or gene ever takes a candidate past ``th``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from pixel_threshold.attack import (
    AttackConfig,
    DifferentialEvolution,
    PixelEncoding,
    PixelThresholdAttack,
    Sample,
    ThresholdEncoding,
)

from .conftest import decode_candidates as _decode
from .strategy_cases import each_strategy


class FooledOnlyPastTheBudget:
    """Class 0 for any candidate within ``th`` of the clean image it came from, class 1
    for one past it: only a budget violation fools it.

    The owner of a candidate is the clean image nearest to it (random images are
    nowhere near ``th`` of each other). Class 0's confidence falls as a candidate
    moves away from its image, so every search is drawn to the edge of its budget.
    ``spent`` is the largest L0 (pixel) or L-infinity (threshold) distance queried.
    """

    def __init__(self, images: npt.NDArray[np.uint8], attack_type: str, th: int) -> None:
        self.images = images.astype(np.float32)
        self.attack_type = attack_type
        self.th = th
        self.spent = 0

    def __call__(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        delta = np.abs(pixels[:, None] - self.images[None])  # (B, N, H, W, C)
        if self.attack_type == "pixel":
            distance = np.any(delta > 0, axis=-1).sum(axis=(2, 3)).min(axis=1)
        else:
            distance = delta.max(axis=(2, 3, 4)).min(axis=1)
        self.spent = max(self.spent, int(distance.max()))
        moved = delta.mean(axis=(2, 3, 4)).min(axis=1) / 255  # (B,) in [0, 1]
        p_other = np.where(distance > self.th, 0.99, 0.05 + 0.4 * moved)
        return np.stack([1 - p_other, p_other], axis=1)


def attack_within_budget(
    attack_type: str,
    th: int,
    es: int,
    shape: tuple[int, int, int],
    *,
    images: int,
    seeds: int,
    **budget: int,
) -> None:
    """Attack ``images`` random images with each of ``seeds`` seeds: never fooled, and
    the search spends exactly its whole budget."""
    clean = np.random.default_rng(shape).integers(0, 256, size=(images, *shape), dtype=np.uint8)
    samples = [Sample(i, image, 0) for i, image in enumerate(clean)]
    for seed in range(seeds):
        model = FooledOnlyPastTheBudget(clean, attack_type, th)
        config = AttackConfig(attack_type=attack_type, th=th, es=es, seed=seed, **budget)
        results = list(PixelThresholdAttack(config).run(samples, model))
        assert len(results) == len(samples) and all(r.attacked for r in results)
        assert not any(r.success for r in results), f"seed {seed} broke the budget"
        assert all(r.l0 <= th and r.linf <= th for r in results)
        assert model.spent == th, f"seed {seed}: the search never reached its budget"


@pytest.mark.parametrize("es", each_strategy())
@pytest.mark.parametrize(("attack_type", "th"), [("pixel", 1), ("pixel", 3), ("threshold", 1)])
@pytest.mark.parametrize("shape", [(8, 8, 1), (8, 8, 3), (32, 32, 3)])
def test_only_a_budget_violation_fools_the_model_and_none_happens(
    attack_type: str, th: int, es: int, shape: tuple[int, int, int]
) -> None:
    attack_within_budget(
        attack_type,
        th,
        es,
        shape,
        images=2,
        seeds=20,
        max_iter=4,
        popsize=2 if es == 2 else 8,
        batch_size=32,
    )


@pytest.mark.parametrize("es", each_strategy())
@pytest.mark.parametrize(("attack_type", "th"), [("pixel", 2), ("threshold", 1)])
def test_the_budget_holds_on_imagenet_sized_images(attack_type: str, th: int, es: int) -> None:
    attack_within_budget(
        attack_type,
        th,
        es,
        (224, 224, 3),
        images=1,
        seeds=3,
        max_iter=2,
        popsize=4,
        batch_size=4,
    )


def test_differential_evolution_starts_strictly_inside_the_threshold_box() -> None:
    """The original bug: the float32 Latin hypercube put a th=1 gene on its excluded upper
    bound 2.0 (a move of 2) for seeds 0 and 6 of these, before the clamp."""
    encoding = ThresholdEncoding(1, (32, 32, 3))
    for seed in range(8):
        de = DifferentialEvolution(
            encoding.lower, encoding.upper, popsize=400, rng=np.random.default_rng(seed)
        )
        genes = de.ask()
        assert genes.dtype == np.float32
        assert genes.min() >= -1.0 and genes.max() < 2.0
        assert np.floor(genes).min() == -1 and np.floor(genes).max() == 1


@pytest.mark.parametrize("th", [1, 4, 100])
def test_threshold_genes_on_or_past_the_bounds_move_at_most_th(th: int) -> None:
    shape = (3, 4, 3)
    encoding = ThresholdEncoding(th, shape)
    image = np.random.default_rng(th).integers(0, 256, size=shape, dtype=np.uint8)
    image[0, 0] = 128  # room to move th either way
    size = encoding.dimension
    genes = np.stack(
        [
            encoding.upper,  # exactly th + 1.0: the excluded bound
            np.nextafter(encoding.lower, -np.inf),
            np.full(size, 1e9),
            np.full(size, -1e9),
            np.full(size, np.inf),
            np.full(size, -np.inf),
        ]
    )
    moved = _decode(encoding, image, genes) - image[None].astype(np.float32)
    assert np.abs(moved).max() <= th
    assert moved[[0, 2, 4], 0, 0].tolist() == [[th] * 3] * 3
    assert moved[[1, 3, 5], 0, 0].tolist() == [[-th] * 3] * 3


@pytest.mark.parametrize("shape", [(5, 7, 1), (5, 7, 3)])
def test_pixel_genes_past_the_bounds_stay_in_the_image_and_in_0_255(
    shape: tuple[int, int, int],
) -> None:
    channels = shape[2]
    th = 3
    encoding = PixelEncoding(th, shape)
    image = np.full(shape, 100, dtype=np.uint8)
    block = 2 + channels
    far = np.array([[-1e9] * block, [1e9] * block, [np.inf] * block, [-np.inf] * block])
    genes = np.tile(far, th)  # every block of a row names the same corner
    genes[0, block:] = np.tile([-3.0, 1e6] + [300.0] * channels, th - 1)
    decoded = _decode(encoding, image, genes)
    assert decoded.min() >= 0 and decoded.max() <= 255
    changed = np.any(decoded != image[None], axis=-1)
    assert changed.reshape(len(genes), -1).sum(axis=1).tolist() == [th] * len(genes)
    assert set(np.unique(decoded[changed])) <= {0.0, 255.0}
    assert changed[0, 0, 0] and changed[1, -1, -1] and changed[2, -1, -1] and changed[3, 0, 0]
