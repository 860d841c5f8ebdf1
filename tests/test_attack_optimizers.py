"""DE and CMA-ES as ask/tell optimizers: convergence, bounds, seeding; CMA-ES batched
over slots, each slot's search independent of the others."""

from __future__ import annotations

import numpy as np
import pytest

from pixel_threshold.attack import CMAES, DifferentialEvolution, cmaes, default_popsize
from pixel_threshold.attack.cmaes import Box
from pixel_threshold.attack.de import latin_hypercube

LOWER = np.full(4, -5.0)
UPPER = np.full(4, 5.0)
OPTIMUM = np.array([1.0, -2.0, 3.0, 0.5])


def sphere(points: np.ndarray) -> np.ndarray:
    return np.sum((points - OPTIMUM) ** 2, axis=1)


def ellipsoid(points: np.ndarray) -> np.ndarray:
    scales = 10.0 ** np.arange(len(OPTIMUM))  # condition number 1e6
    return np.sum(scales * (points - OPTIMUM) ** 2, axis=1)


class OneSlot:
    """A `CMAES` strategy of one slot, started at ``x0``, as a one-image optimizer."""

    def __init__(
        self,
        x0: np.ndarray,
        sigma0: float,
        *,
        popsize: int,
        seed: int,
        box: tuple[np.ndarray, np.ndarray] = (LOWER, UPPER),
    ) -> None:
        self.es = CMAES(lambda _: x0, sigma0, *box, capacity=1, popsize=popsize)
        self.es.start(0, np.zeros((1, 1, 1)), np.random.default_rng(seed))
        self.slots = np.zeros(1, dtype=np.intp)

    def ask(self) -> np.ndarray:
        return self.es.ask(self.slots)

    def tell(self, fitness: np.ndarray) -> None:
        self.es.tell(self.slots, fitness)


def minimise(optimizer: DifferentialEvolution | OneSlot, objective, generations: int) -> float:
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
    es = OneSlot(np.zeros(4), 2.0, popsize=10, seed=0)
    assert minimise(es, objective, 300) < 1e-8


def test_cma_es_finds_an_optimum_at_the_bound() -> None:
    corner = UPPER - 1e-3
    es = OneSlot(np.zeros(4), 2.0, popsize=10, seed=3)
    best = minimise(es, lambda x: np.sum((x - corner) ** 2, axis=1), 300)
    assert best < 1e-6


def test_cma_es_keeps_searching_a_flat_objective() -> None:
    """pycma's defaults stop after one flat generation (as in ART); ours must not."""
    es = OneSlot(np.zeros(4), 2.0, popsize=8, seed=0)
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
        es = OneSlot(np.zeros(4), 1.0, popsize=6, seed=7)
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


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        (np.array([0.0, 0.0, 0.0, -3.0]), np.array([8.0, 8.0, 256.0, 4.0])),
        (np.full(4, -8.0), np.full(4, 9.0)),  # one box for every gene, as Threshold's
    ],
)
def test_box_mapping_is_pycmas_transformation_vectorised(
    lower: np.ndarray, upper: np.ndarray
) -> None:
    import cma

    points = np.random.default_rng(0).normal(0, 200, size=(500, 4))
    pycma = cma.transformations.BoxConstraintsLinQuadTransformation(
        [[low, high] for low, high in zip(lower, upper, strict=True)]
    )
    expected = np.array([pycma.transform(point) for point in points])
    mapped = Box(lower, upper).mapped(points.copy())
    np.testing.assert_allclose(mapped, expected, rtol=0, atol=1e-9)
    assert np.all((mapped >= lower) & (mapped <= upper))
    inside = (lower + upper)[None] / 2
    assert Box(lower, upper).mapped(inside.copy()).tolist() == inside.tolist()  # identity inside


def test_popsize_checks_and_pycma_default() -> None:
    with pytest.raises(ValueError, match="popsize=2"):
        DifferentialEvolution(LOWER, UPPER, popsize=2, rng=np.random.default_rng())
    with pytest.raises(ValueError, match="popsize >= 3 for CMA-ES, got popsize=2"):
        CMAES(lambda _: np.zeros(4), 1.0, LOWER, UPPER, capacity=1, popsize=2)
    assert default_popsize(5) == 8 and default_popsize(3) == 7


@pytest.fixture
def separable(monkeypatch: pytest.MonkeyPatch) -> None:
    """CMA-ES with a diagonal covariance from 3 genes up (as above 256 genes)."""
    monkeypatch.setattr(cmaes, "FULL_COVARIANCE_MAX_DIMENSION", 2)


@pytest.mark.usefixtures("separable")
@pytest.mark.parametrize("objective", [sphere, ellipsoid])
def test_separable_cma_es_converges_on_axis_aligned_objectives(objective) -> None:
    es = OneSlot(np.zeros(4), 2.0, popsize=10, seed=0)
    assert es.es.parameters.separable
    assert minimise(es, objective, 400) < 1e-8


