"""The batched search: many images advance together, one step at a time.

Each image has its own slot in the strategy (`strategies`) and its own random stream
(seeded by the run's seed and the image's index). Every step asks the strategy for
the populations of every image in flight, decodes
all candidates into one float32 buffer chunk by chunk (at most ``batch_size``
rows, so memory is bounded by the batch, not by the image count or ``D``), and
scores them in as few model calls as ``batch_size`` allows. An image stops the
moment one candidate succeeds, read from the same outputs that scored it; a
finished image's slot is refilled from the input stream, so the model keeps
seeing full batches.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.config import SMALLEST_TH, AttackConfig
from pixel_threshold.attack.encodings import Encoding, make_encoding
from pixel_threshold.attack.losses import loss, succeeded
from pixel_threshold.attack.results import ImageResult, Sample, distances
from pixel_threshold.attack.smallest import SmallestBudget
from pixel_threshold.attack.strategies import Strategy, make_strategy
from pixel_threshold.attack.types import BoolArray, FloatArray, IntArray, Predict


@dataclass(frozen=True)
class _Job:
    """An image under attack, in its slot."""

    sample: Sample
    p_true_before: float
    label_before: int


@dataclass
class _Slots:
    """The images in flight: slot ``i`` holds ``jobs[i]`` (None when free), its pixels
    ``images[i]`` and its counts so far."""

    jobs: list[_Job | None]
    active: BoolArray
    images: npt.NDArray[np.float32]
    labels: IntArray
    steps: IntArray
    queries: IntArray
    strategy: Strategy

    @classmethod
    def empty(cls, capacity: int, encoding: Encoding, strategy: Strategy) -> _Slots:
        return cls(
            [None] * capacity,
            np.zeros(capacity, dtype=bool),
            np.zeros((capacity, *encoding.shape), dtype=np.float32),
            np.zeros(capacity, dtype=np.intp),
            np.zeros(capacity, dtype=np.intp),
            np.zeros(capacity, dtype=np.intp),
            strategy,
        )

    def fill(self, job: _Job, image: npt.NDArray[np.float32], rng: np.random.Generator) -> None:
        slot = int(np.argmin(self.active))
        self.jobs[slot] = job
        self.active[slot] = True
        self.images[slot] = image
        self.labels[slot] = job.sample.label
        self.steps[slot] = 0
        self.queries[slot] = 0
        self.strategy.start(slot, image, rng)

    def job(self, slot: int) -> _Job:
        job = self.jobs[slot]
        assert job is not None, "an occupied slot"
        return job

    def free(self, slot: int) -> None:
        self.jobs[slot] = None
        self.active[slot] = False


@dataclass
class _Scores:
    """What the model said about a run of candidates, one entry per candidate."""

    fitness: FloatArray
    success: BoolArray
    p_true: FloatArray
    predicted: IntArray


@dataclass
class _Batcher:
    """Feeds candidates to the model through one reusable float32 buffer."""

    model: Predict
    batch_size: int
    buffer: npt.NDArray[np.float32] = field(
        init=False, default_factory=lambda: np.empty(0, dtype=np.float32)
    )

    def probabilities(self, chunk: npt.NDArray[np.float32]) -> FloatArray:
        """Model outputs (m, K) for a filled buffer chunk (m, H, W, C)."""
        probs = np.asarray(self.model(chunk))
        if probs.ndim != 2 or len(probs) != len(chunk):
            raise ValueError(
                f"expected the model to return ({len(chunk)}, classes) probabilities, "
                f"got shape {probs.shape}"
            )
        if not np.all(np.isfinite(probs)):
            raise ValueError("the model returned non-finite probabilities (NaN or inf)")
        return probs

    def chunk(self, shape: tuple[int, ...], size: int) -> npt.NDArray[np.float32]:
        """A view of the first ``size`` rows of a (batch_size, *shape) buffer."""
        if self.buffer.shape[1:] != shape:
            self.buffer = np.empty((self.batch_size, *shape), dtype=np.float32)
        return self.buffer[:size]


class PixelThresholdAttack:
    """Kotyan & Vargas' Pixel (L0) and Threshold (L-infinity) black-box attacks.

    >>> attack = PixelThresholdAttack(AttackConfig(th=1, es=1))
    >>> for result in attack.run(samples, predict): ...

    ``predict`` maps float32 (B, H, W, C) pixels in 0-255 to probabilities (B, K)
    with ``B <= batch_size``.
    """

    def __init__(self, config: AttackConfig) -> None:
        self.config = config

    @property
    def images_in_flight(self) -> int:
        """How many images advance together: enough populations to fill a batch."""
        return max(1, self.config.batch_size // self.config.popsize)

    def run(self, samples: Iterable[Sample], predict: Predict) -> Iterator[ImageResult]:
        """Attack every sample; yield each image's result as soon as it is final.

        Results come in completion order, not input order; ``result.index`` says which.
        With ``th=-1``, each image's smallest th (`smallest.SmallestBudget`), every level
        searched by this class at that th.
        """
        if self.config.th != SMALLEST_TH:
            return self._search(samples, predict, rng_key=())

        def search_at(level: int, batch: list[Sample], model: Predict) -> Iterator[ImageResult]:
            fixed = PixelThresholdAttack(dataclasses.replace(self.config, th=level))
            return fixed._search(batch, model, rng_key=(level,))

        return SmallestBudget(self.config, search_at, predict).run(samples)

    def _search(
        self, samples: Iterable[Sample], predict: Predict, *, rng_key: tuple[int, ...]
    ) -> Iterator[ImageResult]:
        """The attack at the config's th; each image's random stream is seeded by
        (seed, index, *rng_key)."""
        batcher = _Batcher(predict, self.config.batch_size)
        stream = iter(samples)
        pending: deque[tuple[Sample, npt.NDArray[np.float32], FloatArray]] = deque()
        slots: _Slots | None = None
        encoding: Encoding | None = None
        while True:
            while slots is None or not slots.active.all():
                if not pending:
                    pending.extend(
                        self._classify(list(islice(stream, self.config.batch_size)), batcher)
                    )
                    if not pending:
                        break
                sample, image, probs = pending.popleft()
                if encoding is None or slots is None:
                    encoding = make_encoding(
                        self.config.attack_type, self.config.th, _image_shape(sample)
                    )
                    capacity = self.images_in_flight
                    slots = _Slots.empty(
                        capacity, encoding, make_strategy(self.config, encoding, capacity)
                    )
                job = self._start(sample, probs)
                if isinstance(job, ImageResult):
                    yield job
                else:
                    seed = [self.config.seed, sample.index, *rng_key]
                    slots.fill(job, image, np.random.default_rng(seed))
            if slots is None or encoding is None:
                return
            occupied = np.flatnonzero(slots.active)
            if not len(occupied):
                return
            yield from self._step(slots, occupied, encoding, batcher)

    def _classify(
        self, block: list[Sample], batcher: _Batcher
    ) -> list[tuple[Sample, npt.NDArray[np.float32], FloatArray]]:
        """Each sample with its float32 pixels and the model's clean probabilities."""
        if not block:
            return []
        shape = _image_shape(block[0])
        images = [_checked_pixels(sample, shape) for sample in block]
        chunk = batcher.chunk(shape, len(block))
        chunk[:] = images
        return list(zip(block, images, batcher.probabilities(chunk), strict=True))

    def _start(self, sample: Sample, probs: FloatArray) -> _Job | ImageResult:
        """Open an attack on ``sample``, or settle it if there is nothing to attack."""
        config = self.config
        classes = len(probs)
        if not 0 <= sample.label < classes:
            raise ValueError(
                f"expected labels in [0, {classes}), got label={sample.label} "
                f"for image {sample.index}"
            )
        if config.target is not None and config.target >= classes:
            raise ValueError(f"expected target in [0, {classes}), got target={config.target}")
        label_before = int(np.argmax(probs))
        p_true = float(probs[sample.label])
        if label_before != sample.label or sample.label == config.target:
            return _unchanged(
                sample, p_true, label_before, attacked=False, queries=0, generations=0
            )
        return _Job(sample, p_true, label_before)

    def _step(
        self, slots: _Slots, occupied: IntArray, encoding: Encoding, batcher: _Batcher
    ) -> Iterator[ImageResult]:
        """One step of every occupied slot; finished images free their slots."""
        genes = slots.strategy.ask(occupied)
        popsize = len(genes) // len(occupied)
        owners = np.repeat(occupied, popsize)
        scores = self._score(genes, owners, slots.images, slots.labels, encoding, batcher)
        slots.strategy.tell(occupied, scores.fitness)
        slots.steps[occupied] += 1
        slots.queries[occupied] += popsize
        success = scores.success.reshape(len(occupied), popsize)
        fooled = np.any(success, axis=1)
        exhausted = slots.steps[occupied] >= self.config.max_iter
        for position in np.flatnonzero(np.logical_or(fooled, exhausted)):
            slot = int(occupied[position])
            job = slots.job(slot)
            queries, steps = int(slots.queries[slot]), int(slots.steps[slot])
            if fooled[position]:
                rows = slice(position * popsize, (position + 1) * popsize)
                fitness = np.where(success[position], scores.fitness[rows], np.inf)
                row = position * popsize + int(np.argmin(fitness))
                yield self._adversarial(
                    job,
                    slots.images[slot],
                    genes[row],
                    encoding,
                    float(scores.p_true[row]),
                    int(scores.predicted[row]),
                    queries=queries,
                    generations=steps,
                )
            else:
                yield _unchanged(
                    job.sample,
                    job.p_true_before,
                    job.label_before,
                    attacked=True,
                    queries=queries,
                    generations=steps,
                )
            slots.free(slot)

    def _score(
        self,
        candidates: FloatArray,
        owners: IntArray,
        images: npt.NDArray[np.float32],
        labels: IntArray,
        encoding: Encoding,
        batcher: _Batcher,
    ) -> _Scores:
        """Decode and score ``candidates`` (M, D) of images ``owners`` (M,) in chunks."""
        count = len(candidates)
        fitness = np.empty(count)
        p_true = np.empty(count)
        predicted = np.empty(count, dtype=np.intp)
        target = self.config.target
        for start in range(0, count, batcher.batch_size):
            rows = slice(start, min(start + batcher.batch_size, count))
            chunk = batcher.chunk(images.shape[1:], rows.stop - start)
            encoding.decode_into(chunk, images, owners[rows], candidates[rows])
            probs = batcher.probabilities(chunk)
            true_labels = labels[owners[rows]]
            p_true[rows] = probs[np.arange(len(probs)), true_labels]
            predicted[rows] = np.argmax(probs, axis=1)
            fitness[rows] = loss(self.config.loss, probs, true_labels, target)
        success = succeeded(predicted, labels[owners], target)
        return _Scores(fitness, success, p_true, predicted)

    def _adversarial(
        self,
        job: _Job,
        image: npt.NDArray[np.float32],
        genes: FloatArray,
        encoding: Encoding,
        p_true: float,
        predicted: int,
        *,
        queries: int,
        generations: int,
    ) -> ImageResult:
        decoded = np.empty((1, *image.shape), dtype=np.float32)
        encoding.decode_into(decoded, image[None], np.zeros(1, dtype=np.intp), genes[None])
        adversarial = decoded[0].astype(np.uint8)
        l0, l2, linf = distances(image, adversarial)
        return ImageResult(
            index=job.sample.index,
            label=job.sample.label,
            adversarial=adversarial,
            attacked=True,
            success=True,
            queries=queries,
            generations=generations,
            p_true_before=job.p_true_before,
            p_true_after=p_true,
            label_before=job.label_before,
            label_after=predicted,
            l0=l0,
            l2=l2,
            linf=linf,
        )


