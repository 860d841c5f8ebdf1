"""The contract of a search strategy (``es``): batched ask/tell over images in slots.

`Strategy` is what the batched search (`level_search`) drives; `PerImage` makes one out
of any per-image ask/tell optimizer (DE; CMA-ES and the random search are batched over
the slots themselves). The registry of strategies, one record each, is `strategies`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from pixel_threshold.attack.types import FloatArray, IntArray


class Strategy(Protocol):
    """The search state of up to ``capacity`` images at once, one slot each, advanced by
    ask and tell. Every strategy keeps these promises, on which the run's guarantees
    rest (exact budgets, seeding, the same results whatever the batch or the shard):

    - `ask` gives exactly ``popsize`` rows of genes (D,) for each slot asked, slot by
      slot, and `tell` takes the losses of those rows in the same order; the search
      (`level_search`) counts one query a row and stops an image after ``max_iter``
      steps, so no image spends more than ``max_iter * popsize`` queries;
    - genes may be any real numbers: the encoding decodes them to integer pixels within
      the budget (L0 <= th pixels, or L-infinity <= th), so no strategy can exceed it;
    - every random number a slot uses comes from the generator `start` handed it, drawn
      in an order that depends on that slot's own asks and tells only: an image's search
      does not depend on the other images in flight, the batch size or the shard;
    - it never sees the model, the global RNG or a file.
    """

    def start(
        self,
        slot: int,
        image: FloatArray,
        rng: np.random.Generator,
        *,
        near: FloatArray | None = None,
    ) -> None:
        """Open ``slot`` for a new image (H, W, C), float32 pixels in 0-255, whose random
        numbers all come from ``rng``; whatever the slot held before is forgotten.
        ``near`` (H, W, C), when given, is an image that fooled the model at a larger
        th (a ``th=-1`` walk's last): a strategy may start from it, drawing from ``rng``
        exactly as without it."""

    def ask(self, slots: IntArray) -> FloatArray:
        """Genes (len(slots) * popsize, D) of the next step of each of ``slots`` (L,),
        slot by slot, ``popsize`` rows each."""

    def tell(self, slots: IntArray, fitness: FloatArray) -> None:
        """Losses (len(slots) * popsize,) of the rows of the last `ask` for the same
        ``slots``, in its order; lower is better, below zero (margin) means fooled."""


class Optimizer(Protocol):
    """One image's ask/tell optimizer over a box of genes (`de.DifferentialEvolution`)."""

    def ask(self) -> FloatArray:
        """The candidates to evaluate next, (popsize, D)."""

    def tell(self, fitness: FloatArray) -> None:
        """Objective values (popsize,) of the last `ask`, lower is better."""


class PerImage:
    """A `Strategy` of one optimizer per slot, made by ``make(image, rng)``."""

    def __init__(
        self, capacity: int, make: Callable[[FloatArray, np.random.Generator], Optimizer]
    ) -> None:
        self._make = make
        self._optimizers: list[Optimizer | None] = [None] * capacity

    def start(
        self,
        slot: int,
        image: FloatArray,
        rng: np.random.Generator,
        *,
        near: FloatArray | None = None,
    ) -> None:
        """Open ``slot``: a fresh optimizer (``near`` is not used)."""
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
