"""CMA-ES (Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv 1604.00772), batched
over every image in flight: one `CMAES` strategy holds each slot's mean, step size,
evolution paths and covariance as rows of arrays, so a generation of all the images in
flight costs a few stacked numpy calls (a matrix product, a Cholesky factorisation per
slot in one LAPACK call), not a Python optimizer object per image.

The update is the tutorial's, with its default parameters (Table 1 and eq. 49-58: active
CMA's negative recombination weights, cumulative step-size adaptation), but for the square
root of the covariance C that samples are drawn with: its lower Cholesky factor A
(y = A z), not its symmetric root B D from an eigendecomposition, and so, in the
step-size path, A^-1 <y>_w = <z>_w for C^(-1/2) <y>_w. Krause, Arbones & Igel (NeurIPS
2016) find empirically that the search then needs as many evaluations (the triangular
factor changes as smoothly as the symmetric root); at 64 genes it costs a fifteenth of the
eigendecomposition, which the tutorial's rule asks for every generation at a large
population (docs/benchmarks.md, "The host out of the model's way, second pass"). Above
`FULL_COVARIANCE_MAX_DIMENSION` genes the covariance is diagonal (separable CMA-ES, Ros &
Hansen, PPSN 2008), with learning rates scaled by (D + 2) / 3: time and memory linear in D.

Samples live in an unbounded space; `Box.mapped` maps them into the encoding's box with
pycma's ``bounds`` transformation (vectorised over the population), and the update is
told the unbounded samples with the objective of their images. No stopping rule: on a
confident model every candidate of a generation can score the same float32
probability, and pycma's defaults (``tolfun``, ``tolflatfitness``) then end the search
after one generation, as they do in ART; the caller's generation budget is the only
stop. Each coordinate's spread is capped at a third of its range (pycma's ``maxstd``
when given bounds), or a flat objective inflates the step size into blind random search.

The linear algebra runs on one BLAS thread: at these sizes OpenBLAS's second thread
never helps, and on a machine whose cores the model keeps busy it waits for a core
(docs/benchmarks.md, "Why the core is as it is"); products too small for OpenBLAS to
split are left as they are, without the cost of setting its threads. Every operation on
a slot's rows is the same whatever the other slots, so an image's search does not depend
on them.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from pixel_threshold.attack.types import FloatArray, IntArray

MIN_POPSIZE = 3
"""The smallest population with a positive and a negative recombination weight."""
FULL_COVARIANCE_MAX_DIMENSION = 256
"""Above this many genes, use separable (diagonal) CMA-ES: linear time and memory."""
OPENBLAS_ONE_THREAD_WORK = 65_536 * 4
"""OpenBLAS multiplies m x k by k x n on one thread when m k n is at most this
(``SMP_THRESHOLD_MIN`` times the default ``GEMM_MULTITHREAD_THRESHOLD``)."""
BOX_BLOCK_VALUES = 1 << 21
"""`Box.mapped` maps this many values at a time (16 MB of float64 scratch a temporary)."""


def default_popsize(dimension: int) -> int:
    """The tutorial's default population size, ``4 + floor(3 ln D)`` (ART's CMA-ES budget)."""
    return 4 + int(3 * math.log(dimension))


class Box:
    """The box ``[lower, upper]`` (D,) of the genes, and the mapping into it.

    Hansen's linear-quadratic box transformation (the one pycma's ``bounds`` option
    applies solution by solution, here on the whole population at once): the
    identity inside, a parabola that meets each bound with zero slope over a margin
    ``a = min(width / 2, max(1, |bound|) / 20)``, mirrored periodically outside
    ``[lower - a_low, upper + a_high]``. The flat approach to each bound keeps values
    at and near it (black and white pixels, the largest deltas) easy to reach. The
    margins are worked out once, not a generation.
    """

    def __init__(self, lower: FloatArray, upper: FloatArray) -> None:
        self.lower, self.upper = lower, upper
        width = upper - lower
        margin_low = np.minimum(width / 2, np.maximum(1, np.abs(lower)) / 20)
        margin_high = np.minimum(width / 2, np.maximum(1, np.abs(upper)) / 20)
        start = lower - margin_low
        span = upper + margin_high - start
        edges = np.stack(
            [
                start,
                start + span,  # the end of one period
                span,
                lower + margin_low,  # below it, the parabola that meets the lower bound
                upper - margin_high,  # above it, the one that meets the upper bound
                upper + margin_high,  # the upper parabola's vertex
                4 * margin_low,
                -4 * margin_high,
                lower,
                upper,
            ]
        )
        uniform = np.all(edges == edges[:, :1])  # one box for every gene (Threshold's)
        self._edges = edges[:, :1] if uniform else edges
        """Each gene's edges (10, D), or, where every gene has the same box, (10, 1)."""

    def mapped(self, points: FloatArray) -> FloatArray:
        """``points`` (M, D), C-contiguous, mapped into the box, in place. Only the values
        beyond a bend change, so only they are worked on; rows go a block at a time, so
        the scratch memory stays bounded whatever M and D."""
        dimension = points.shape[1]
        rows = max(1, BOX_BLOCK_VALUES // dimension)
        for block in range(0, len(points), rows):
            part = points[block : block + rows]
            bent = part < self._edges[3]  # below the lower bend
            bent |= part > self._edges[4]  # above the upper one
            at = np.flatnonzero(bent)
            if len(at):
                flat = part.reshape(-1)
                edges = self._edges if self._edges.shape[1] == 1 else self._edges[:, at % dimension]
                flat[at] = _bent(flat[at], edges)
        return points


def _bent(values: FloatArray, edges: FloatArray) -> FloatArray:
    """``values`` (K,), each beyond a bend, mapped, in place; ``edges`` (10, K) or, where
    every gene has the same box, (10, 1): `Box`'s edges of each value's gene. Each part
    of the mapping is worked out for every value and copied where it applies: a few
    passes over K values, no gathers by mask."""
    start, end, span, low_bend, high_bend, high_vertex, low_width, high_width, lower, upper = edges
    outside = values < start
    outside |= values > end
    if outside.any():  # fold into [start, end] by mirroring
        period = 2 * span
        folded = values - start
        np.mod(folded, period, out=folded)
        mirrored = np.where(folded > span, period - folded, folded)
        mirrored += start
        np.copyto(values, mirrored, where=outside)
    below = values - start
    below *= below
    below /= low_width
    below += lower
    np.copyto(values, below, where=values < low_bend)
    above = values - high_vertex
    above *= above
    above /= high_width
    above += upper
    np.copyto(values, above, where=values > high_bend)
    return values


@dataclass(frozen=True)
class Parameters:
    """The tutorial's default strategy parameters for ``dimension`` genes and ``popsize``
    samples a generation (arXiv 1604.00772, Table 1 and eq. 49-58)."""

    dimension: int
    popsize: int
    separable: bool

    @functools.cached_property
    def _raw_weights(self) -> FloatArray:
        """w'_i = ln((lambda + 1) / 2) - ln i, i = 1..lambda (eq. 49)."""
        return math.log((self.popsize + 1) / 2) - np.log(np.arange(1, self.popsize + 1))

    @property
    def mu(self) -> int:
        return self.popsize // 2

    @functools.cached_property
    def mueff(self) -> float:
        """The variance-effective selection mass of the positive weights (eq. 8)."""
        positive = self._raw_weights[: self.mu]
        return float(positive.sum() ** 2 / (positive**2).sum())

    @functools.cached_property
    def c1(self) -> float:
        """Rank-one learning rate (eq. 57); times (D + 2) / 3 when separable."""
        rate = 2 / ((self.dimension + 1.3) ** 2 + self.mueff)
        return rate * (self.dimension + 2) / 3 if self.separable else rate

    @functools.cached_property
    def cmu(self) -> float:
        """Rank-mu learning rate (eq. 58, alpha_cov = 2); times (D + 2) / 3 when separable."""
        mueff, dimension = self.mueff, self.dimension
        rate = 2 * (mueff - 2 + 1 / mueff) / ((dimension + 2) ** 2 + mueff)
        if self.separable:
            rate *= (dimension + 2) / 3
        return min(1 - self.c1, rate)

    @functools.cached_property
    def weights(self) -> FloatArray:
        """Recombination weights (popsize,) by rank: positive ones summing to 1, negative
        ones scaled so the covariance stays positive definite (eq. 53)."""
        raw = self._raw_weights
        positive, negative = raw[raw >= 0], raw[raw < 0]
        mueff_minus = negative.sum() ** 2 / (negative**2).sum() if len(negative) else 0.0
        bounds = [1 + 2 * mueff_minus / (self.mueff + 2)]
        if self.cmu > 0:  # with a single parent there is no rank-mu update to bound
            c1, cmu = self.c1, self.cmu
            bounds += [1 + c1 / cmu, (1 - c1 - cmu) / (self.dimension * cmu)]
        scale = min(bounds)
        weights: FloatArray = np.where(
            raw >= 0, raw / positive.sum(), scale * raw / -negative.sum()
        )
        return weights

    @functools.cached_property
    def decay(self) -> float:
        """What the covariance keeps of itself a generation: 1 - c_1 - c_mu sum(w) (eq. 47)."""
        return 1 - self.c1 - self.cmu * float(self.weights.sum())

    @functools.cached_property
    def cc(self) -> float:
        """Learning rate of the rank-one evolution path (eq. 56)."""
        n, mueff = self.dimension, self.mueff
        return (4 + mueff / n) / (n + 4 + 2 * mueff / n)

    @functools.cached_property
    def cs(self) -> float:
        """Learning rate of the step-size evolution path (eq. 55)."""
        return (self.mueff + 2) / (self.dimension + self.mueff + 5)

    @functools.cached_property
    def damps(self) -> float:
        """Step-size damping (eq. 55)."""
        return 1 + 2 * max(0.0, math.sqrt((self.mueff - 1) / (self.dimension + 1)) - 1) + self.cs

    @functools.cached_property
    def chi_n(self) -> float:
        """E||N(0, I)||, the expected length of a standard normal vector (p. 28)."""
        n = self.dimension
        return math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))


