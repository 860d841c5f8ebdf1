"""Each image's smallest budget (``th=-1``): a walk down from ``th_max``.

The paper's robustness level of an image is the smallest th at which the attack fools
it. Its authors and ART binary-search th with a full attack at every probe (about
eight per image, half of them failures that spend the whole budget). Here each image
walks down instead, and only its last search fails:

1. search at ``th_max`` (the strategy of ``es``, its budget, as a fixed-th attack);
   not fooled: the image is not fooled within ``th_max``, and done;
2. tighten what fooled, for a few queries: Threshold, the smallest clip of its delta
   to ``[-c, c]`` that still fools (bisection on c); Pixel, restore its changed pixels
   one at a time in a random order, keeping each restoration that still fools. The
   tightened image's distance d (L-infinity, or pixels changed) is a th that fools;
3. search afresh at ``d - 1``: fooled, back to 2; not fooled (or d = 1), min_th = d,
   settled, and the image found at d is the one returned.

An image's searches and tightenings depend only on the image, the seed and what the
model says of its own candidates (each level's search is seeded by the seed, the
image's index and the level), so results do not depend on the batch or the shard.
Images are settled a chunk of ``batch_size`` at a time, in rounds: every image of the
chunk at the same level is searched together, and the levels' searches share their
model calls (`shared_calls`), so few images at a level still fill a batch.

Queries: every search spends at most ``max_iter * popsize``; a tightening at most
``ceil(log2(d)) + 1`` (Threshold) or d (Pixel). All are counted in ``queries``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.config import AttackConfig, resolved_th_max
from pixel_threshold.attack.losses import succeeded
from pixel_threshold.attack.results import ImageResult, Sample, distances
from pixel_threshold.attack.shared_calls import run_sharing_calls
from pixel_threshold.attack.types import BoolArray, FloatArray, IntArray, Predict

SearchAt = Callable[[int, list[Sample], Predict], Iterator[ImageResult]]
"""Runs the fixed-th attack at a level on samples against a model; yields their results
in any order."""
TIGHTEN_STREAM = 1
"""Appended to (seed, index, level) to seed a Pixel tightening's order."""


@dataclass
class _Walk:
    """One image on its way down: the next level to search, what it spent, and the
    smallest adversarial found so far (None until one fools)."""

    sample: Sample
    level: int
    queries: int = 0
    generations: int = 0
    best: ImageResult | None = None
    min_th: int | None = None

    def settled(self, last: ImageResult) -> ImageResult:
        """The image's result: the best adversarial at its min_th, or ``last`` (the
        failed search at ``th_max``, the original image) when none fooled."""
        return dataclasses.replace(
            last if self.best is None else self.best,
            queries=self.queries,
            generations=self.generations,
            min_th=self.min_th,
        )


class SmallestBudget:
    """Finds each image's smallest th in ``1..th_max`` for ``config`` (whose ``th`` is
    -1), searching each level with ``search_at`` and tightening with ``predict``."""

    def __init__(self, config: AttackConfig, search_at: SearchAt, predict: Predict) -> None:
        self.config = config
        self._search_at = search_at
        self._predict = predict

    def run(self, samples: Iterable[Sample]) -> Iterator[ImageResult]:
        """Each sample's result, with ``min_th``, as soon as it is settled."""
        stream = iter(samples)
        while chunk := list(islice(stream, self.config.batch_size)):
            yield from self._settle(chunk)

    def _settle(self, chunk: list[Sample]) -> Iterator[ImageResult]:
        shape = tuple(chunk[0].image.shape)
        if len(shape) != 3:
            raise ValueError(f"expected (H, W, C) images, got shape {shape}")
        th_max = resolved_th_max(self.config.attack_type, self.config.th_max, shape)
        walks = [_Walk(sample, th_max) for sample in chunk]
        while walks:
            fooled: list[tuple[_Walk, ImageResult]] = []
            searches = [
                partial(self._search_at, level, [w.sample for w in walks if w.level == level])
                for level in sorted({walk.level for walk in walks}, reverse=True)
            ]
            by_index = {walk.sample.index: walk for walk in walks}
            for result in run_sharing_calls(searches, self._predict, self.config.batch_size):
                walk = by_index[result.index]
                walk.queries += result.queries
                walk.generations += result.generations
                if result.success:
                    fooled.append((walk, result))
                else:
                    yield walk.settled(result)
            walks = []
            for walk, result in self._tightened(fooled):
                walk.best = result
                walk.min_th = result.l0 if self.config.attack_type == "pixel" else int(result.linf)
                if walk.min_th <= 1:
                    yield walk.settled(result)
                else:
                    walk.level = walk.min_th - 1
                    walks.append(walk)

    def _tightened(
        self, fooled: list[tuple[_Walk, ImageResult]]
    ) -> list[tuple[_Walk, ImageResult]]:
        """Each walk with its fooling result tightened; the queries go to the walk."""
        if not fooled:
            return []
        walks = [walk for walk, _ in fooled]
        results = [result for _, result in fooled]
        originals = np.stack([walk.sample.image for walk in walks]).astype(np.float32)
        current = np.stack([result.adversarial for result in results]).astype(np.float32)
        labels = np.array([walk.sample.label for walk in walks], dtype=np.intp)
        probe = _Probe(self._fools, labels, results)
        if self.config.attack_type == "threshold":
            _clip_delta(originals, current, probe)
        else:
            orders = [
                np.random.default_rng(
                    [self.config.seed, walk.sample.index, walk.level, TIGHTEN_STREAM]
                ).permutation(np.flatnonzero(np.any(result.adversarial != walk.sample.image, -1)))
                for walk, result in fooled
            ]
            _restore_pixels(originals, current, _padded(orders), probe)
        for walk, queries in zip(walks, probe.queries, strict=True):
            walk.queries += int(queries)
        return list(zip(walks, probe.tightened(originals, current), strict=True))

    def _fools(
        self, images: npt.NDArray[np.float32], labels: IntArray
    ) -> tuple[BoolArray, FloatArray, IntArray]:
        """Whether each of ``images`` (M, H, W, C) fools the model, with p(true label)
        and the predicted label of each, in calls of at most ``batch_size`` rows."""
        p_true = np.empty(len(images))
        predicted = np.empty(len(images), dtype=np.intp)
        for start in range(0, len(images), self.config.batch_size):
            rows = slice(start, start + self.config.batch_size)
            probs = np.asarray(self._predict(images[rows]))
            predicted[rows] = np.argmax(probs, axis=1)
            p_true[rows] = probs[np.arange(len(probs)), labels[rows]]
        return succeeded(predicted, labels, self.config.target), p_true, predicted


