"""Each image's smallest budget (``th=-1``): a walk down from ``th_max``.

The paper's robustness level of an image (Kotyan & Vargas, arXiv 1906.06026; the
minimal-budget curves of Dong et al., CVPR 2020) is the smallest th at which the
attack fools it. Its authors and ART binary-search th with a full attack at every probe (about
eight per image, half of them failures that spend the whole budget). Here each image
walks down instead, and only its last search fails:

1. search at ``th_max`` (the strategy of ``es``, its budget, as a fixed-th attack);
   not fooled: search there again with a fresh seed, up to as many searches as a
   binary search over ``1..th_max`` has probes (th_max's bit length: 7 for 127, 8 for
   255), so a weak search gets as many tries as ART's before an image counts as not
   fooled within ``th_max``; none fooled: done;
2. tighten what fooled, a query at a time: Threshold, the smallest clip of its delta
   to ``[-c, c]`` that still fools (bisection on c); Pixel, restore its changed pixels
   one at a time in a random order, keeping each restoration that still fools. The
   tightened image's distance d (L-infinity, or pixels changed) is a th that fools;
3. search at ``d - 1``, the strategy handed the image found at d to start from (the
   Threshold random search starts on the signs of its change: without that start, a
   Square search from stripes at each level fails where a fixed-th run of the same
   budget fools, and min_th comes out biased upward; benchmarks/walk_bias.py): fooled,
   back to 2; not fooled (or d = 1), min_th = d, settled, and the image found at d is
   the one returned.

Every image walks on its own: the moment its search or tightening ends, it moves to
its next level, while the others go on. Each step, every level's search and the
tightening hand their candidates to one `model_calls.ModelCalls.score`, so the images
at every level fill the model's batches together. An image's searches and tightenings
depend only on the image, the seed and what the model says of its own candidates (each
level's search is seeded by the seed, the image's index and the level, and a try
after the first at ``th_max`` by the try too), so results do not depend on the batch,
the shard or the other images.

Queries: every search spends at most ``max_iter * popsize``; a tightening at most
``ceil(log2(d)) + 1`` (Threshold) or d (Pixel). All are counted in ``queries``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.config import AttackConfig
from pixel_threshold.attack.distances import distances
from pixel_threshold.attack.encodings import Encoding, encoding_type
from pixel_threshold.attack.level_search import (
    Claims,
    Job,
    LevelSearch,
    Proposal,
    Shape,
    images_in_flight,
    intake,
)
from pixel_threshold.attack.losses import succeeded, true_probability
from pixel_threshold.attack.model_calls import ModelCalls
from pixel_threshold.attack.results import ImageResult, Sample
from pixel_threshold.attack.shrinking import Shrink
from pixel_threshold.attack.types import FloatArray

TIGHTEN_STREAM = 1
"""Appended to (seed, index, level) to seed a tightening's generator (the Pixel
attack draws the order it restores pixels in from it)."""
GENES_IN_FLIGHT = 1 << 24
"""The most genes (``popsize * D`` an image, D at ``th_max``) the walks in flight hold
beyond a batch's worth of images: 16M, 128 MB as float64. A tightening asks one
candidate per image a step, so a few images in flight leave the model's batches
nearly empty while they tighten, and the run makes many times the model calls
(docs/benchmarks.md, "Why the core is as it is")."""


@dataclass
class _Walk:
    """One image on its way down: the level it is at, what it spent, and the smallest
    adversarial found so far (None until one fools)."""

    job: Job
    level: int
    queries: int = 0
    generations: int = 0
    best: ImageResult | None = None
    min_th: int | None = None
    tries: int = 1
    """Searches at ``th_max`` so far."""

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
    -1), with the model behind ``calls``."""

    def __init__(self, config: AttackConfig, calls: ModelCalls) -> None:
        self.config = config
        self._calls = calls
        self._searches: dict[tuple[int, ...], LevelSearch] = {}
        self._tries = 1
        self._capacity = images_in_flight(config)
        self._encoding = encoding_type(config.attack_type)
        self._tightening = _Tightening(config, self._encoding)

    def run(self, samples: Iterable[Sample]) -> Iterator[ImageResult]:
        """Each sample's result, with ``min_th``, as soon as it is settled."""
        jobs = intake(samples, self._calls, self.config)
        walks: dict[int, _Walk] = {}
        shape: Shape | None = None
        th_max = 0
        while True:
            while (shape is None or len(walks) < self._capacity) and (
                job := next(jobs, None)
            ) is not None:
                if isinstance(job, ImageResult):
                    yield job
                    continue
                if shape is None:
                    shape = job.shape
                    th_max = self.config.fitted(shape).th_max
                    self._tries = th_max.bit_length()
                    self._capacity = self._walks_in_flight(th_max, shape)
                walks[job.sample.index] = _Walk(job, th_max)
                self._search_at((th_max,), shape).add(job)
            if shape is None or not walks:
                return
            yield from self._step(walks, shape)

    def _step(self, walks: dict[int, _Walk], shape: Shape) -> Iterator[ImageResult]:
        """One step of every level's search and of the tightening, in shared calls;
        the images that settled leave ``walks``."""
        searches = [self._searches[key] for key in sorted(self._searches, reverse=True)]
        proposals = [search.propose() for search in searches]
        claims = [search.claims() for search in searches]
        tightening = self._tightening.propose() if self._tightening.busy else None
        requests: list[Proposal | Claims | _TighteningProposal] = [*proposals, *claims]
        if tightening is not None:
            requests.append(tightening)
        outputs = self._calls.score(requests, shape)
        count = len(searches)
        searched, confirmed = outputs[:count], outputs[count : 2 * count]
        settled = zip(searches, proposals, searched, claims, confirmed, strict=True)
        for search, proposal, probs, claimed, alone in settled:
            for result in [*search.settle_claims(claimed, alone), *search.settle(proposal, probs)]:
                walk = walks[result.index]
                walk.queries += result.queries
                walk.generations += result.generations
                if result.success:
                    self._tightening.add(walk, result)
                elif walk.best is None and walk.tries < self._tries:
                    walk.tries += 1  # a fresh search at th_max, seeded by the try
                    self._search_at((walk.level, walk.tries), shape).add(walk.job)
                else:
                    del walks[result.index]
                    yield walk.settled(result)
        if tightening is not None:
            for walk, result in self._tightening.settle(tightening, outputs[-1]):
                walk.best = result
                walk.min_th = self._encoding.spent(result)
                if walk.min_th <= 1:
                    del walks[walk.job.sample.index]
                    yield walk.settled(result)
                else:
                    walk.level = walk.min_th - 1
                    near = result.adversarial.astype(np.float32)
                    self._search_at((walk.level,), shape).add(walk.job, near=near)
        self._searches = {key: s for key, s in self._searches.items() if s.busy}

    def _walks_in_flight(self, th_max: int, shape: Shape) -> int:
        """How many images walk at once: a batch's worth of populations, or more while
        their genes stay within `GENES_IN_FLIGHT`, up to ``batch_size`` images."""
        dimension = self._encoding(th_max, shape).dimension
        by_memory = GENES_IN_FLIGHT // (self.config.popsize * dimension)
        return max(images_in_flight(self.config), min(self.config.batch_size, by_memory))

    def _search_at(self, key: tuple[int, ...], shape: Shape) -> LevelSearch:
        """The search keyed (level,) or, for a try after the first at ``th_max``,
        (level, try), opened if no image is in it; the key seeds its images' streams
        after (seed, index)."""
        search = self._searches.get(key)
        if search is None:
            config = dataclasses.replace(self.config, th=key[0])
            search = LevelSearch(config, shape, self._capacity, rng_key=key)
            self._searches[key] = search
        return search


