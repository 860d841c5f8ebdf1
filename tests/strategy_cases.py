"""The strategies the core tests run, taken from the registry (`STRATEGIES`): a strategy
added there is run by every test that takes its cases from here, with no test edited."""

from __future__ import annotations

from typing import Any

import pytest

from pixel_threshold.attack import STRATEGIES


def _id(es: int) -> str:
    return STRATEGIES[es].name.replace(" ", "-")


def each_strategy() -> list[Any]:
    """``es`` of every strategy, as pytest parameters named after it."""
    return [pytest.param(es, id=_id(es)) for es in STRATEGIES]


def budgets(max_iter: int, popsize: int) -> list[Any]:
    """``(es, max_iter, popsize)`` of every strategy at the query budget of ``max_iter``
    steps of ``popsize`` (`StrategyRecord.equal_budget`: one-query steps for the random
    search), as pytest parameters named after it."""
    return [
        pytest.param(es, *record.equal_budget(max_iter, popsize), id=_id(es))
        for es, record in STRATEGIES.items()
    ]


def step_sizes(popsize: int) -> list[Any]:
    """``(es, popsize)`` of every strategy: ``popsize`` candidates a step for a population
    strategy, one for a strategy of one-query steps."""
    return [
        pytest.param(es, record.equal_budget(1, popsize)[1], id=_id(es))
        for es, record in STRATEGIES.items()
    ]
