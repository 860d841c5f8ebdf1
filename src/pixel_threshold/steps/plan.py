"""What a step will do, from its parameters alone, checked before any work.

Nothing here imports TensorFlow or MLflow, so that the entry points (`cli.command`)
refuse a bad parameter within a second or two: the checks that need the model
(``th`` against its image size, ``target`` against its classes) run once it loads.
Every check raises ValueError naming the parameter and its value; the steps run the
same checks again, so that in-process calls (``main``, tests) are held to them too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pixel_threshold.attack.config import AttackConfig, check_budget, resolved_budget
from pixel_threshold.attack.encodings import ATTACK_TYPES
from pixel_threshold.attack.losses import OUTPUTS
from pixel_threshold.attack.strategies import strategy
from pixel_threshold.data import datasets
from pixel_threshold.data.folders import RESIZES
from pixel_threshold.models.options import ModelOptions
from pixel_threshold.runs.params import AttackParams, MainParams, ModelCall, TrainParams

UNTARGETED = -1


def attack_config(params: AttackParams) -> AttackConfig:
    """The core's configuration, with ``max_iter`` and ``popsize`` resolved (0: the
    strategy's default); raises ValueError naming any bad parameter."""
    if params.limit < 1:
        raise ValueError(f"expected limit >= 1, got limit={params.limit}")
    if params.target < UNTARGETED:
        raise ValueError(
            f"expected target >= 0 or {UNTARGETED} (untargeted), got target={params.target}"
        )
    model_options(params)
    if params.outputs and params.outputs not in OUTPUTS:
        raise ValueError(
            f"expected outputs in {OUTPUTS} or '' (detected), got outputs={params.outputs!r}"
        )
    if params.shard_size < 1:
        raise ValueError(f"expected shard_size >= 1, got shard_size={params.shard_size}")
    if params.resize not in RESIZES:
        raise ValueError(f"expected resize in {RESIZES}, got resize={params.resize!r}")
    if not params.max_hours >= 0:
        raise ValueError(f"expected max_hours >= 0 (0: no limit), got max_hours={params.max_hours}")
    max_iter, popsize = resolved_budget(params.es, params.max_iter, params.popsize)
    return AttackConfig(
        attack_type=params.attack_type,
        th=params.th,
        th_max=params.th_max,
        es=params.es,
        loss=params.resolved_loss,
        max_iter=max_iter,
        popsize=popsize,
        target=params.target_class,
        batch_size=params.batch_size,
        seed=params.seed,
    )


def model_call(params: ModelCall) -> dict[str, Any]:
    """The `ModelCall` parameters of ``params``, by name (what ``main`` hands on to
    every attack)."""
    return {field.name: getattr(params, field.name) for field in dataclasses.fields(ModelCall)}


def model_options(params: AttackParams) -> ModelOptions:
    """How the attack calls its model, from ``params``; raises ValueError naming a bad
    ``input_range``, ``mean``, ``std``, ``layout`` or ``dtype``."""
    options = ModelOptions(
        batch_size=params.batch_size,
        input_range=params.input_range,
        mean=params.mean,
        std=params.std,
        layout=params.layout,
        dtype=params.dtype,
        device=params.device,
    )
    options.conventions()
    return options


def check_attack(params: AttackParams) -> AttackConfig:
    """Every check of an attack's parameters that needs no model: `attack_config`'s,
    and that ``data`` is a built-in dataset or a folder of class folders; returns the
    configuration."""
    config = attack_config(params)
    datasets.check_data(params.data)
    return config


def check_train(params: TrainParams) -> None:
    """The numbers of a train run: epochs (0 only with pretrained weights), batch size,
    learning rate."""
    if params.epochs < 0:
        raise ValueError(f"expected epochs >= 0, got epochs={params.epochs}")
    if params.epochs == 0 and params.weights == "none":
        raise ValueError(
            "expected epochs >= 1, or pretrained weights to wrap with epochs=0, got epochs=0 "
            "with weights=none"
        )
    if params.batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got batch_size={params.batch_size}")
    if not params.learning_rate > 0:
        raise ValueError(f"expected learning_rate > 0, got learning_rate={params.learning_rate}")


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
    at an equal query budget (`strategies.StrategyRecord.equal_budget`): the population
    strategies get ``params``' own, the random search (``es=2``) as many single-query
    steps (``max_iter x popsize`` steps of 1)."""
    check_budget(params.max_iter, params.popsize)
    return strategy(es).equal_budget(params.max_iter, params.popsize)


def main_train(params: MainParams) -> TrainParams:
    """The train run of ``main``, checked (`check_train`)."""
    train = TrainParams(
        epochs=params.epochs,
        seed=params.seed,
        dataset=params.dataset,
        architecture=params.architecture,
        weights=params.weights,
    )
    check_train(train)
    return train


def main_grid(params: MainParams) -> list[AttackParams]:
    """The attacks of ``main``, one per (attack type, th, es), each checked
    (`check_attack`) before anything is trained; the model is left to fill in."""
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
            model=params.model,
            **model_call(params),
        )
        for attack_type in parse_attack_types(params.attack_type)
        for th in parse_ints("th_values", params.th_values)
        for es in parse_ints("es_values", params.es_values)
        for max_iter, popsize in [budget(params, es)]
    ]
    for attack in grid:
        check_attack(attack)
    return grid


def check_main(params: MainParams) -> None:
    """Every check of ``main``'s train run (unless it attacks a ``model`` of its own)
    and attacks that needs no model."""
    if not params.model:
        main_train(params)
    main_grid(params)