class CMAES:
    """The CMA-ES `strategy.Strategy`: up to ``capacity`` images' searches in a box
    ``[lower, upper)`` of genes, each started at ``initial_guess(image)`` with step size
    ``sigma0`` and sampling from its own generator."""

    def __init__(
        self,
        initial_guess: Callable[[FloatArray], FloatArray],
        sigma0: float,
        lower: FloatArray,
        upper: FloatArray,
        *,
        capacity: int,
        popsize: int,
    ) -> None:
        if popsize < MIN_POPSIZE:
            raise ValueError(f"expected popsize >= {MIN_POPSIZE} for CMA-ES, got popsize={popsize}")
        dimension = len(lower)
        self._initial_guess = initial_guess
        self._sigma0 = sigma0
        # the box is half-open; map just inside the upper bound
        self._box = Box(
            np.asarray(lower, dtype=np.float64),
            np.nextafter(np.asarray(upper, dtype=np.float64), -np.inf),
        )
        self._maxstd = (self._box.upper - self._box.lower) / 3
        self.parameters = Parameters(
            dimension, popsize, separable=dimension > FULL_COVARIANCE_MAX_DIMENSION
        )
        full = not self.parameters.separable
        # a generation's largest products: popsize x D by D x D
        split = popsize * dimension * dimension > OPENBLAS_ONE_THREAD_WORK
        self._linear_algebra = _one_blas_thread if split else contextlib.nullcontext
        self._identity = np.eye(dimension if full else 0)
        self._rngs: list[np.random.Generator | None] = [None] * capacity
        self._mean = np.zeros((capacity, dimension))
        self._sigma = np.zeros(capacity)
        self._path_sigma = np.zeros((capacity, dimension))
        self._path_c = np.zeros((capacity, dimension))
        self._generation = np.zeros(capacity, dtype=np.intp)
        # the covariance C: full (C and a square root A, A A^T = C) or diagonal (its
        # variances and their square roots, the scales)
        self._covariance = np.zeros((capacity, dimension, dimension) if full else (0,))
        self._root = np.zeros((capacity, dimension, dimension) if full else (0,))
        self._variances = np.ones((capacity, 0 if full else dimension))
        self._scales = np.ones((capacity, 0 if full else dimension))
        self._asked: tuple[FloatArray, FloatArray | None] | None = None
        """The last `ask`'s standard normal samples z (L, popsize, D) and, with a full
        covariance, their steps y = A z (kept: a diagonal one's would double the memory
        of a large image's population)."""

    def start(
        self,
        slot: int,
        image: FloatArray,
        rng: np.random.Generator,
        *,
        near: FloatArray | None = None,
    ) -> None:
        """Open ``slot`` at the image's initial guess (``near`` is not used)."""
        self._rngs[slot] = rng
        self._mean[slot] = self._initial_guess(image)
        self._sigma[slot] = self._sigma0
        self._path_sigma[slot] = 0
        self._path_c[slot] = 0
        self._generation[slot] = 0
        if self.parameters.separable:
            self._variances[slot] = 1
            self._scales[slot] = 1
        else:
            self._covariance[slot] = self._identity
            self._root[slot] = self._identity

    def ask(self, slots: IntArray) -> FloatArray:
        """Genes (L * popsize, D) inside the box, slot by slot: x = m + sigma A z."""
        popsize, dimension = self.parameters.popsize, self.parameters.dimension
        samples = np.empty((len(slots), popsize, dimension))
        for row, slot in enumerate(slots.tolist()):
            rng = self._rngs[slot]
            assert rng is not None, "a slot is asked only after start()"
            rng.standard_normal(out=samples[row])
        sigma = self._sigma[slots, None, None]
        if self.parameters.separable:
            self._asked = (samples, None)
            genes = samples * (sigma * self._scales[slots, None, :])
        else:
            with self._linear_algebra():
                steps = np.matmul(samples, self._root[slots].transpose(0, 2, 1))  # y = A z
            self._asked = (samples, steps)
            genes = steps * sigma
        genes += self._mean[slots, None, :]
        return self._box.mapped(genes.reshape(-1, dimension))

    def tell(self, slots: IntArray, fitness: FloatArray) -> None:
        """Losses (L * popsize,) of the last `ask`, lower is better: the tutorial's update
        of each slot's mean, paths, step size and covariance."""
        assert self._asked is not None, "tell() follows ask()"
        with self._linear_algebra():
            self._update(slots, np.asarray(fitness, dtype=np.float64), *self._asked)

    def _update(
        self, slots: IntArray, fitness: FloatArray, samples: FloatArray, steps: FloatArray | None
    ) -> None:
        """The update from the samples z (L, popsize, D) of the last `ask` and, with a full
        covariance, their steps y = A z."""
        p = self.parameters
        count = len(slots)
        order = np.argsort(fitness.reshape(count, p.popsize), axis=1, kind="stable")
        weights = np.empty((count, p.popsize))  # each sample's weight, by its rank
        weights[np.arange(count)[:, None], order] = p.weights
        positive = np.maximum(weights, 0)[:, None, :]
        whitened = np.matmul(positive, samples)[:, 0]  # A^-1 <y>_w = <z>_w (L, D)
        if steps is None:
            mean_step = whitened * self._scales[slots]  # <y>_w = D <z>_w
        else:
            mean_step = np.matmul(positive, steps)[:, 0]  # <y>_w
        sigma = self._sigma[slots]
        self._mean[slots] += sigma[:, None] * mean_step  # c_m = 1
        path_sigma = (1 - p.cs) * self._path_sigma[slots] + math.sqrt(
            p.cs * (2 - p.cs) * p.mueff
        ) * whitened
        self._path_sigma[slots] = path_sigma
        generation = self._generation[slots] + 1
        self._generation[slots] = generation
        length = np.sqrt(np.sum(path_sigma * path_sigma, axis=1))
        # h_sigma: stall the rank-one path while the step-size path is long (p. 31)
        correction = np.sqrt(1 - (1 - p.cs) ** (2 * generation))
        stalled = length / correction >= (1.4 + 2 / (p.dimension + 1)) * p.chi_n
        path_c = (1 - p.cc) * self._path_c[slots] + np.where(
            stalled, 0.0, math.sqrt(p.cc * (2 - p.cc) * p.mueff)
        )[:, None] * mean_step
        self._path_c[slots] = path_c
        # negative weights act on samples rescaled to length sqrt(D) (eq. 46):
        # ||C^(-1/2) y|| = ||z||
        squares = samples * samples
        lengths = np.sum(squares, axis=2)
        weights = np.where(weights < 0, weights * p.dimension / lengths, weights)
        keep = p.decay + np.where(stalled, p.c1 * p.cc * (2 - p.cc), 0.0)  # + delta(h_sigma) c_1
        if steps is None:
            rank_mu = np.matmul(weights[:, None, :], squares)[:, 0] * self._scales[slots] ** 2
            variances = keep[:, None] * self._variances[slots]
            variances += p.c1 * path_c * path_c + p.cmu * rank_mu
            self._variances[slots] = variances
            self._scales[slots] = np.sqrt(variances)
            largest_variance = variances
        else:
            rank_mu = np.matmul((steps * weights[:, :, None]).transpose(0, 2, 1), steps)
            covariance = keep[:, None, None] * self._covariance[slots]
            covariance += p.c1 * path_c[:, :, None] * path_c[:, None, :] + p.cmu * rank_mu
            self._covariance[slots] = covariance
            largest_variance = np.diagonal(covariance, axis1=1, axis2=2)
            self._root[slots] = _square_roots(covariance)
        sigma = sigma * np.exp(p.cs / p.damps * (length / p.chi_n - 1))
        # no coordinate's standard deviation beyond maxstd (pycma's rule)
        ceiling = np.min(self._maxstd / np.sqrt(largest_variance), axis=1)
        self._sigma[slots] = np.minimum(sigma, ceiling)


