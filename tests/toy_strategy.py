"""A toy strategy, as a new strategy's module would be: uniform random genes in the
encoding's box, drawn afresh every step. `tests/test_new_strategy.py` adds its record
to the registry and runs it through the attack step."""

from __future__ import annotations

import numpy as np

from pixel_threshold.attack import StrategyRecord
from pixel_threshold.attack.encodings import Encoding
from pixel_threshold.attack.types import FloatArray, IntArray


class UniformSampling:
    """``popsize`` uniform candidates a step for every image in flight; it learns nothing
    from the losses."""

    def __init__(self, lower: FloatArray, upper: FloatArray, *, capacity: int, popsize: int):
        self._lower, self._upper = lower, upper
        self._popsize = popsize
        self._rngs: list[np.random.Generator | None] = [None] * capacity

    def start(
        self,
        slot: int,
        image: FloatArray,
        rng: np.random.Generator,
        *,
        near: FloatArray | None = None,
    ) -> None:
        self._rngs[slot] = rng

    def ask(self, slots: IntArray) -> FloatArray:
        shape = (self._popsize, len(self._lower))
        return np.concatenate(
            [self._rng(slot).uniform(self._lower, self._upper, shape) for slot in slots]
        )

    def tell(self, slots: IntArray, fitness: FloatArray) -> None:
        pass

    def _rng(self, slot: int) -> np.random.Generator:
        rng = self._rngs[slot]
        assert rng is not None, "a slot is asked only after start()"
        return rng


def build(encoding: Encoding, *, capacity: int, popsize: int, max_iter: int) -> UniformSampling:
    return UniformSampling(encoding.lower, encoding.upper, capacity=capacity, popsize=popsize)


RECORD = StrategyRecord(
    es=3,
    name="uniform sampling",
    label="uniform sampling",
    max_iter=20,
    popsize=10,
    min_popsize=1,
    build=build,
    paper="none: a test's toy",
)
