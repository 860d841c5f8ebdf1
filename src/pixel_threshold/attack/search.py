"""The batched search: many images advance together, one generation at a time.

Each image has its own optimizer and random stream (seeded by the run's seed and
the image's index). Every step asks every live image for its population, decodes
all candidates into one float32 buffer chunk by chunk (at most ``batch_size``
rows, so memory is bounded by the batch, not by the image count or ``D``), and
scores them in as few model calls as ``batch_size`` allows. An image stops the
moment one candidate succeeds, read from the same outputs that scored it; a
finished image's slot is refilled from the input stream, so the model keeps
seeing full batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.cmaes import CMAES
from pixel_threshold.attack.config import AttackConfig
from pixel_threshold.attack.de import DifferentialEvolution
from pixel_threshold.attack.encodings import Encoding, make_encoding
from pixel_threshold.attack.results import ImageResult, Sample, distances
from pixel_threshold.attack.types import BoolArray, FloatArray, IntArray, Predict


@dataclass
class _Job:
    """An image under attack."""

    sample: Sample
    image: npt.NDArray[np.float32]
    optimizer: DifferentialEvolution | CMAES
    p_true_before: float
    label_before: int
    generations: int = 0
    queries: int = 0


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
        """
        batcher = _Batcher(predict, self.config.batch_size)
        stream = iter(samples)
        pending: deque[tuple[Sample, npt.NDArray[np.float32], FloatArray]] = deque()
        live: list[_Job] = []
        encoding: Encoding | None = None
        while True:
            while len(live) < self.images_in_flight:
                if not pending:
                    pending.extend(
                        self._classify(list(islice(stream, self.config.batch_size)), batcher)
                    )
                    if not pending:
                        break
                sample, image, probs = pending.popleft()
                if encoding is None:
                    encoding = make_encoding(
                        self.config.attack_type, self.config.th, _image_shape(sample)
                    )
                job = self._start(sample, image, probs, encoding)
                if isinstance(job, ImageResult):
                    yield job
                else:
                    live.append(job)
            if not live or encoding is None:
                return
            yield from self._step(live, encoding, batcher)

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

    def _start(
        self,
        sample: Sample,
        image: npt.NDArray[np.float32],
        probs: FloatArray,
        encoding: Encoding,
    ) -> _Job | ImageResult:
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
        rng = np.random.default_rng([config.seed, sample.index])
        optimizer: DifferentialEvolution | CMAES
        if config.es == 1:
            optimizer = DifferentialEvolution(
                encoding.lower, encoding.upper, popsize=config.popsize, rng=rng
            )
        else:
            optimizer = CMAES(
                encoding.initial_guess(image),
                encoding.sigma0,
                encoding.lower,
                encoding.upper,
                popsize=config.popsize,
                rng=rng,
            )
        return _Job(sample, image, optimizer, p_true, label_before)

    def _step(
        self, live: list[_Job], encoding: Encoding, batcher: _Batcher
    ) -> Iterator[ImageResult]:
        """One generation of every live job; finished jobs leave ``live``."""
        populations = [job.optimizer.ask() for job in live]
        sizes = [len(population) for population in populations]
        scores = self._score(
            np.concatenate(populations),
            np.repeat(np.arange(len(live)), sizes),
            np.stack([job.image for job in live]),
            np.array([job.sample.label for job in live]),
            encoding,
            batcher,
        )
        offsets = np.cumsum([0, *sizes])
        finished = []
        for slot, job in enumerate(live):
            rows = slice(offsets[slot], offsets[slot + 1])
            job.optimizer.tell(scores.fitness[rows])
            job.generations += 1
            job.queries += sizes[slot]
            success = scores.success[rows]
            if success.any():
                winner = int(np.argmin(np.where(success, scores.fitness[rows], np.inf)))
                row = offsets[slot] + winner
                yield self._adversarial(
                    job,
                    populations[slot][winner],
                    encoding,
                    float(scores.p_true[row]),
                    int(scores.predicted[row]),
                )
                finished.append(slot)
            elif job.generations >= self.config.max_iter:
                yield _unchanged(
                    job.sample,
                    job.p_true_before,
                    job.label_before,
                    attacked=True,
                    queries=job.queries,
                    generations=job.generations,
                )
                finished.append(slot)
        for slot in reversed(finished):
            del live[slot]

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
        for start in range(0, count, batcher.batch_size):
            rows = slice(start, min(start + batcher.batch_size, count))
            chunk = batcher.chunk(images.shape[1:], rows.stop - start)
            encoding.decode_into(chunk, images, owners[rows], candidates[rows])
            probs = batcher.probabilities(chunk)
            p_true[rows] = probs[np.arange(len(probs)), labels[owners[rows]]]
            predicted[rows] = np.argmax(probs, axis=1)
            target = self.config.target
            fitness[rows] = p_true[rows] if target is None else 1.0 - probs[:, target]
        true_labels = labels[owners]
        success = (
            predicted != true_labels
            if self.config.target is None
            else (predicted == self.config.target)
        )
        return _Scores(fitness, success, p_true, predicted)

    def _adversarial(
        self, job: _Job, genes: FloatArray, encoding: Encoding, p_true: float, predicted: int
    ) -> ImageResult:
        decoded = np.empty((1, *job.image.shape), dtype=np.float32)
        encoding.decode_into(decoded, job.image[None], np.zeros(1, dtype=np.intp), genes[None])
        adversarial = decoded[0].astype(np.uint8)
        l0, l2, linf = distances(job.image, adversarial)
        return ImageResult(
            index=job.sample.index,
            label=job.sample.label,
            adversarial=adversarial,
            attacked=True,
            success=True,
            queries=job.queries,
            generations=job.generations,
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
