"""Several searches, one model: their model calls merged into shared batches.

Each search runs in its own thread and calls a stand-in for the model that hands its
rows to the caller's thread and waits. Once every running search is waiting, the
caller's thread scores all their rows together, in calls of at most ``batch_size``
rows, and wakes them with their own outputs. So searches that each send a few rows a
step (the random search at a level of ``th=-1`` with few images) fill the model's
batches together. Only the caller's thread calls the model, and a row's output does not
depend on the rows beside it, so the results are those of running the searches one
after another.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.results import ImageResult
from pixel_threshold.attack.types import FloatArray, Predict

Search = Callable[[Predict], Iterator[ImageResult]]
"""A search to run against the model it is handed."""


@dataclass
class _Request:
    rows: npt.NDArray[np.float32]
    outputs: FloatArray | None = None


class _Done:
    """A search's last word: it finished, or raised ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def run_sharing_calls(
    searches: Sequence[Search], predict: Predict, batch_size: int
) -> Iterator[ImageResult]:
    """Run ``searches`` together, their model calls merged; yield their results as they
    come. An error in a search is raised here once every other search has stopped
    waiting for the model or finished."""
    if len(searches) == 1:
        yield from searches[0](predict)
        return
    changed = threading.Condition()
    waiting: list[_Request] = []
    results: queue.SimpleQueue[ImageResult | _Done] = queue.SimpleQueue()

    def stand_in(rows: npt.NDArray[np.float32]) -> FloatArray:
        request = _Request(rows)
        with changed:
            waiting.append(request)
            changed.notify_all()
            while request.outputs is None:
                changed.wait()
        return request.outputs

    def work(search: Search) -> None:
        done = _Done()
        try:
            for result in search(stand_in):
                results.put(result)
        except BaseException as error:  # handed to the caller's thread
            done = _Done(error)
        with changed:
            results.put(done)
            changed.notify_all()

    for search in searches:
        threading.Thread(target=work, args=(search,), daemon=True).start()
    running, error = len(searches), None
    while running:
        with changed:
            while len(waiting) < running and results.empty():
                changed.wait()
        while not results.empty():
            item = results.get()
            if isinstance(item, _Done):
                running -= 1
                error = error or item.error
            else:
                yield item
        with changed:
            batch = waiting[:] if running and len(waiting) == running else []
            if batch:
                waiting.clear()
        if batch:
            _score(batch, predict, batch_size)
            with changed:
                changed.notify_all()
    if error is not None:
        raise error


def _score(batch: list[_Request], predict: Predict, batch_size: int) -> None:
    """Set each request's outputs (in order) from model calls of at most ``batch_size``
    rows, each built from the requests' rows in turn."""
    pieces: list[list[FloatArray]] = [[] for _ in batch]
    call: list[tuple[int, npt.NDArray[np.float32]]] = []
    size = 0
    for owner, request in enumerate(batch):
        rows = request.rows
        while len(rows):
            taken = rows[: batch_size - size]
            call.append((owner, taken))
            size += len(taken)
            rows = rows[len(taken) :]
            if size == batch_size:
                _call(call, predict, pieces)
                call, size = [], 0
    if call:
        _call(call, predict, pieces)
    for request, parts in zip(batch, pieces, strict=True):
        request.outputs = np.concatenate(parts)


def _call(
    call: list[tuple[int, npt.NDArray[np.float32]]],
    predict: Predict,
    pieces: list[list[FloatArray]],
) -> None:
    """One model call on the rows of ``call`` (owner, rows); each owner's outputs are
    appended to its ``pieces``."""
    outputs = np.asarray(predict(np.concatenate([rows for _, rows in call])))
    start = 0
    for owner, rows in call:
        pieces[owner].append(outputs[start : start + len(rows)])
        start += len(rows)
