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
    population is float32: 400 members of a 224x224x3 threshold candidate take 240 MB,
    and an image in flight holds three such arrays (members, trials, scratch). Each
    generation's trials are written into the arrays of the last (`ask`'s array is
    overwritten by the next `tell`): a fresh array that large costs its page faults,
    about as much as the arithmetic on it.
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
        uniform = bool(
            np.all(self._lower == self._lower[0]) and np.all(self._span == self._span[0])
        )
        self._box = (self._lower[0], self._upper[0], self._span[0]) if uniform else None
        """The bounds and width every gene shares (the Threshold attack's), as numbers."""
        self._rng = rng
        self._population: FloatArray | None = None
        self._fitness: FloatArray | None = None
        self._trial = latin_hypercube(self._lower, self._upper, popsize, rng)
        self._parents = np.empty(0, dtype=np.float32)
        """Each trial's second parent, gathered: scratch kept from one generation to the next."""

    def ask(self) -> FloatArray:
        """The candidates to evaluate next, shape (popsize, D); the next `tell` overwrites
        them."""
        return self._trial

    def tell(self, fitness: FloatArray) -> None:
        """Objective values (popsize,) of the last `ask`, lower is better."""
        fitness = np.asarray(fitness, dtype=np.float64)
        if self._population is None or self._fitness is None:
            self._population, self._fitness = self._trial, fitness
            self._trial = np.empty_like(self._population)
            self._parents = np.empty_like(self._population)
        else:
            improved = fitness <= self._fitness  # ties move: drift across plateaus
            self._population[improved] = self._trial[improved]
            self._fitness[improved] = fitness[improved]
        self._mutate(self._population, self._fitness)

    @property
    def best(self) -> tuple[FloatArray, float]:
        """The best member so far and its objective value."""
        if self._population is None or self._fitness is None:
            raise RuntimeError("tell() has not been called yet")
        index = int(np.argmin(self._fitness))
        return self._population[index], float(self._fitness[index])

    def _mutate(self, population: FloatArray, fitness: FloatArray) -> None:
        """The next trials, into ``self._trial``."""
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
        trial = self._trial  # best + scale * (x_r1 - x_r2), in place
        np.take(population, r1, axis=0, out=trial)
        trial -= np.take(population, r2, axis=0, out=self._parents)
        trial *= scale
        trial += population[np.argmin(fitness)]
        lower, upper, span = self._box or (self._lower, self._upper, self._span)
        outside = trial < lower
        outside |= trial >= upper
        at = np.flatnonzero(outside)  # in row-major order, one draw each
        if len(at):
            redrawn = rng.random(len(at), dtype=np.float32)
            if self._box is None:
                genes = at % trial.shape[1]
                lower, span = self._lower[genes], self._span[genes]
            redrawn *= span
            redrawn += lower
            trial.reshape(-1)[at] = redrawn
