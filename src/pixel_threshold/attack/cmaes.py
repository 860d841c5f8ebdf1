"""CMA-ES (Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv 1604.00772) through
pycma's ask/tell interface, one strategy object per image.

pycma samples in an unbounded space; we map the samples into the box with the
same transformation as pycma's ``bounds`` option, vectorised over the population
(pycma's own applies it solution by solution, a Python loop per generation), and tell
pycma the unbounded samples with the objective of their images.

pycma's own stopping rules are switched off: on a confident model every
candidate of a generation can score the same float32 probability, and the
defaults (``tolfun``, ``tolflatfitness``) then end the search after one
generation, as they do in ART. The caller's generation budget is the only stop.

pycma's linear algebra (an eigendecomposition of the D x D covariance, D <= 256) runs
on one BLAS thread: at these sizes OpenBLAS's second thread never helps, and on a
machine whose cores TensorFlow or other work keep busy it waits for a core
(docs/benchmarks.md, "Why the core is as it is").
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cma
import numpy as np
from threadpoolctl import ThreadpoolController

from pixel_threshold.attack.types import FloatArray

MIN_POPSIZE = 3
"""pycma's smallest population: its tell refuses fewer than 3 solutions."""
FULL_COVARIANCE_MAX_DIMENSION = 256
"""Above this many genes, use separable (diagonal) CMA-ES: linear time and memory."""

_NEVER_STOP: dict[str, Any] = {
    "tolfun": 0,
    "tolfunhist": 0,
    "tolfunrel": 0,
    "tolflatfitness": math.inf,
    "tolx": 0,
    "tolstagnation": math.inf,
    "tolfacupx": math.inf,
    "tolupsigma": math.inf,
    "tolconditioncov": math.inf,
    "maxiter": math.inf,
    "maxfevals": math.inf,
}


def default_popsize(dimension: int) -> int:
    """pycma's default population size, ``4 + floor(3 ln D)`` (ART's CMA-ES budget)."""
    return 4 + int(3 * math.log(dimension))


def into_box(points: FloatArray, lower: FloatArray, upper: FloatArray) -> FloatArray:
    """Map ``points`` (M, D) into ``[lower, upper]``, in place.

    Hansen's linear-quadratic box transformation (the one pycma's ``bounds`` option
    applies solution by solution, here on the whole population at once): the
    identity inside, a parabola that meets each bound with zero slope over a margin
    ``a = min(width / 2, max(1, |bound|) / 20)``, mirrored periodically outside
    ``[lower - a_low, upper + a_high]``. The flat approach to each bound keeps values
    at and near it (black and white pixels, the largest deltas) easy to reach.
    """
    width = upper - lower
    margin_low = np.minimum(width / 2, np.maximum(1, np.abs(lower)) / 20)
    margin_high = np.minimum(width / 2, np.maximum(1, np.abs(upper)) / 20)
    start = lower - margin_low
    span = upper + margin_high - start
    points -= start  # fold into [start, start + span] by mirroring
    np.mod(points, 2 * span, out=points)
    np.subtract(2 * span, points, out=points, where=points > span)
    points += start
    for bound, margin, edge, below in (
        (lower, margin_low, start, True),
        (upper, margin_high, upper + margin_high, False),
    ):
        near = points < bound + margin if below else points > bound - margin
        if near.any():
            rows, cols = np.nonzero(near)
            offset = (points[rows, cols] - edge[cols]) ** 2 / (4 * margin[cols])
            points[rows, cols] = bound[cols] + offset if below else bound[cols] - offset
    return points


def _scalar_if_uniform(values: FloatArray) -> float | FloatArray:
    return float(values[0]) if np.all(values == values[0]) else values


class CMAES:
    """pycma's CMA-ES in a box (see `into_box`), drawing its samples from ``rng``."""

    def __init__(
        self,
        x0: FloatArray,
        sigma0: float,
        lower: FloatArray,
        upper: FloatArray,
        *,
        popsize: int,
        rng: np.random.Generator,
    ) -> None:
        if popsize < MIN_POPSIZE:
            raise ValueError(f"expected popsize >= {MIN_POPSIZE} for CMA-ES, got popsize={popsize}")
        self._lower = np.asarray(lower, dtype=np.float64)
        # the box is half-open; map just inside the upper bound
        self._upper = np.nextafter(np.asarray(upper, dtype=np.float64), -np.inf)
        options: dict[str, Any] = {
            **_NEVER_STOP,
            "popsize": popsize,
            "randn": lambda count, dimension: rng.standard_normal((count, dimension)),
            "seed": math.nan,  # pycma must not touch numpy's global RNG
            "CMA_diagonal": len(x0) > FULL_COVARIANCE_MAX_DIMENSION,
            # as pycma does when given bounds: no coordinate's std beyond a third of
            # its range, or a flat objective inflates sigma into blind random search
            # (a scalar when every range is equal: pycma loops over a vector per tell)
            "maxstd": _scalar_if_uniform((self._upper - self._lower) / 3),
            "CMA_mirrors": 0,
            "verbose": -9,
            "verb_disp": 0,
            "verb_log": 0,
        }
        self._strategy = cma.CMAEvolutionStrategy(np.asarray(x0, dtype=np.float64), sigma0, options)
        self._samples: list[FloatArray] = []

    def ask(self) -> FloatArray:
        """The candidates to evaluate next, shape (popsize, D), inside the box."""
        with _blas().limit(limits=1, user_api="blas"):
            self._samples = self._strategy.ask()
        return into_box(np.array(self._samples), self._lower, self._upper)

    def tell(self, fitness: FloatArray) -> None:
        """Objective values (popsize,) of the last `ask`, lower is better."""
        with _blas().limit(limits=1, user_api="blas"):
            self._strategy.tell(self._samples, np.asarray(fitness, dtype=np.float64).tolist())


@functools.cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (looked up once: a lookup costs ms)."""
    return ThreadpoolController()
