"""What every benchmark times, with no TensorFlow: our attack, the forward pass alone.

``predict`` is any callable from float32 (B, H, W, C) pixels to (B, K) probabilities
(a ``CompiledClassifier`` here, a JAX-compiled Keras model on a GPU machine).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Predict, Sample, encodings

Row = dict[str, Any]


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``work``."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def trace_padded_shapes(
    predict: Predict, shape: Sequence[int], batch_size: int, *, smallest: int = 1
) -> None:
    """Call ``predict`` once at every padded batch shape (powers of two from ``smallest``,
    and ``batch_size``) on (H, W, C) = ``shape`` zeros, so that no timing includes tracing."""
    rows = smallest
    while rows < 2 * batch_size:
        predict(np.zeros((min(rows, batch_size), *shape), dtype=np.float32))
        rows *= 2


def samples_of(images: npt.NDArray[np.uint8], labels: npt.NDArray[Any]) -> list[Sample]:
    """The core's samples of ``images`` (N, H, W, C) with true ``labels`` (N,), indexed
    in order."""
    return [
        Sample(index, image, int(label))
        for index, (image, label) in enumerate(zip(images, labels, strict=True))
    ]


def run_ours(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    config: AttackConfig,
    predict: Predict,
) -> Row:
    """Our attack on ``images`` (N, H, W, C) with true ``labels`` (N,): success rate,
    queries and seconds per image."""
    samples = samples_of(images, labels)
    start = time.perf_counter()
    results = list(PixelThresholdAttack(config).run(samples, predict))
    seconds = time.perf_counter() - start
    count = len(results)
    return {
        "success_rate": sum(result.success for result in results) / count,
        "queries_per_image": sum(result.queries for result in results) / count,
        "seconds_per_image": seconds / count,
    }


def run_model_only(
    predict: Predict, shape: Sequence[int], batch_size: int, queries: float, repeats: int
) -> Row:
    """Forward time for ``queries`` queries per image, in full batches of ``batch_size``
    random (H, W, C) = ``shape`` images."""
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (batch_size, *shape)).astype(np.float32)
    per_query = median_seconds(lambda: predict(batch), repeats) / batch_size
    return {
        "success_rate": None,
        "queries_per_image": queries,
        "seconds_per_image": queries * per_query,
    }


@dataclass
class Clock:
    """Seconds spent in the model and in decoding, and the size of each model call."""

    model: float = 0.0
    decode: float = 0.0
    calls: list[int] = field(default_factory=list)


def replayed_seconds(predict: Predict, shape: tuple[int, ...], calls: list[int]) -> float:
    """The forward pass alone on calls of ``calls`` rows, in order, on random images."""
    batch = np.random.default_rng(0).integers(0, 256, (max(calls), *shape)).astype(np.float32)
    start = time.perf_counter()
    for rows in calls:
        predict(batch[:rows])
    return time.perf_counter() - start


def timed_decoding(clock: Clock) -> Callable[[], None]:
    """Wrap every encoding's ``decode_into`` to add its time to ``clock``; returns the undo."""
    originals = {kind: kind.decode_into for kind in encodings.ENCODINGS.values()}
    for kind, decode in originals.items():

        def wrapped(self: Any, *args: Any, _decode: Callable[..., None] = decode) -> None:
            start = time.perf_counter()
            _decode(self, *args)
            clock.decode += time.perf_counter() - start

        kind.decode_into = wrapped  # type: ignore[method-assign, assignment]

    def undo() -> None:
        for kind, decode in originals.items():
            kind.decode_into = decode  # type: ignore[method-assign]

    return undo
