"""The attack's hyper-parameters, checked once, before any work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pixel_threshold.attack.encodings import encoding_type
from pixel_threshold.attack.losses import LOSSES, OUTPUTS
from pixel_threshold.attack.strategies import STRATEGIES, strategy
from pixel_threshold.attack.types import PIXEL_LEVELS

SMALLEST_TH = -1
"""``th`` that asks for each image's smallest th in ``1..th_max`` (`smallest`)."""


def resolved_th_max(attack_type: str, th_max: int, shape: tuple[int, int, int]) -> int:
    """The largest th a ``th=-1`` attack tries on (H, W, C) images: ``th_max``, or with 0
    the whole range (the encoding's ``largest_th_max``: 255 for the threshold attack,
    min(255, H * W) for the pixel attack). Raises ValueError naming a ``th_max`` outside
    that range."""
    height, width, _ = shape
    largest = encoding_type(attack_type).largest_th_max(shape)
    if not 0 <= th_max <= largest:
        raise ValueError(
            f"expected 0 <= th_max <= {largest} for the {attack_type} attack on "
            f"{height}x{width} images (0: {largest}), got th_max={th_max}"
        )
    return th_max or largest


def resolved_budget(es: int, max_iter: int, popsize: int) -> tuple[int, int]:
    """The (max_iter, popsize) an attack with strategy ``es`` runs: a 0 reads as that
    strategy's default (its record in `strategies.STRATEGIES`), each on its own; an
    unknown ``es`` is left unresolved for `AttackConfig` to refuse. Raises ValueError
    naming a negative one."""
    check_budget(max_iter, popsize)
    record = STRATEGIES.get(es)
    if record is None:
        return max_iter, popsize
    return max_iter or record.max_iter, popsize or record.popsize


def check_budget(max_iter: int, popsize: int) -> None:
    """Raise ValueError naming ``max_iter`` or ``popsize`` if negative (0: the
    strategy's default)."""
    for name, value in (("max_iter", max_iter), ("popsize", popsize)):
        if value < 0:
            raise ValueError(
                f"expected {name} >= 1 (0: the strategy's default), got {name}={value}"
            )


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """Hyper-parameters of one attack run.

    attack_type: "pixel" (change at most ``th`` pixels) or "threshold" (move every
    value by at most ``th`` on the 0-255 scale); ``th=-1`` finds each image's smallest
    th in ``1..th_max`` (0: the whole range, `resolved_th_max`). es: a strategy of
    `strategies.STRATEGIES` (0 CMA-ES, 1 differential evolution, 2 random search).
    loss: "margin", "probability" or "cross_entropy" (see `losses`). max_iter: steps per
    image, each of ``popsize`` queries (DE's initial population is its first step, so
    every strategy spends at most ``max_iter * popsize`` queries). target: a class to
    reach, or None for untargeted. batch_size: rows per model call. seed: makes the run
    reproducible. outputs: what the model's scores are (`losses.OUTPUTS`), known once
    the model is: the loss is computed from them as they are.
    """

    attack_type: str = "pixel"
    th: int = 1
    th_max: int = 0
    es: int = 1
    loss: str = "margin"
    max_iter: int = 100
    popsize: int = 400
    target: int | None = None
    batch_size: int = 400
    seed: int = 0
    outputs: str = "probabilities"

    def __post_init__(self) -> None:
        encoding_type(self.attack_type)
        if self.th < 1 and self.th != SMALLEST_TH:
            raise ValueError(
                f"expected th >= 1 or th={SMALLEST_TH} (each image's smallest), got th={self.th}"
            )
        if not 0 <= self.th_max < PIXEL_LEVELS:
            raise ValueError(
                f"expected 0 <= th_max <= {PIXEL_LEVELS - 1} (0: the whole range), "
                f"got th_max={self.th_max}"
            )
        record = strategy(self.es)
        if self.loss not in LOSSES:
            raise ValueError(f"expected loss in {LOSSES}, got loss={self.loss!r}")
        if self.max_iter < 1:
            raise ValueError(f"expected max_iter >= 1, got max_iter={self.max_iter}")
        if self.popsize < record.min_popsize:
            raise ValueError(
                f"expected popsize >= {record.min_popsize} for {record.name}, "
                f"got popsize={self.popsize}"
            )
        if self.target is not None and self.target < 0:
            raise ValueError(f"expected target >= 0 or None (untargeted), got target={self.target}")
        if self.batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got batch_size={self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"expected seed >= 0, got seed={self.seed}")
        if self.outputs not in OUTPUTS:
            raise ValueError(f"expected outputs in {OUTPUTS}, got outputs={self.outputs!r}")

    def fitted(self, shape: tuple[int, int, int]) -> AttackConfig:
        """This configuration on (H, W, C) images: ``th`` checked against them, or with
        ``th=-1`` ``th_max`` resolved (`resolved_th_max`). Raises ValueError naming the
        parameter that does not fit."""
        if self.th == SMALLEST_TH:
            th_max = resolved_th_max(self.attack_type, self.th_max, shape)
            return dataclasses.replace(self, th_max=th_max)
        encoding_type(self.attack_type).check_th(self.th, shape)
        return self

    def check_classes(self, classes: int) -> None:
        """Raise ValueError, naming ``target``, if the target is not one of a model's
        ``classes``."""
        if self.target is not None and self.target >= classes:
            raise ValueError(
                f"expected target in [0, {classes}) (the model's classes), got target={self.target}"
            )
