"""Adding a strategy takes one module and one record: a toy strategy (`toy_strategy`)
registered here runs through the attack step in-process, its checks, help, budget, run
name and guarantees coming from its record, with nothing else edited."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pixel_threshold.attack import (
    STRATEGIES,
    AttackConfig,
    PixelThresholdAttack,
    Sample,
    strategies,
)
from pixel_threshold.models import registry
from pixel_threshold.runs.params import AttackParams
from pixel_threshold.steps.attack import run_attack
from tests.tracking_store import sqlite_experiment

from . import toy_strategy
from .conftest import LinearSoftmax

TOY = toy_strategy.RECORD.es


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STRATEGIES, TOY, toy_strategy.RECORD)


def test_an_unregistered_strategy_is_refused_naming_every_registered_one() -> None:
    with pytest.raises(ValueError, match=r"or 2 \(random search\), got es=3"):
        AttackConfig(es=TOY)


@pytest.mark.usefixtures("registered")
def test_the_record_makes_its_checks_and_help() -> None:
    assert strategies.listed().endswith("2 (random search) or 3 (uniform sampling)")
    assert "3 = uniform sampling" in strategies.help_text()
    assert "20 for es 3" in strategies.defaults_text("max_iter")
    with pytest.raises(ValueError, match="popsize >= 1 for uniform sampling, got popsize=0"):
        AttackConfig(es=TOY, popsize=0)


@pytest.mark.usefixtures("registered")
def test_the_toy_keeps_the_core_s_guarantees(gray_images: np.ndarray) -> None:
    """Exact queries, early stop, the budget, the same result whatever the batch."""
    model = LinearSoftmax((8, 8, 1), 10)
    labels = model.labels(gray_images)
    samples = [
        Sample(i, image, int(label))
        for i, (image, label) in enumerate(zip(gray_images, labels, strict=True))
    ]
    config = AttackConfig(th=2, es=TOY, max_iter=6, popsize=5, batch_size=7, seed=1)
    model.calls.clear()
    results = sorted(PixelThresholdAttack(config).run(samples, model), key=lambda r: r.index)
    assert sum(model.calls) == len(samples) + sum(r.queries for r in results)
    assert all(r.queries == 5 * r.generations + r.success <= 31 and r.l0 <= 2 for r in results)
    assert any(r.success for r in results) and not all(r.success for r in results)
    again = PixelThresholdAttack(dataclasses.replace(config, batch_size=64)).run(samples, model)
    assert [r.adversarial.tobytes() for r in sorted(again, key=lambda r: r.index)] == [
        r.adversarial.tobytes() for r in results
    ]


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    with sqlite_experiment(tmp_path / "tracking", "new-strategy") as experiment_id:
        yield experiment_id


@pytest.mark.usefixtures("registered")
def test_the_attack_step_runs_the_toy_at_its_default_budget(
    experiment: str, digits_weights: Path, tmp_path: Path
) -> None:
    model = registry.build_model("small_cnn", (8, 8, 1), 10, weights=str(digits_weights))
    model.save(tmp_path / "digits.keras")
    run_id = run_attack(AttackParams(model=str(tmp_path / "digits.keras"), th=3, es=TOY, limit=10))
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("attack pixel th=3 es=3 uniform sampling 20x10 ")
    assert run.data.metrics["query_budget"] == 200
    assert run.data.metrics["images_attacked"] > 0
    assert 0 <= run.data.metrics["success_rate"] <= 1
