"""Step ``main``: train once, attack every (attack type, th, es), evaluate each, compare
them.

Every attack gets the same query budget per image: ``max_iter x popsize``, spent by
the random search (``es=2``) one query a step.
"""

from __future__ import annotations

import dataclasses

import mlflow

from pixel_threshold import tracking
from pixel_threshold.attack import resolved_budget
from pixel_threshold.attack.config import ATTACK_TYPES
from pixel_threshold.steps import compare, naming
from pixel_threshold.steps.attack import attack_config, run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.params import AttackParams, EvaluateParams, MainParams, TrainParams
from pixel_threshold.steps.train import run_train

DIFFERENTIAL_EVOLUTION = 1
RANDOM_SEARCH = 2


def parse_ints(name: str, text: str) -> list[int]:
    """``"1,3,5"`` -> ``[1, 3, 5]``; raises ValueError naming the parameter ``name``."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"expected comma-separated integers in {name}, got {name}={text!r}"
        ) from None
    return values


def parse_attack_types(text: str) -> list[str]:
    """``"pixel,threshold"`` -> ``["pixel", "threshold"]``; raises ValueError naming
    ``attack_type`` when a part is not an attack type."""
    types = [part.strip() for part in text.split(",")]
    if not set(types) <= set(ATTACK_TYPES):
        raise ValueError(
            f"expected attack_type in {ATTACK_TYPES} or both comma-separated, "
            f"got attack_type={text!r}"
        )
    return types


def budget(params: MainParams, es: int) -> tuple[int, int]:
    """An attack's ``(max_iter, popsize)`` in ``main``, which compares strategies
    at an equal query budget: the population strategies get ``params``' own, the random
    search (``es=2``) as many single-query steps (``max_iter x popsize`` steps of 1)."""
    if es != RANDOM_SEARCH:
        return params.max_iter, params.popsize
    max_iter, popsize = resolved_budget(DIFFERENTIAL_EVOLUTION, params.max_iter, params.popsize)
    return max_iter * popsize, 1


def run_main(params: MainParams) -> str:
    """Child runs train, then attack and evaluate per (attack type, th, es), every
    attack with ``th_max``; log the comparison of the attack runs (``steps.compare``)
    to this parent run; return its id.

    The comparison goes to the parent itself, not to a ``compare`` child: it is the
    result of the whole grid, and the parent is the row the runs table shows first.
    """
    with tracking.step_run("main") as run:
        tracking.log_params(params)
        naming.name_run(naming.main_run_name(params))
        grid = [
            AttackParams(
                attack_type=attack_type,
                th=th,
                th_max=params.th_max,
                es=es,
                loss=params.loss,
                max_iter=max_iter,
                popsize=popsize,
                limit=params.limit,
                seed=params.seed,
                data=params.dataset,
            )
            for attack_type in parse_attack_types(params.attack_type)
            for th in parse_ints("th_values", params.th_values)
            for es in parse_ints("es_values", params.es_values)
            for max_iter, popsize in [budget(params, es)]
        ]
        for attack_params in grid:
            attack_config(attack_params)
        train_run_id = run_train(
            TrainParams(
                epochs=params.epochs,
                seed=params.seed,
                dataset=params.dataset,
                architecture=params.architecture,
                weights=params.weights,
            )
        )
        model = f"runs:/{train_run_id}/{tracking.MODEL_ARTIFACT}"
        attack_runs = []
        for attack_params in grid:
            attack_run_id = run_attack(dataclasses.replace(attack_params, model=model))
            run_evaluate(EvaluateParams(attack_run_id=attack_run_id))
            attack_runs.append(mlflow.get_run(attack_run_id))
        compare.log_comparison(attack_runs)
        mlflow.set_tag(tracking.TRAIN_RUN_TAG, train_run_id)
        run_id: str = run.info.run_id
        return run_id
