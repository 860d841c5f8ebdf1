"""The model's side of the search: the candidates of any number of searches scored
together, in calls of at most ``batch_size`` rows.

A search hands over `Candidates`: how many rows it wants scored and how to write any
run of them into a buffer. `ModelCalls.score` writes every search's rows, one after
another, into one reusable float32 buffer of ``batch_size`` rows, calls the model each
time the buffer is full (and once for the rest), and hands each search the outputs of
its own rows. So searches that each want a few rows a step (the levels of ``th=-1``,
the last images of a run) fill the model's batches together, and memory is bounded by
the batch, not by the number of searches or candidates.

A model's output for a row may depend, in its last bits, on the rows beside it and
the batch's shape (a BLAS blocks a product by its size; a GPU picks kernels by it).
Nothing that decides a result rests on that: a search's candidates are only ranked
from shared calls, and the rows that settle a result (a claimed success, each step of
a tightening) are `Candidates.alone`, scored in calls of one row, as ``evaluate`` at
``batch_size`` 1 scores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.changes import ChangedRows, DecodesChanges, joined
from pixel_threshold.attack.types import FloatArray, Predict


class Candidates(Protocol):
    """Rows one search wants scored; rows it wants ``alone`` are scored each in a call
    of its own."""

    @property
    def count(self) -> int: ...

    @property
    def alone(self) -> bool: ...

    def decode_into(self, out: npt.NDArray[np.float32], start: int, stop: int) -> None:
        """Write rows ``start:stop`` into ``out`` (stop - start, H, W, C)."""

    def changed(self, start: int, stop: int) -> ChangedRows | None:
        """Rows ``start:stop`` as changes to their originals, for a model that decodes
        them where it runs; None if they can only be written as pixels."""


Run = tuple[int, Candidates, int, int]
"""Rows ``start:stop`` of a request, and the request's place in its call's list."""


class ModelCalls:
    """A classifier called in batches of at most ``batch_size`` rows, its outputs checked.

    Candidates are decoded on the host into one reusable buffer, or, where the
    classifier decodes them itself (`changes.DecodesChanges`: a model on a GPU), handed
    over as changes to their originals, which its decoder keeps on its device for the
    calls of this `ModelCalls` (one attack)."""

    def __init__(self, classifier: Predict, batch_size: int) -> None:
        self.classifier = classifier
        """The compiled forward pass the caller hands over (never Keras' ``predict``)."""
        self.batch_size = batch_size
        self._buffer = np.empty(0, dtype=np.float32)
        self._decoding = classifier.decoding() if isinstance(classifier, DecodesChanges) else None

    def scores(self, images: npt.NDArray[np.float32]) -> FloatArray:
        """Outputs (M, K) for images (M, H, W, C), in calls of at most ``batch_size``."""
        parts = [
            self._called(images[start : start + self.batch_size])
            for start in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, 0))

    def score(self, requests: Sequence[Candidates], shape: tuple[int, ...]) -> list[FloatArray]:
        """Outputs (count, K) of each request's rows, in order; images of ``shape``."""
        if self._buffer.shape[1:] != shape:
            self._buffer = np.empty((self.batch_size, *shape), dtype=np.float32)
        pieces: list[list[FloatArray]] = [[] for _ in requests]
        runs: list[Run] = []  # the rows of the next call
        filled = 0
        for owner, request in enumerate(requests):
            if request.alone:
                for row in range(request.count):
                    self._call([(owner, request, row, row + 1)], pieces)
                continue
            start = 0
            while start < request.count:
                rows = min(self.batch_size - filled, request.count - start)
                runs.append((owner, request, start, start + rows))
                filled += rows
                start += rows
                if filled == self.batch_size:
                    self._call(runs, pieces)
                    runs, filled = [], 0
        if runs:
            self._call(runs, pieces)
        return [_joined(parts) for parts in pieces]

    def _call(self, runs: list[Run], pieces: list[list[FloatArray]]) -> None:
        """Score ``runs`` in one model call; each run's outputs go to its request's
        ``pieces``."""
        outputs = self._outputs(runs)
        start = 0
        for owner, _, first, stop in runs:
            pieces[owner].append(outputs[start : start + stop - first])
            start += stop - first

    def _outputs(self, runs: list[Run]) -> FloatArray:
        if self._decoding is not None:
            changed = [request.changed(start, stop) for _, request, start, stop in runs]
            if all(part is not None for part in changed):
                rows = joined([part for part in changed if part is not None])
                return self._checked(np.array(self._decoding(rows)), len(rows))
        filled = 0
        for _, request, start, stop in runs:
            request.decode_into(self._buffer[filled : filled + stop - start], start, stop)
            filled += stop - start
        return self._called(self._buffer[:filled])

    def _called(self, images: npt.NDArray[np.float32]) -> FloatArray:
        # a copy: a model may reuse its output
        return self._checked(np.array(self.classifier(images)), len(images))

    @staticmethod
    def _checked(scores: FloatArray, rows: int) -> FloatArray:
        if scores.ndim != 2 or len(scores) != rows:
            raise ValueError(
                f"expected the model to return ({rows}, classes) scores, got shape {scores.shape}"
            )
        if not np.isfinite(scores).all():
            raise ValueError("the model returned non-finite scores (NaN or inf)")
        return scores


def _joined(parts: list[FloatArray]) -> FloatArray:
    """The outputs of one request's calls, in order, as one array."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty((0, 0))