def _image_shape(sample: Sample) -> tuple[int, int, int]:
    shape = sample.image.shape
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise ValueError(
            f"expected an (H, W, C) image with C in (1, 3), got shape {shape} "
            f"for image {sample.index}"
        )
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _checked_pixels(sample: Sample, shape: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """The image as float32, after checking its shape and that it holds integers in 0-255."""
    if _image_shape(sample) != shape:
        raise ValueError(
            f"expected every image to have shape {shape}, got {sample.image.shape} "
            f"for image {sample.index}"
        )
    image = np.asarray(sample.image, dtype=np.float32)
    if image.min() < 0 or image.max() > 255 or np.any(image != np.round(image)):
        raise ValueError(
            f"expected integer pixel values in 0-255, got values in "
            f"[{image.min()}, {image.max()}] for image {sample.index}"
        )
    return image


def _unchanged(
    sample: Sample,
    p_true: float,
    predicted: int,
    *,
    attacked: bool,
    queries: int,
    generations: int,
) -> ImageResult:
    """The result that writes the original image out: not attacked, or not fooled."""
    return ImageResult(
        index=sample.index,
        label=sample.label,
        adversarial=np.asarray(sample.image).astype(np.uint8),
        attacked=attacked,
        success=False,
        queries=queries,
        generations=generations,
        p_true_before=p_true,
        p_true_after=p_true,
        label_before=predicted,
        label_after=predicted,
        l0=0,
        l2=0.0,
        linf=0.0,
    )
