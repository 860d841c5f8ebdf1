"""The search strategies (``es``), one record each, in one registry.

A record says everything the rest of the project needs of a strategy: its number and
names, its default budget, its smallest population, how it is built and the paper it
follows. The configuration's checks and their error text, the ``es`` help of the entry
points, run names, ``compare``'s table, ``main``'s equal budgets, the README's table
and the benchmarks' lists all come from `STRATEGIES` (or are held to it by a test).

To add a strategy: a module with a class that keeps the `strategy.Strategy` contract,
and a `StrategyRecord` in `STRATEGIES` whose ``build`` makes it
(docs/architecture.md, "How to add a strategy").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pixel_threshold.attack import cmaes, de
from pixel_threshold.attack.encodings import Encoding
from pixel_threshold.attack.strategy import PerImage, Strategy

PAPER_BUDGET = (100, 400)
"""The paper's (max_iter, popsize): 100 generations of 400 candidates an image."""


class Builder(Protocol):
    def __call__(
        self, encoding: Encoding, *, capacity: int, popsize: int, max_iter: int
    ) -> Strategy:
        """A strategy for ``capacity`` images in flight on ``encoding``'s genes, asking
        ``popsize`` rows an image a step, for at most ``max_iter`` steps an image."""


@dataclass(frozen=True, kw_only=True)
class StrategyRecord:
    """One strategy: ``es``, its names, default budget, smallest population, builder and
    paper. Every step of an image scores ``popsize`` candidates, one query each."""

    es: int
    name: str
    """In run names and ``compare``'s table: ``differential evolution``."""
    label: str
    """In errors and help: ``differential evolution``, ``CMA-ES``."""
    detail: str = ""
    """What else help and the README say of it: ``the paper's``."""
    max_iter: int
    """Default steps an image."""
    popsize: int
    """Default candidates (queries) an image a step."""
    min_popsize: int
    build: Builder
    paper: str

    def equal_budget(self, max_iter: int, popsize: int) -> tuple[int, int]:
        """This strategy's ``(max_iter, popsize)`` for the query budget of ``max_iter``
        steps of ``popsize`` (``main`` and the benchmarks compare strategies at equal
        budgets; a 0 reads as `PAPER_BUDGET`'s): the same for a population strategy; for
        one whose default step is a single query, ``max_iter * popsize`` steps of one."""
        if self.popsize == 1:
            max_iter, popsize = max_iter or PAPER_BUDGET[0], popsize or PAPER_BUDGET[1]
            return max_iter * popsize, 1
        return max_iter, popsize

    @property
    def described(self) -> str:
        """``2 = random search (Sparse-RS-style for pixel, Square-style for threshold)``."""
        return f"{self.es} = {self.label}" + (f" ({self.detail})" if self.detail else "")


def _cmaes(encoding: Encoding, *, capacity: int, popsize: int, max_iter: int) -> Strategy:
    return cmaes.CMAES(
        encoding.initial_guess,
        encoding.sigma0,
        encoding.lower,
        encoding.upper,
        capacity=capacity,
        popsize=popsize,
    )


def _differential_evolution(
    encoding: Encoding, *, capacity: int, popsize: int, max_iter: int
) -> Strategy:
    return PerImage(
        capacity,
        lambda image, rng: de.DifferentialEvolution(
            encoding.lower, encoding.upper, popsize=popsize, rng=rng
        ),
    )


def _random_search(encoding: Encoding, *, capacity: int, popsize: int, max_iter: int) -> Strategy:
    return encoding.random_search(capacity=capacity, popsize=popsize, max_iter=max_iter)


STRATEGIES: dict[int, StrategyRecord] = {
    record.es: record
    for record in (
        StrategyRecord(
            es=0,
            name="cma-es",
            label="CMA-ES",
            max_iter=PAPER_BUDGET[0],
            popsize=PAPER_BUDGET[1],
            min_popsize=cmaes.MIN_POPSIZE,
            build=_cmaes,
            paper="Hansen, The CMA Evolution Strategy: A Tutorial (arXiv 1604.00772), batched "
            "over images, sampled with the covariance's Cholesky factor (Krause, Arbonès & "
            "Igel, NeurIPS 2016); x0 and sigma0 as Kotyan & Vargas (arXiv 1906.06026)",
        ),
        StrategyRecord(
            es=1,
            name="differential evolution",
            label="differential evolution",
            detail="the paper's",
            max_iter=PAPER_BUDGET[0],
            popsize=PAPER_BUDGET[1],
            min_popsize=de.MIN_POPSIZE,
            build=_differential_evolution,
            paper="Storn & Price 1997, DE/best/1/bin with CR = 1 as in the one-pixel attack "
            "(Su et al. 2017) and Kotyan & Vargas (arXiv 1906.06026)",
        ),
        StrategyRecord(
            es=2,
            name="random search",
            label="random search",
            detail="Sparse-RS-style for pixel, Square-style for threshold",
            max_iter=10_000,
            popsize=1,
            min_popsize=1,
            build=_random_search,
            paper="Croce et al., Sparse-RS (AAAI 2022) for Pixel; Andriushchenko et al., "
            "Square Attack (ECCV 2020) for Threshold",
        ),
    )
}
"""Every strategy, by ``es``: the one list."""


def strategy(es: int) -> StrategyRecord:
    """The record of ``es``; raises ValueError, listing every strategy, if there is none."""
    if es not in STRATEGIES:
        raise ValueError(f"expected es {listed()}, got es={es}")
    return STRATEGIES[es]


def strategy_name(es: int) -> str:
    """The name of ``es`` (run names, tables); empty for a strategy not registered here
    (a run logged by another version)."""
    record = STRATEGIES.get(es)
    return "" if record is None else record.name


def listed() -> str:
    """``0 (CMA-ES), 1 (differential evolution) or 2 (random search)``."""
    items = [f"{record.es} ({record.label})" for record in STRATEGIES.values()]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def help_text() -> str:
    """The ``es`` option's help: every strategy described."""
    return "search strategy: " + ", ".join(record.described for record in STRATEGIES.values())


def defaults_text(budget: str) -> str:
    """Each strategy's default ``budget`` (``max_iter`` or ``popsize``), strategies that
    share it together: ``100 for es 0 and 1, 10,000 for es 2``."""
    by_value: dict[int, list[int]] = {}
    for record in STRATEGIES.values():
        by_value.setdefault(getattr(record, budget), []).append(record.es)
    return ", ".join(
        f"{value:,} for es {_and(strategies)}" for value, strategies in by_value.items()
    )


def _and(numbers: list[int]) -> str:
    text = [str(number) for number in numbers]
    return text[0] if len(text) == 1 else f"{', '.join(text[:-1])} and {text[-1]}"


def make_strategy(
    es: int, encoding: Encoding, *, capacity: int, popsize: int, max_iter: int
) -> Strategy:
    """The strategy ``es`` for ``capacity`` images in flight on ``encoding``'s genes."""
    return strategy(es).build(encoding, capacity=capacity, popsize=popsize, max_iter=max_iter)
