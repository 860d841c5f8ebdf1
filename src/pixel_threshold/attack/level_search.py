"""The attack at one th: many images in slots, advanced together a step at a time.

Each image has its own slot in the strategy (`strategies`) and its own random stream
(seeded by the run's seed, the image's index and the search's ``rng_key``). A step
`LevelSearch.propose`s the populations of every image in flight as `Candidates`, which
`model_calls.ModelCalls` decodes into its batch buffer and scores together with those
of other searches; `LevelSearch.settle` reads the outputs. An image whose candidate
fools the model claims it, and the next call scores the claim alone (`Claims`, one
query more): confirmed, the image stops and frees its slot for the next image; not
(a model whose last bits depend on the batch, at the decision boundary), it searches
on. So every success fools the model when scored on its own, at any batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import count, islice

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.changes import ChangedRows, Originals
from pixel_threshold.attack.config import AttackConfig
from pixel_threshold.attack.distances import distances
from pixel_threshold.attack.encodings import Encoding, make_encoding
from pixel_threshold.attack.losses import loss, succeeded, true_probability
from pixel_threshold.attack.model_calls import ModelCalls
from pixel_threshold.attack.results import ImageResult, Sample
from pixel_threshold.attack.strategies import make_strategy
from pixel_threshold.attack.types import BoolArray, FloatArray, IntArray

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Job:
    """An image the model classifies right, to attack: its pixels (H, W, C) as float32,
    what the model said of it, and its ``key``, unique among a run's jobs (the key of its
    original where a model decodes candidates itself, `changes.ChangedRows`)."""

    sample: Sample
    image: npt.NDArray[np.float32]
    p_true_before: float
    label_before: int
    key: int

    @property
    def shape(self) -> Shape:
        return image_shape(self.sample)


def images_in_flight(config: AttackConfig) -> int:
    """How many images advance together: enough populations to fill a batch."""
    return max(1, config.batch_size // config.popsize)


def intake(
    samples: Iterable[Sample], calls: ModelCalls, config: AttackConfig
) -> Iterator[Job | ImageResult]:
    """Each sample, in order: a `Job`, or its final result when there is nothing to
    attack (the model gets it wrong, or its label is the target). Classified lazily, a
    block of ``batch_size`` samples a model call; every image must have the first one's
    shape, and ``config`` must fit it (`AttackConfig.fitted`) and the model's classes."""
    stream = iter(samples)
    shape: Shape | None = None
    keys = count()
    while block := list(islice(stream, config.batch_size)):
        if shape is None:
            shape = image_shape(block[0])
            config.fitted(shape)
        images = [_checked_pixels(sample, shape) for sample in block]
        scores = calls.scores(np.stack(images))
        config.check_classes(scores.shape[1])
        labels = np.array([sample.label for sample in block])
        _check_labels(block, scores.shape[1])
        p_true = true_probability(scores, labels, config.outputs)
        for sample, image, row, probability in zip(block, images, scores, p_true, strict=True):
            yield _job(sample, image, row, float(probability), config.target, next(keys))


def _check_labels(block: list[Sample], classes: int) -> None:
    for sample in block:
        if not 0 <= sample.label < classes:
            raise ValueError(
                f"expected labels in [0, {classes}), got label={sample.label} "
                f"for image {sample.index}"
            )


def _job(
    sample: Sample,
    image: npt.NDArray[np.float32],
    scores: FloatArray,
    p_true: float,
    target: int | None,
    key: int,
) -> Job | ImageResult:
    label_before = int(np.argmax(scores))
    if label_before != sample.label or sample.label == target:
        return unchanged(sample, p_true, label_before, attacked=False, queries=0, generations=0)
    return Job(sample, image, p_true, label_before, key)


@dataclass(frozen=True)
class Genes:
    """Candidates ``genes`` (M, D) of the images in slots ``owners`` (M,) of a search's
    ``originals`` (its images and their jobs' keys, by slot)."""

    encoding: Encoding
    originals: Originals
    owners: IntArray
    genes: FloatArray

    @property
    def count(self) -> int:
        return len(self.genes)

    def decode_into(self, out: npt.NDArray[np.float32], start: int, stop: int) -> None:
        self.encoding.decode_into(
            out, self.originals.images, self.owners[start:stop], self.genes[start:stop]
        )

    def changed(self, start: int, stop: int) -> ChangedRows:
        return ChangedRows(
            self.originals.keys[self.owners[start:stop]],
            self.encoding.changes(self.genes[start:stop]),
            (self.originals,),
        )