@pytest.mark.parametrize("diagonal", [False, True])
def test_a_slots_search_does_not_depend_on_the_other_slots(
    monkeypatch: pytest.MonkeyPatch, diagonal: bool
) -> None:
    """Slot 1 alone, and beside slots of other images asked and told with it (or not),
    draws and moves bit for bit the same."""
    if diagonal:
        monkeypatch.setattr(cmaes, "FULL_COVARIANCE_MAX_DIMENSION", 2)

    def trajectory(company: list[int]) -> list[np.ndarray]:
        es = CMAES(lambda image: image.reshape(-1), 2.0, LOWER, UPPER, capacity=4, popsize=6)
        for slot in (1, *company):
            es.start(slot, np.full((2, 2, 1), slot / 2), np.random.default_rng(slot))
        genes = []
        for generation in range(40):
            slots = np.array(sorted({1, *company[: generation % (len(company) + 1)]}))
            candidates = es.ask(slots)
            genes.append(candidates[list(slots).index(1) * 6 :][:6].copy())
            es.tell(slots, ellipsoid(candidates))
        return genes

    alone = trajectory([])
    for company in ([0], [0, 2, 3], [3, 2]):
        together = trajectory(company)
        assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))


def told_as_arrays(es):
    """pycma's ask and tell, with the candidates as one array and the values too."""
    asked: list[np.ndarray] = []

    def ask() -> np.ndarray:
        asked[:] = es.ask()
        return np.array(asked)

    def tell(values: np.ndarray) -> None:
        es.tell(asked, values.tolist())

    return ask, tell


def test_cma_es_needs_as_many_generations_as_pycma() -> None:
    """The same algorithm as pycma's (tutorial defaults): on a rotated ellipsoid in 10-D,
    the median generations to 1e-8 over seeds are within 20% of pycma's."""
    import cma

    dimension = 10
    rotation = np.linalg.qr(np.random.default_rng(1).standard_normal((dimension, dimension)))[0]
    scales = 10.0 ** (6 * np.arange(dimension) / (dimension - 1))
    lower, upper = np.full(dimension, -50.0), np.full(dimension, 50.0)

    def rotated(points: np.ndarray) -> np.ndarray:
        return np.sum(scales * ((points - 1) @ rotation.T) ** 2, axis=1)

    def generations(ask, tell) -> int:
        for generation in range(1, 2000):
            values = rotated(ask())
            if values.min() < 1e-8:
                return generation
            tell(values)
        return 2000

    ours, theirs = [], []
    for seed in range(5):
        es = OneSlot(np.zeros(dimension), 2.0, popsize=12, seed=seed, box=(lower, upper))
        ours.append(generations(es.ask, es.tell))
        reference = cma.CMAEvolutionStrategy(
            np.zeros(dimension), 2.0, {"popsize": 12, "seed": seed + 1, "verbose": -9}
        )
        theirs.append(generations(*told_as_arrays(reference)))
    assert np.median(ours) <= 1.2 * np.median(theirs)
    assert np.median(ours) < 2000


def test_cma_es_runs_its_linear_algebra_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second OpenBLAS thread only waits for a core the model keeps busy
    (docs/benchmarks.md): numpy's BLAS on one thread inside ask and tell, the caller's
    setting after."""
    from threadpoolctl import threadpool_info

    def numpys_blas_threads() -> list[int]:
        return [
            info["num_threads"]
            for info in threadpool_info()
            if info["user_api"] == "blas" and "numpy" in info["filepath"]
        ]

    seen: list[list[int]] = []
    cholesky = np.linalg.cholesky

    def watched(matrix: np.ndarray):
        seen.append(numpys_blas_threads())
        return cholesky(matrix)

    monkeypatch.setattr(np.linalg, "cholesky", watched)
    outside = numpys_blas_threads()
    box = (np.full(40, -5.0), np.full(40, 5.0))
    es = OneSlot(np.zeros(40), 2.0, popsize=200, seed=0, box=box)  # 200 x 40 x 40 > 65,536 x 4
    for _ in range(3):
        es.tell(np.sum(es.ask() ** 2, axis=1))
    assert outside and seen and all(threads == [1] for threads in seen)
    seen.clear()
    small = OneSlot(np.zeros(4), 2.0, popsize=8, seed=0)  # OpenBLAS keeps to one thread
    minimise(small, sphere, 3)
    assert seen and all(threads == outside for threads in seen)
    assert numpys_blas_threads() == outside


def test_square_roots_are_cholesky_factors_and_survive_a_matrix_rounding_broke() -> None:
    """Each covariance's root A has A A^T = C: its lower Cholesky factor, the same for a
    slot whatever its company; a C that rounding left with a negative eigenvalue gets a
    root from its floored eigendecomposition instead of an error."""
    rng = np.random.default_rng(0)
    factors = rng.standard_normal((2, 5, 5))
    good = factors @ factors.transpose(0, 2, 1) + np.eye(5)
    broken = np.diag([1.0, 2.0, 3.0, 4.0, -1e-12])
    roots = cmaes._square_roots(np.stack([good[0], broken, good[1]]))
    for row, covariance in ((0, good[0]), (2, good[1])):
        assert np.array_equal(roots[row], np.tril(roots[row]))
        assert np.array_equal(roots[row], cmaes._square_roots(covariance[None])[0])
        np.testing.assert_allclose(roots[row] @ roots[row].T, covariance, rtol=1e-12)
    assert np.all(np.isfinite(roots[1]))
    np.testing.assert_allclose(roots[1] @ roots[1].T, np.diag([1.0, 2, 3, 4, 4e-20]), atol=1e-15)
