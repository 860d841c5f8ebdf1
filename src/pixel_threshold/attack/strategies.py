"""The search strategies (``es``) behind one batched ask/tell interface.

A strategy holds the search state of up to ``capacity`` images at once, each in a
slot. `start` opens a slot for a new image with the image's own generator; `ask`
returns the genes of ``popsize`` candidates per given slot (slot by slot); `tell`
takes their losses. DE and CMA-ES keep one optimizer object per image; the random
search keeps arrays over slots, so a step costs the same whatever the images in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from pixel_threshold.attack.cmaes import CMAES
from pixel_threshold.attack.config import AttackConfig
from pixel_threshold.attack.de import DifferentialEvolution
from pixel_threshold.attack.encodings import Encoding, PixelEncoding
from pixel_threshold.attack.random_search import SparseRandomSearch, SquareRandomSearch
from pixel_threshold.attack.types import FloatArray, IntArray


class Strategy(Protocol):
    def start(self, slot: int, image: FloatArray, rng: np.random.Generator) -> None: ...

    def ask(self, slots: IntArray) -> FloatArray: ...

    def tell(self, slots: IntArray, fitness: FloatArray) -> None: ...


Optimizer = DifferentialEvolution | CMAES


class PerImage:
    """One DE or CMA-ES optimizer per slot, made by ``make(image, rng)``."""

    def __init__(
        self, capacity: int, make: Callable[[FloatArray, np.random.Generator], Optimizer]
    ) -> None:
        self._make = make
        self._optimizers: list[Optimizer | None] = [None] * capacity

    def start(self, slot: int, image: FloatArray, rng: np.random.Generator) -> None:
        self._optimizers[slot] = self._make(image, rng)

    def ask(self, slots: IntArray) -> FloatArray:
        return np.concatenate([self._optimizer(slot).ask() for slot in slots])

    def tell(self, slots: IntArray, fitness: FloatArray) -> None:
        for slot, values in zip(slots, np.split(fitness, len(slots)), strict=True):
            self._optimizer(slot).tell(values)

    def _optimizer(self, slot: int) -> Optimizer:
        optimizer = self._optimizers[slot]
        assert optimizer is not None, "a slot is asked only after start()"
        return optimizer


def make_strategy(config: AttackConfig, encoding: Encoding, capacity: int) -> Strategy:
    """The strategy ``config.es`` names (0 CMA-ES, 1 DE, 2 random search) for
    ``capacity`` images in flight."""
    if config.es == 2:
        search = SparseRandomSearch if isinstance(encoding, PixelEncoding) else SquareRandomSearch
        return search(
            encoding.th,
            encoding.shape,
            capacity=capacity,
            popsize=config.popsize,
            max_iter=config.max_iter,
        )
    if config.es == 1:
        return PerImage(
            capacity,
            lambda image, rng: DifferentialEvolution(
                encoding.lower, encoding.upper, popsize=config.popsize, rng=rng
            ),
        )
    return PerImage(
        capacity,
        lambda image, rng: CMAES(
            encoding.initial_guess(image),
            encoding.sigma0,
            encoding.lower,
            encoding.upper,
            popsize=config.popsize,
            rng=rng,
        ),
    )
