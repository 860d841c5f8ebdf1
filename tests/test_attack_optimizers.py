"""DE and CMA-ES as ask/tell optimizers: convergence, bounds, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from pixel_threshold.attack import CMAES, DifferentialEvolution, default_popsize
from pixel_threshold.attack.cmaes import into_box
from pixel_threshold.attack.de import latin_hypercube

LOWER = np.full(4, -5.0)
UPPER = np.full(4, 5.0)
OPTIMUM = np.array([1.0, -2.0, 3.0, 0.5])


def sphere(points: np.ndarray) -> np.ndarray:
    return np.sum((points - OPTIMUM) ** 2, axis=1)


def ellipsoid(points: np.ndarray) -> np.ndarray:
    scales = 10.0 ** np.arange(len(OPTIMUM))  # condition number 1e6
    return np.sum(scales * (points - OPTIMUM) ** 2, axis=1)


def minimise(optimizer: DifferentialEvolution | CMAES, objective, generations: int) -> float:
    best = np.inf
    for _ in range(generations):
        candidates = optimizer.ask()
        assert np.all((candidates >= LOWER) & (candidates <= UPPER))
        values = objective(candidates)
        best = min(best, float(values.min()))
        optimizer.tell(values)
    return best


@pytest.mark.parametrize("objective", [sphere, ellipsoid])
def test_differential_evolution_converges(objective) -> None:
    de = DifferentialEvolution(LOWER, UPPER, popsize=40, rng=np.random.default_rng(0))
    assert minimise(de, objective, 300) < 1e-6
    x, fx = de.best
    assert np.allclose(x, OPTIMUM, atol=1e-3) and fx < 1e-6


@pytest.mark.parametrize("objective", [sphere, ellipsoid])
def test_cma_es_converges(objective) -> None:
    es = CMAES(np.zeros(4), 2.0, LOWER, UPPER, popsize=10, rng=np.random.default_rng(0))
    assert minimise(es, objective, 300) < 1e-8


def test_cma_es_finds_an_optimum_at_the_bound() -> None:
    corner = UPPER - 1e-3
    es = CMAES(np.zeros(4), 2.0, LOWER, UPPER, popsize=10, rng=np.random.default_rng(3))
    best = minimise(es, lambda x: np.sum((x - corner) ** 2, axis=1), 300)
    assert best < 1e-6


def test_cma_es_keeps_searching_a_flat_objective() -> None:
    """pycma's defaults stop after one flat generation (as in ART); ours must not."""
    es = CMAES(np.zeros(4), 2.0, LOWER, UPPER, popsize=8, rng=np.random.default_rng(0))
    seen = [es.ask() for _ in range(1)]
    for _ in range(100):
        es.tell(np.ones(8))
        seen.append(es.ask())
    spread = np.std(np.concatenate(seen[-10:]), axis=0)
    assert np.all(spread > 0.1)  # still sampling widely, not collapsed


def test_optimizers_use_their_own_generator_not_the_global_one() -> None:
    np.random.seed(123)  # noqa: NPY002 - the test watches the legacy global state
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    runs = []
    for _ in range(2):
        de = DifferentialEvolution(LOWER, UPPER, popsize=10, rng=np.random.default_rng(7))
        es = CMAES(np.zeros(4), 1.0, LOWER, UPPER, popsize=6, rng=np.random.default_rng(7))
        minimise(de, sphere, 5)
        minimise(es, sphere, 5)
        runs.append((de.ask().copy(), es.ask().copy()))
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_de_redraws_out_of_box_genes_uniformly() -> None:
    """A best member at the bound makes half the mutants leave the box: no pile-up."""
    lower, upper = np.zeros(1), np.ones(1)
    de = DifferentialEvolution(lower, upper, popsize=2000, rng=np.random.default_rng(0))
    de.ask()
    de.tell(np.abs(de.ask()[:, 0] - 0.0))  # best sits next to 0
    trial = de.ask()[:, 0]
    assert np.all((trial >= 0) & (trial < 1))
    assert np.mean(trial < 0.01) < 0.05  # clipping would put ~half of them at 0


def test_latin_hypercube_fills_every_stratum_once() -> None:
    points = latin_hypercube(np.zeros(3), np.full(3, 10.0), 10, np.random.default_rng(0))
    for column in points.T:
        assert sorted(np.floor(column).astype(int).tolist()) == list(range(10))


def test_box_mapping_is_pycmas_transformation_vectorised() -> None:
    import cma

    lower, upper = np.array([0.0, 0.0, 0.0, -3.0]), np.array([8.0, 8.0, 256.0, 4.0])
    points = np.random.default_rng(0).normal(0, 200, size=(500, 4))
    pycma = cma.transformations.BoxConstraintsLinQuadTransformation(
        [[low, high] for low, high in zip(lower, upper, strict=True)]
    )
    expected = np.array([pycma.transform(point) for point in points])
    mapped = into_box(points.copy(), lower, upper)
    np.testing.assert_allclose(mapped, expected, rtol=0, atol=1e-9)
    assert np.all((mapped >= lower) & (mapped <= upper))
    inside = np.array([[4.0, 4.0, 128.0, 0.5]])
    assert into_box(inside.copy(), lower, upper).tolist() == inside.tolist()  # identity inside


def test_popsize_checks_and_pycma_default() -> None:
    with pytest.raises(ValueError, match="popsize=2"):
        DifferentialEvolution(LOWER, UPPER, popsize=2, rng=np.random.default_rng())
    with pytest.raises(ValueError, match="popsize >= 3 for CMA-ES, got popsize=2"):
        CMAES(np.zeros(4), 1.0, LOWER, UPPER, popsize=2, rng=np.random.default_rng())
    assert default_popsize(5) == 8 and default_popsize(3) == 7