@dataclass(frozen=True)
class Proposal(Genes):
    """One step's candidates of a `LevelSearch`: those of the images in ``slots`` (L,),
    ``owners`` each slot repeated popsize times."""

    slots: IntArray

    alone = False
    """Ranked from shared calls: a success found here is claimed, then confirmed alone."""


@dataclass(frozen=True)
class Claims(Genes):
    """The candidates that fooled the model in the last step, one per image in slots
    ``owners`` (C,): each is scored again alone before it counts
    (`LevelSearch.settle_claims`)."""

    alone = True


class LevelSearch:
    """The attack at ``config.th`` (>= 1) on images of ``shape``, up to ``capacity`` at
    once; each image's random stream is seeded by (seed, index, *rng_key)."""

    def __init__(
        self,
        config: AttackConfig,
        shape: Shape,
        capacity: int,
        rng_key: tuple[int, ...] = (),
    ) -> None:
        self.config = config
        self.encoding = make_encoding(config.attack_type, config.th, shape)
        self._strategy = make_strategy(
            config.es,
            self.encoding,
            capacity=capacity,
            popsize=config.popsize,
            max_iter=config.max_iter,
        )
        self._rng_key = rng_key
        self._jobs: list[Job | None] = [None] * capacity
        self._active = np.zeros(capacity, dtype=bool)
        self._images = np.zeros((capacity, *shape), dtype=np.float32)
        self._originals = Originals(self._images, np.full(capacity, -1, dtype=np.intp))
        self._labels = np.zeros(capacity, dtype=np.intp)
        self._steps = np.zeros(capacity, dtype=np.intp)
        self._queries = np.zeros(capacity, dtype=np.intp)
        self._claimed = np.zeros(capacity, dtype=bool)
        self._claims: dict[int, FloatArray] = {}
        """Each claiming slot's fooling genes (D,), until the next call confirms it."""

    @property
    def has_room(self) -> bool:
        return not self._active.all()

    @property
    def busy(self) -> bool:
        return bool(self._active.any())

    def add(self, job: Job, *, near: FloatArray | None = None) -> None:
        """Start attacking ``job`` in a free slot; ``near``: an adversarial image of it
        found at a larger th, for the strategy to start from (`Strategy.start`)."""
        slot = int(np.argmin(self._active))
        assert not self._active[slot], "add() needs a free slot"
        self._jobs[slot] = job
        self._active[slot] = True
        self._images[slot] = job.image
        self._originals.keys[slot] = job.key
        self._labels[slot] = job.sample.label
        self._steps[slot] = 0
        self._queries[slot] = 0
        rng = np.random.default_rng([self.config.seed, job.sample.index, *self._rng_key])
        self._strategy.start(slot, job.image, rng, near=near)

    def propose(self) -> Proposal:
        """The next step's candidates of every image in flight but those whose claim
        waits to be confirmed (`busy` must hold; the proposal may be empty)."""
        slots = (self._active & ~self._claimed).nonzero()[0]
        genes = self._strategy.ask(slots) if len(slots) else np.empty((0, self.encoding.dimension))
        popsize = len(genes) // max(1, len(slots))
        owners = slots if popsize == 1 else np.repeat(slots, popsize)
        return Proposal(self.encoding, self._originals, owners, genes, slots)

    def claims(self) -> Claims:
        """The successes claimed in the last step, to be scored alone (may be empty)."""
        slots = self._claimed.nonzero()[0]
        genes = np.empty((len(slots), self.encoding.dimension))
        for row, slot in enumerate(slots.tolist()):
            genes[row] = self._claims.pop(slot)
        return Claims(self.encoding, self._originals, slots, genes)

    def settle(self, proposal: Proposal, scores: FloatArray) -> list[ImageResult]:
        """Take the model's outputs (M, K) on ``proposal``; the results of the images
        out of budget, whose slots are free again. An image with a fooling candidate
        claims its best one (the lowest loss among those that fool), confirmed or not
        by `settle_claims` after the next call."""
        if not len(proposal.slots):
            return []
        config = self.config
        slots, genes = proposal.slots, proposal.genes
        popsize = len(genes) // len(slots)
        labels = self._labels[proposal.owners]
        fitness = loss(config.loss, scores, labels, config.target, config.outputs)
        success = succeeded(scores.argmax(axis=1), labels, config.target)
        self._strategy.tell(slots, fitness)
        self._steps[slots] += 1
        self._queries[slots] += popsize
        by_slot = success.reshape(len(slots), popsize)
        fooled = np.logical_or.reduce(by_slot, axis=1)
        if fooled.any():
            self._claim(slots, genes, fitness, by_slot, fooled)
        exhausted = ~fooled & (self._steps[slots] >= config.max_iter)
        return [self._unfooled(slot) for slot in slots[exhausted].tolist()]

    def _claim(
        self,
        slots: IntArray,
        genes: FloatArray,
        fitness: FloatArray,
        success: BoolArray,
        fooled: BoolArray,
    ) -> None:
        """Each ``fooled`` slot claims its best fooling candidate of the step; ``success``
        is (L, popsize), slot by slot."""
        popsize = success.shape[1]
        fooling = np.where(success, fitness.reshape(success.shape), np.inf)
        for position in fooled.nonzero()[0].tolist():
            best = int(fooling[position].argmin())
            self._claims[int(slots[position])] = genes[position * popsize + best].copy()
        self._claimed[slots[fooled]] = True

    def settle_claims(self, claims: Claims, scores: FloatArray) -> list[ImageResult]:
        """Take the model's outputs (C, K) on ``claims``, each scored alone (a query more
        for its image): the results of the images whose claim fools the model, and of
        those out of budget; an image whose claim does not fool alone searches on."""
        if not claims.count:
            return []
        config = self.config
        labels = self._labels[claims.owners]
        predicted = np.argmax(scores, axis=1)
        confirmed = succeeded(predicted, labels, config.target)
        p_true = true_probability(scores, labels, config.outputs)
        self._queries[claims.owners] += 1
        self._claimed[claims.owners] = False
        finished = []
        for position, slot in enumerate(claims.owners.tolist()):
            if confirmed[position]:
                job = self._jobs[slot]
                assert job is not None, "an occupied slot"
                finished.append(
                    self._adversarial(
                        job,
                        claims.genes[position],
                        float(p_true[position]),
                        int(predicted[position]),
                        queries=int(self._queries[slot]),
                        generations=int(self._steps[slot]),
                    )
                )
                self._free(slot)
            elif self._steps[slot] >= config.max_iter:
                finished.append(self._unfooled(slot))
        return finished

    def _unfooled(self, slot: int) -> ImageResult:
        """The result of the image in ``slot``, not fooled within its budget; frees it."""
        job = self._jobs[slot]
        assert job is not None, "an occupied slot"
        result = unchanged(
            job.sample,
            job.p_true_before,
            job.label_before,
            attacked=True,
            queries=int(self._queries[slot]),
            generations=int(self._steps[slot]),
        )
        self._free(slot)
        return result

    def _free(self, slot: int) -> None:
        self._jobs[slot] = None
        self._originals.keys[slot] = -1
        self._active[slot] = False

    def _adversarial(
        self,
        job: Job,
        genes: FloatArray,
        p_true: float,
        predicted: int,
        *,
        queries: int,
        generations: int,
    ) -> ImageResult:
        decoded = np.empty((1, *job.image.shape), dtype=np.float32)
        self.encoding.decode_into(decoded, job.image[None], np.zeros(1, dtype=np.intp), genes[None])
        adversarial = decoded[0].astype(np.uint8)
        l0, l2, linf = distances(job.image, adversarial)
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


def image_shape(sample: Sample) -> Shape:
    shape = sample.image.shape
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise ValueError(
            f"expected an (H, W, C) image with C in (1, 3), got shape {shape} "
            f"for image {sample.index}"
        )
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _checked_pixels(sample: Sample, shape: Shape) -> npt.NDArray[np.float32]:
    """The image as float32, after checking its shape and that it holds integers in 0-255."""
    if image_shape(sample) != shape:
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


def unchanged(
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
