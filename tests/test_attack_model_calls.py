"""Searches that share model calls each get their own rows' outputs, in full batches."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Sample
from pixel_threshold.attack.model_calls import ModelCalls

from .conftest import LinearSoftmax

SHAPE = (4, 4, 1)


class Rows:
    """A request for ``count`` random rows, kept to check what came back; ``alone``:
    each to be scored in a call of its own."""

    def __init__(self, count: int, seed: int, *, alone: bool = False) -> None:
        self.rows = np.random.default_rng(seed).integers(0, 256, (count, *SHAPE))
        self.rows = self.rows.astype(np.float32)
        self.alone = alone

    @property
    def count(self) -> int:
        return len(self.rows)

    def decode_into(self, out: npt.NDArray[np.float32], start: int, stop: int) -> None:
        out[:] = self.rows[start:stop]


@pytest.mark.parametrize("batch_size", [1, 4, 6, 100])
def test_each_request_gets_the_outputs_of_its_own_rows(batch_size: int) -> None:
    model = LinearSoftmax(SHAPE, 3)
    requests = [Rows(count, seed) for seed, count in enumerate([3, 0, 7, 1, 5])]
    outputs = ModelCalls(model, batch_size).score(requests, SHAPE)
    for request, probs in zip(requests, outputs, strict=True):
        assert len(probs) == request.count
        if request.count:
            assert np.array_equal(probs, LinearSoftmax(SHAPE, 3)(request.rows))
    total = sum(request.count for request in requests)
    assert max(model.calls) <= batch_size and sum(model.calls) == total
    assert len(model.calls) == -(-total // batch_size)  # every call but the last is full


@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_rows_wanted_alone_are_each_scored_in_a_call_of_their_own(batch_size: int) -> None:
    model = LinearSoftmax(SHAPE, 3)
    requests = [Rows(5, 0), Rows(3, 1, alone=True), Rows(6, 2), Rows(0, 3, alone=True)]
    outputs = ModelCalls(model, batch_size).score(requests, SHAPE)
    for request, probs in zip(requests, outputs, strict=True):
        assert len(probs) == request.count
        if request.count:
            assert np.array_equal(probs, LinearSoftmax(SHAPE, 3)(request.rows))
    shared = -(-11 // batch_size)  # the 11 shared rows fill calls as before
    assert len(model.calls) == shared + 3 and model.calls.count(1) >= 3
    assert sum(model.calls) == 14


def test_no_rows_no_call() -> None:
    model = LinearSoftmax(SHAPE, 3)
    assert [len(probs) for probs in ModelCalls(model, 8).score([Rows(0, 0)], SHAPE)] == [0]
    assert model.calls == []


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (lambda x: np.zeros((len(x) + 1, 3)), r"expected the model to return \(2, classes\)"),
        (lambda x: np.full((len(x), 3), np.nan), "non-finite"),
    ],
)
def test_bad_model_outputs_are_an_error(outputs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelCalls(outputs, 8).score([Rows(2, 0)], SHAPE)


def test_the_levels_of_smallest_th_fill_the_model_s_batches_together() -> None:
    """Random search, one query per image a step, 40 images each walking its own levels:
    every step's rows of every level and of the tightening go out in one call."""
    model = LinearSoftmax((6, 6, 3), 4, seed=2)
    images = np.random.default_rng(3).integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)
    samples = [
        Sample(i, image, int(label))
        for i, (image, label) in enumerate(zip(images, model.labels(images), strict=True))
    ]
    model.calls.clear()
    config = AttackConfig(th=-1, th_max=8, es=2, max_iter=30, popsize=1, batch_size=64)
    results = list(PixelThresholdAttack(config).run(samples, model))
    assert len(results) == 40 and sum(r.success for r in results) > 20
    queries = sum(r.queries for r in results)
    assert sum(model.calls) == queries + 40  # and each image classified once
    longest_walk = max(r.queries for r in results)
    shared = [rows for rows in model.calls if rows > 1]  # claims and tightenings go alone
    assert len(shared) <= longest_walk + 1  # one call a step, whatever the levels
