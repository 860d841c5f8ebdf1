"""The attack's hyper-parameters, checked once, before any work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pixel_threshold.attack.cmaes import MIN_POPSIZE as CMAES_MIN_POPSIZE
from pixel_threshold.attack.de import MIN_POPSIZE as DE_MIN_POPSIZE
from pixel_threshold.attack.encodings import PIXEL_LEVELS, check_th
from pixel_threshold.attack.losses import LOSSES

ATTACK_TYPES = ("pixel", "threshold")
STRATEGIES = {0: "cma-es", 1: "differential evolution", 2: "random search"}
DEFAULT_BUDGETS = {0: (100, 400), 1: (100, 400), 2: (10_000, 1)}
"""Each strategy's (max_iter, popsize) when none is given: the paper's 100 generations
of 400 for CMA-ES and DE; 10,000 single-query steps for the random search (the budget
of the Sparse-RS and Square Attack papers)."""
MIN_POPSIZES = {0: CMAES_MIN_POPSIZE, 1: DE_MIN_POPSIZE, 2: 1}
SMALLEST_TH = -1
"""``th`` that asks for each image's smallest th in ``1..th_max`` (`smallest`)."""


def resolved_th_max(attack_type: str, th_max: int, shape: tuple[int, int, int]) -> int:
    """The largest th a ``th=-1`` attack tries on (H, W, C) images: ``th_max``, or with 0
    the whole range: 255 for the threshold attack, min(255, H * W) for the pixel attack.
    Raises ValueError naming a ``th_max`` outside that range."""
    height, width, _ = shape
    largest = (
        PIXEL_LEVELS - 1 if attack_type == "threshold" else min(PIXEL_LEVELS - 1, height * width)
    )
    if not 0 <= th_max <= largest:
        raise ValueError(
            f"expected 0 <= th_max <= {largest} for the {attack_type} attack on "
            f"{height}x{width} images (0: {largest}), got th_max={th_max}"
        )
    return th_max or largest


def resolved_budget(es: int, max_iter: int, popsize: int) -> tuple[int, int]:
    """The (max_iter, popsize) an attack with strategy ``es`` runs: a 0 reads as that
    strategy's default (`DEFAULT_BUDGETS`), each on its own; an unknown ``es`` is left
    unresolved for `AttackConfig` to refuse. Raises ValueError naming a negative one."""
    for name, value in (("max_iter", max_iter), ("popsize", popsize)):
        if value < 0:
            raise ValueError(
                f"expected {name} >= 1 (0: the strategy's default), got {name}={value}"
            )
    default_max_iter, default_popsize = DEFAULT_BUDGETS.get(es, (max_iter, popsize))
    return max_iter or default_max_iter, popsize or default_popsize


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """Hyper-parameters of one attack run.

    attack_type: "pixel" (change at most ``th`` pixels) or "threshold" (move every
    value by at most ``th`` on the 0-255 scale); ``th=-1`` finds each image's smallest
    th in ``1..th_max`` (0: the whole range, `resolved_th_max`). es: 0 = CMA-ES, 1 = differential
    evolution, 2 = random search (Sparse-RS-style for pixel, Square-style for
    threshold). loss: "margin" or "probability" (see `losses`). max_iter: steps per
    image, each of ``popsize`` queries (DE's initial population is its first step, so
    every strategy spends at most ``max_iter * popsize`` queries). target: a class to
    reach, or None for untargeted. batch_size: rows per model call. seed: makes the run
    reproducible.
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

    def __post_init__(self) -> None:
        if self.attack_type not in ATTACK_TYPES:
            raise ValueError(f"expected attack_type in {ATTACK_TYPES}, got {self.attack_type!r}")
        if self.th < 1 and self.th != SMALLEST_TH:
            raise ValueError(
                f"expected th >= 1 or th={SMALLEST_TH} (each image's smallest), got th={self.th}"
            )
        if not 0 <= self.th_max < PIXEL_LEVELS:
            raise ValueError(
                f"expected 0 <= th_max <= {PIXEL_LEVELS - 1} (0: the whole range), "
                f"got th_max={self.th_max}"
            )
        if self.es not in STRATEGIES:
            raise ValueError(
                "expected es 0 (CMA-ES), 1 (differential evolution) or 2 (random search), "
                f"got es={self.es}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"expected loss in {LOSSES}, got loss={self.loss!r}")
        if self.max_iter < 1:
            raise ValueError(f"expected max_iter >= 1, got max_iter={self.max_iter}")
        if self.popsize < MIN_POPSIZES[self.es]:
            raise ValueError(
                f"expected popsize >= {MIN_POPSIZES[self.es]} for {STRATEGIES[self.es]}, "
                f"got popsize={self.popsize}"
            )
        if self.target is not None and self.target < 0:
            raise ValueError(f"expected target >= 0 or None (untargeted), got target={self.target}")
        if self.batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got batch_size={self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"expected seed >= 0, got seed={self.seed}")

    def fitted(self, shape: tuple[int, int, int]) -> AttackConfig:
        """This configuration on (H, W, C) images: ``th`` checked against them, or with
        ``th=-1`` ``th_max`` resolved (`resolved_th_max`). Raises ValueError naming the
        parameter that does not fit."""
        if self.th == SMALLEST_TH:
            th_max = resolved_th_max(self.attack_type, self.th_max, shape)
            return dataclasses.replace(self, th_max=th_max)
        check_th(self.attack_type, self.th, shape)
        return self

    def check_classes(self, classes: int) -> None:
        """Raise ValueError, naming ``target``, if the target is not one of a model's
        ``classes``."""
        if self.target is not None and self.target >= classes:
            raise ValueError(
                f"expected target in [0, {classes}) (the model's classes), got target={self.target}"
            )