def _square_roots(covariances: FloatArray) -> FloatArray:
    """A square root A (A A^T = C) of each covariance C (L, D, D): its lower Cholesky
    factor, or, where rounding has left C not positive definite, B D from its
    eigendecomposition with the eigenvalues floored at 1e-20 of the largest."""
    try:
        roots: FloatArray = np.linalg.cholesky(covariances)
        return roots
    except np.linalg.LinAlgError:
        roots = np.empty_like(covariances)
        for row, covariance in enumerate(covariances):
            try:
                roots[row] = np.linalg.cholesky(covariance)
            except np.linalg.LinAlgError:
                values, basis = np.linalg.eigh((covariance + covariance.T) / 2)
                floor = 1e-20 * values.max()
                roots[row] = basis * np.sqrt(np.maximum(values, floor))
        return roots


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread inside the block (threadpoolctl's own ``limit`` looks every
    library up again each time: ~25 us, twice a generation)."""
    libraries = _blas()
    before = [library.num_threads for library in libraries]
    for library in libraries:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, threads in zip(libraries, before, strict=True):
            library.set_num_threads(threads)


@functools.cache
def _blas() -> list[Any]:
    """The BLAS libraries loaded in this process (looked up once: a lookup costs ms)."""
    return list(ThreadpoolController().select(user_api="blas").lib_controllers)
