"""The attack's hyper-parameters, checked once, before any work."""

from __future__ import annotations

from dataclasses import dataclass

from pixel_threshold.attack.de import MIN_POPSIZE

ATTACK_TYPES = ("pixel", "threshold")
STRATEGIES = {0: "cma-es", 1: "differential evolution"}


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """Hyper-parameters of one attack run.

    attack_type: "pixel" (change at most ``th`` pixels) or "threshold" (move every
    value by at most ``th`` on the 0-255 scale). es: 0 = CMA-ES, 1 = differential
    evolution. max_iter: generations per image, each of ``popsize`` queries (DE's
    initial population is its first generation, so both strategies spend at most
    ``max_iter * popsize`` queries). target: a class to reach, or None for
    untargeted. batch_size: rows per model call. seed: makes the run reproducible.
    """

    attack_type: str = "pixel"
    th: int = 1
    es: int = 1
    max_iter: int = 100
    popsize: int = 400
    target: int | None = None
    batch_size: int = 400
    seed: int = 0

    def __post_init__(self) -> None:
        if self.attack_type not in ATTACK_TYPES:
            raise ValueError(f"expected attack_type in {ATTACK_TYPES}, got {self.attack_type!r}")
        if self.th < 1:
            raise ValueError(f"expected th >= 1, got th={self.th}")
        if self.es not in STRATEGIES:
            raise ValueError(
                f"expected es 0 (CMA-ES) or 1 (differential evolution), got es={self.es}"
            )
        if self.max_iter < 1:
            raise ValueError(f"expected max_iter >= 1, got max_iter={self.max_iter}")
        min_popsize = MIN_POPSIZE if self.es == 1 else 2
        if self.popsize < min_popsize:
            raise ValueError(
                f"expected popsize >= {min_popsize} for {STRATEGIES[self.es]}, "
                f"got popsize={self.popsize}"
            )
        if self.target is not None and self.target < 0:
            raise ValueError(f"expected target >= 0 or None (untargeted), got target={self.target}")
        if self.batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got batch_size={self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"expected seed >= 0, got seed={self.seed}")
