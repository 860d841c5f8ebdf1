"""Step ``main``: train once, attack every (th, es), evaluate each, compare them."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import mlflow

from pixel_threshold import artifacts, report, tracking
from pixel_threshold.attack.config import STRATEGIES
from pixel_threshold.steps.attack import attack_config, run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.params import AttackParams, EvaluateParams, MainParams, TrainParams
from pixel_threshold.steps.train import run_train

COMPARISON = "comparison.csv"
SUCCESS_PLOT = "success_vs_th.png"
COMPARED = (
    "success_rate",
    "success_rate_ci_low",
    "success_rate_ci_high",
    "clean_accuracy",
    "adversarial_accuracy",
    "mean_queries",
    "median_queries_successful",
    "l_0_norm_mean",
    "l_infinity_norm_mean",
    "attack_seconds",
)
"""Attack-run metrics copied into the comparison table."""


def parse_ints(name: str, text: str) -> list[int]:
    """``"1,3,5"`` -> ``[1, 3, 5]``; raises ValueError naming the parameter ``name``."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"expected comma-separated integers in {name}, got {name}={text!r}"
        ) from None
    return values


def run_main(params: MainParams) -> str:
    """Child runs train, then attack and evaluate per (th, es); log ``comparison.csv``
    and ``success_vs_th.png`` to this parent run; return its id."""
    with tracking.step_run("main") as run:
        tracking.log_params(params)
        grid = [
            AttackParams(
                attack_type=params.attack_type,
                th=th,
                es=es,
                max_iter=params.max_iter,
                popsize=params.popsize,
                limit=params.limit,
                seed=params.seed,
                data=params.dataset,
            )
            for th in parse_ints("th_values", params.th_values)
            for es in parse_ints("es_values", params.es_values)
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
        rows: list[dict[str, Any]] = []
        for attack_params in grid:
            attack_run_id = run_attack(dataclasses.replace(attack_params, model=model))
            evaluate_run_id = run_evaluate(EvaluateParams(attack_run_id=attack_run_id))
            logged = mlflow.get_run(attack_run_id).data.metrics
            rows.append(
                {
                    "th": attack_params.th,
                    "es": attack_params.es,
                    "strategy": STRATEGIES[attack_params.es],
                    **{name: logged[name] for name in COMPARED},
                    "attack_run_id": attack_run_id,
                    "evaluate_run_id": evaluate_run_id,
                }
            )
        with tempfile.TemporaryDirectory() as folder:
            artifacts.write_table(
                Path(folder) / COMPARISON, {name: [row[name] for row in rows] for name in rows[0]}
            )
            report.success_plot(Path(folder) / SUCCESS_PLOT, rows)
            mlflow.log_artifacts(folder)
        mlflow.set_tag(tracking.TRAIN_RUN_TAG, train_run_id)
        print(summary(rows))
        run_id: str = run.info.run_id
        return run_id


def summary(rows: list[dict[str, Any]]) -> str:
    """The comparison as a short text table: success rate and its 95% interval per (th, es)."""
    header = f"{'th':>4} {'es':>3}  {'success rate [95% CI]':<24}"
    lines = [header + f"{'adv. accuracy':>14}{'seconds':>9}"]
    for row in rows:
        interval = f"[{row['success_rate_ci_low']:.2f}, {row['success_rate_ci_high']:.2f}]"
        lines.append(
            f"{row['th']:>4} {row['es']:>3}  {row['success_rate']:<6.2f}{interval:<18}"
            f"{row['adversarial_accuracy']:>14.2f}{row['attack_seconds']:>9.1f}"
        )
    return "\n".join(lines)