class _Probe:
    """Asks the model whether tightened candidates still fool, counting each image's
    queries and keeping what the model said of each image's accepted candidate."""

    def __init__(
        self,
        fools: Callable[
            [npt.NDArray[np.float32], IntArray], tuple[BoolArray, FloatArray, IntArray]
        ],
        labels: IntArray,
        results: list[ImageResult],
    ) -> None:
        self._fools = fools
        self._labels = labels
        self._results = results
        self.queries = np.zeros(len(labels), dtype=np.intp)
        self.p_true = np.array([result.p_true_after for result in results])
        self.predicted = np.array([result.label_after for result in results], dtype=np.intp)

    def fools(self, rows: IntArray, candidates: npt.NDArray[np.float32]) -> BoolArray:
        """Whether each candidate (len(rows), H, W, C) of images ``rows`` fools; records
        the model's outputs for those that do."""
        fooled, p_true, predicted = self._fools(candidates, self._labels[rows])
        self.queries[rows] += 1
        self.p_true[rows[fooled]] = p_true[fooled]
        self.predicted[rows[fooled]] = predicted[fooled]
        return fooled

    def tightened(
        self, originals: npt.NDArray[np.float32], current: npt.NDArray[np.float32]
    ) -> list[ImageResult]:
        """The results with the tightened images and what the model said of them."""
        tightened = []
        for row, result in enumerate(self._results):
            adversarial = current[row].astype(np.uint8)
            l0, l2, linf = distances(originals[row], adversarial)
            tightened.append(
                dataclasses.replace(
                    result,
                    adversarial=adversarial,
                    p_true_after=float(self.p_true[row]),
                    label_after=int(self.predicted[row]),
                    l0=l0,
                    l2=l2,
                    linf=linf,
                )
            )
        return tightened


def _clip_delta(
    originals: npt.NDArray[np.float32], current: npt.NDArray[np.float32], probe: _Probe
) -> None:
    """Replace each of ``current`` (N, H, W, C) with its delta from ``originals``
    clipped to the smallest ``[-c, c]`` that still fools, found by bisection on c
    between 0 (the original, which the model gets right) and the delta's L-infinity."""
    delta = current - originals
    high = np.abs(delta).reshape(len(delta), -1).max(axis=1)
    low = np.zeros_like(high)
    while np.any(live := high - low > 1):
        rows = np.flatnonzero(live)
        middle = (low[rows] + high[rows]) // 2
        bound = middle[:, None, None, None]
        candidates = np.clip(originals[rows] + np.clip(delta[rows], -bound, bound), 0, 255)
        fooled = probe.fools(rows, candidates)
        high[rows[fooled]] = middle[fooled]
        low[rows[~fooled]] = middle[~fooled]
        current[rows[fooled]] = candidates[fooled]


def _restore_pixels(
    originals: npt.NDArray[np.float32],
    current: npt.NDArray[np.float32],
    orders: IntArray,
    probe: _Probe,
) -> None:
    """Restore the changed pixels of each of ``current`` (N, H, W, C) to ``originals``
    one at a time, in the order of its row of ``orders`` (N, S) (flat pixel indices, -1
    past its last), keeping every restoration after which the image still fools."""
    count, height, width, channels = current.shape
    flat_current = current.reshape(count, height * width, channels)
    flat_originals = originals.reshape(count, height * width, channels)
    for pixels in orders.T:
        rows = np.flatnonzero(pixels >= 0)
        candidates = flat_current[rows].copy()
        restored = pixels[rows]
        candidates[np.arange(len(rows)), restored] = flat_originals[rows, restored]
        fooled = probe.fools(rows, candidates.reshape(len(rows), height, width, channels))
        flat_current[rows[fooled]] = candidates[fooled]


def _padded(orders: list[IntArray]) -> IntArray:
    """The rows of ``orders`` as one (N, longest) array, padded with -1."""
    padded = np.full((len(orders), max(len(order) for order in orders)), -1, dtype=np.intp)
    for row, order in enumerate(orders):
        padded[row, : len(order)] = order
    return padded
