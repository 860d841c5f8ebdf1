"""Searches that share model calls get their own rows' outputs, in batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from pixel_threshold.attack import ImageResult
from pixel_threshold.attack.shared_calls import Search, run_sharing_calls
from pixel_threshold.attack.types import Predict

from .conftest import LinearSoftmax


def fake_result(index: int, value: float) -> ImageResult:
    image = np.zeros((2, 2, 1), dtype=np.uint8)
    return ImageResult(index, 0, image, True, False, 0, 0, value, value, 0, 0, 0, 0.0, 0.0)


def asking(index: int, sizes: list[int], seen: dict[int, list[float]]) -> Search:
    """A search that calls the model with ``sizes`` rows in turn and keeps what it got."""
    rng = np.random.default_rng(index)

    def search(predict: Predict) -> Iterator[ImageResult]:
        for size in sizes:
            rows = rng.integers(0, 256, (size, 4, 4, 1)).astype(np.float32)
            seen.setdefault(index, []).extend(
                (np.asarray(predict(rows)) - MODEL(rows)).ravel().tolist()
            )
        yield fake_result(index, float(len(sizes)))

    return search


MODEL = LinearSoftmax((4, 4, 1), 3)


def test_each_search_gets_its_own_rows_outputs_from_shared_calls() -> None:
    seen: dict[int, list[float]] = {}
    sizes = {0: [3, 1, 5], 1: [7, 7], 2: [1] * 6, 3: [2]}
    searches = [asking(index, steps, seen) for index, steps in sizes.items()]
    model = LinearSoftmax((4, 4, 1), 3)
    results = list(run_sharing_calls(searches, model, batch_size=6))
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    assert all(value == 0.0 for values in seen.values() for value in values)
    assert {index: len(values) for index, values in seen.items()} == {
        index: 3 * sum(steps) for index, steps in sizes.items()
    }
    assert max(model.calls) <= 6 and sum(model.calls) == sum(map(sum, sizes.values()))
    assert len(model.calls) < sum(len(steps) for steps in sizes.values())  # shared


def test_an_error_in_one_search_is_raised_after_the_others_finish() -> None:
    seen: dict[int, list[float]] = {}

    def failing(predict: Predict) -> Iterator[ImageResult]:
        predict(np.zeros((1, 4, 4, 1), dtype=np.float32))
        raise ValueError("expected th >= 1, got th=0")
        yield  # pragma: no cover - a generator

    searches = [asking(0, [2, 2, 2], seen), failing]
    results: list[ImageResult] = []
    with pytest.raises(ValueError, match="th=0"):
        results.extend(run_sharing_calls(searches, MODEL, batch_size=8))
    assert [r.index for r in results] == [0] and len(seen[0]) == 18