@dataclass
class _Tightened:
    """A walk's fooling result being made smaller: the smallest image that fooled so far
    and what the model said of it, and the queries spent."""

    walk: _Walk
    fooling: ImageResult
    shrink: Shrink
    current: npt.NDArray[np.float32]
    p_true: float
    predicted: int
    queries: int = 0

    def result(self) -> ImageResult:
        adversarial = self.current.astype(np.uint8)
        l0, l2, linf = distances(self.walk.job.image, adversarial)
        return dataclasses.replace(
            self.fooling,
            adversarial=adversarial,
            p_true_after=self.p_true,
            label_after=self.predicted,
            l0=l0,
            l2=l2,
            linf=linf,
        )


@dataclass(frozen=True)
class _TighteningProposal:
    """One candidate of each image being tightened, stacked (M, H, W, C)."""

    items: list[_Tightened]
    candidates: npt.NDArray[np.float32]
    alone = True
    """A tightening keeps a candidate that fools: each is scored in a call of its own,
    so the image it ends with fools the model scored alone."""

    @property
    def count(self) -> int:
        return len(self.items)

    def decode_into(self, out: npt.NDArray[np.float32], start: int, stop: int) -> None:
        out[:] = self.candidates[start:stop]

    def changed(self, start: int, stop: int) -> None:
        """None: tightened images are pixels already (``decode_into`` copies them)."""


class _Tightening:
    """Every fooling image being made smaller, a query per image a step (step 2 of the
    module's walk)."""

    def __init__(self, config: AttackConfig, encoding: type[Encoding]) -> None:
        self.config = config
        self._encoding = encoding
        self._items: list[_Tightened] = []

    @property
    def busy(self) -> bool:
        return bool(self._items)

    def add(self, walk: _Walk, fooling: ImageResult) -> None:
        """Start tightening ``fooling``, the result of ``walk``'s search at its level."""
        original = walk.job.image
        current = fooling.adversarial.astype(np.float32)
        seed = [self.config.seed, walk.job.sample.index, walk.level, TIGHTEN_STREAM]
        shrink = self._encoding.shrink(original, current, np.random.default_rng(seed))
        self._items.append(
            _Tightened(walk, fooling, shrink, current, fooling.p_true_after, fooling.label_after)
        )

    def propose(self) -> _TighteningProposal:
        """The next candidate of every image with one left to try."""
        items = [item for item in self._items if not item.shrink.done]
        shape = self._items[0].current.shape
        candidates = np.empty((len(items), *shape), dtype=np.float32)
        for row, item in enumerate(items):
            candidates[row] = item.shrink.candidate(item.current)
        return _TighteningProposal(items, candidates)

    def settle(
        self, proposal: _TighteningProposal, scores: FloatArray
    ) -> list[tuple[_Walk, ImageResult]]:
        """Take the model's outputs (M, K) on ``proposal``; each tightened walk with its
        result, the queries going to the walk."""
        if proposal.items:
            labels = np.array([item.walk.job.sample.label for item in proposal.items])
            predicted = np.argmax(scores, axis=1)
            p_true = true_probability(scores, labels, self.config.outputs)
            fooled = succeeded(predicted, labels, self.config.target)
            for row, item in enumerate(proposal.items):
                item.queries += 1
                item.shrink.told(bool(fooled[row]))
                if fooled[row]:
                    item.current = proposal.candidates[row]
                    item.p_true = float(p_true[row])
                    item.predicted = int(predicted[row])
        done = [item for item in self._items if item.shrink.done]
        self._items = [item for item in self._items if not item.shrink.done]
        for item in done:
            item.walk.queries += item.queries
        return [(item.walk, item.result()) for item in done]
