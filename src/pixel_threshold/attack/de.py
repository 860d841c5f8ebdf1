"""Differential evolution, DE/best/1/bin with CR = 1, as an ask/tell optimizer.

The variant of Storn & Price (1997) used by the one-pixel attack (Su et al. 2017)
and by Kotyan & Vargas (arXiv 1906.06026): a Latin-hypercube start, mutation
``trial_i = best + F * (x_r1 - x_r2)`` with ``r1 != r2 != i``, the dither
``F ~ U[0.5, 1)`` drawn once per generation, crossover rate 1 (every gene comes
from the mutant), and one-to-one greedy selection. The optimizer never sees the
model: `ask` returns a population, `tell` takes its objective values.
"""

from __future__ import annotations

import numpy as np

from pixel_threshold.attack.types import FloatArray

MIN_POPSIZE = 3
"""best/1 needs the member and two distinct others."""


def latin_hypercube(
    lower: FloatArray, upper: FloatArray, count: int, rng: np.random.Generator
) -> FloatArray:
    """``count`` points, shape (count, D), one per stratum of each dimension's range."""
    dimension = len(lower)
    strata = np.arange(count, dtype=np.float32)
    points = rng.random((count, dimension), dtype=np.float32)  # float32, in place: D may be 150k
    points += rng.permuted(np.broadcast_to(strata, (dimension, count)), axis=1).T
    points *= (upper - lower) / count
    points += lower
    # float32 rounding can land a point on the excluded upper bound: keep it inside
    np.minimum(points, np.nextafter(upper.astype(np.float32), np.float32(-np.inf)), out=points)
    return points


class DifferentialEvolution:
    """DE/best/1/bin (CR = 1) over the box ``[lower, upper)``.

    Out-of-box genes of a trial vector are redrawn uniformly inside the box, which
    keeps the search free of the pile-up at the bounds that clipping causes. The
    population is float32: 400 members of a 224x224x3 threshold candidate take 240 MB.
    """

    def __init__(
        self,
        lower: FloatArray,
        upper: FloatArray,
        *,
        popsize: int,
        rng: np.random.Generator,
    ) -> None:
        if popsize < MIN_POPSIZE:
            raise ValueError(
                f"expected popsize >= {MIN_POPSIZE} for differential evolution, "
                f"got popsize={popsize}"
            )
        self._lower = np.asarray(lower, dtype=np.float32)
        self._upper = np.asarray(upper, dtype=np.float32)
        self._span = self._upper - self._lower
        self._rng = rng
        self._population: FloatArray | None = None
        self._fitness: FloatArray | None = None
        self._trial = latin_hypercube(self._lower, self._upper, popsize, rng)

    def ask(self) -> FloatArray:
        """The candidates to evaluate next, shape (popsize, D)."""
        return self._trial

    def tell(self, fitness: FloatArray) -> None:
        """Objective values (popsize,) of the last `ask`, lower is better."""
        fitness = np.asarray(fitness, dtype=np.float64)
        if self._population is None or self._fitness is None:
            self._population, self._fitness = self._trial, fitness
        else:
            improved = fitness <= self._fitness  # ties move: drift across plateaus
            self._population[improved] = self._trial[improved]
            self._fitness[improved] = fitness[improved]
        self._trial = self._mutate(self._population, self._fitness)

    @property
    def best(self) -> tuple[FloatArray, float]:
        """The best member so far and its objective value."""
        if self._population is None or self._fitness is None:
            raise RuntimeError("tell() has not been called yet")
        index = int(np.argmin(self._fitness))
        return self._population[index], float(self._fitness[index])

    def _mutate(self, population: FloatArray, fitness: FloatArray) -> FloatArray:
        count = len(population)
        rng = self._rng
        member = np.arange(count)
        # r1 uniform over members != i; r2 uniform over members != i, r1 (skip both, in order).
        r1 = rng.integers(0, count - 1, count)
        r1 += r1 >= member
        low, high = np.minimum(member, r1), np.maximum(member, r1)
        r2 = rng.integers(0, count - 2, count)
        r2 += r2 >= low
        r2 += r2 >= high
        scale = rng.uniform(0.5, 1.0)
        trial: FloatArray = population[r1]  # best + scale * (x_r1 - x_r2), in place
        trial -= population[r2]
        trial *= scale
        trial += population[np.argmin(fitness)]
        outside = trial < self._lower
        outside |= trial >= self._upper
        at = np.flatnonzero(outside)  # in row-major order, one draw each
        if len(at):
            genes = at % trial.shape[1]
            redrawn = rng.random(len(at), dtype=np.float32)
            redrawn *= self._span[genes]
            redrawn += self._lower[genes]
            trial.reshape(-1)[at] = redrawn
        return trial
