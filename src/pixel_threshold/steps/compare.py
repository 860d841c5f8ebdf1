"""Step ``compare``: attack runs side by side, as a table and as plots.

Logs to the active run ``comparison.csv`` and ``comparison.html`` (a row per attack
run), ``success_vs_th.png`` (one line per (es, model)) and ``queries.png`` (every
run's cumulative success rate against queries). Per-image queries and successes
come from each run's ``adv_testing.tar.gz`` manifest, downloaded through MLflow, so
a remote tracking server works the same way.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Run

from pixel_threshold import artifacts, tracking
from pixel_threshold.attack.config import STRATEGIES, resolved_budget
from pixel_threshold.report import curves, table
from pixel_threshold.steps import naming
from pixel_threshold.steps.params import CompareParams

COMPARISON = "comparison.csv"
COMPARISON_HTML = "comparison.html"
SUCCESS_PLOT = "success_vs_th.png"
QUERIES_PLOT = "queries.png"
COPIED = (
    "success_rate",
    "success_rate_ci_low",
    "success_rate_ci_high",
    "clean_accuracy",
    "adversarial_accuracy",
    "mean_queries",
    "median_queries_successful",
    "attack_seconds",
)
"""Attack-run metrics copied into the table as they are."""
DISTANCE_SUMMARIES = tuple(
    f"{name}_{summary}"
    for name in ("l_0_norm", "l_2_norm", "l_infinity_norm")
    for summary in ("mean", "median", "max")
)


def run_compare(params: CompareParams) -> str:
    """Compare the attack runs ``params`` names in a run of its own; return its id."""
    with tracking.step_run("compare") as run:
        tracking.log_params(params)
        runs = attack_runs(params, run.info.experiment_id)
        naming.name_run(f"compare {len(runs)} run{'' if len(runs) == 1 else 's'}")
        log_comparison(runs)
        run_id: str = run.info.run_id
        return run_id


def attack_runs(params: CompareParams, experiment_id: str) -> list[Run]:
    """The runs ``params.run_ids`` names, in that order, else every finished attack run
    of ``params.experiment_name`` (or of ``experiment_id``), oldest first."""
    if params.run_ids:
        return [_attack_run(run_id.strip()) for run_id in params.run_ids.split(",")]
    if params.experiment_name:
        experiment = mlflow.get_experiment_by_name(params.experiment_name)
        if experiment is None:
            raise ValueError(
                f"expected an existing experiment, got experiment_name={params.experiment_name!r}"
            )
        experiment_id = experiment.experiment_id
    runs: list[Run] = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.{tracking.STEP_TAG} = 'attack' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    if not runs:
        raise ValueError(
            f"expected finished attack runs in experiment {experiment_id}, found none: "
            "run the attack entry point first"
        )
    return runs


def log_comparison(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Log the table and plots of ``runs`` to the active run and print a summary;
    return the table's rows."""
    with tempfile.TemporaryDirectory() as folder:
        rows, query_curves = [], {}
        for run in runs:
            manifest = _manifest(run, Path(folder) / run.info.run_id)
            rows.append(comparison_row(run, manifest))
            query_curves[run.info.run_name or run.info.run_id] = curves.success_by_queries(
                np.array(manifest["queries"], dtype=np.int64),
                np.array(manifest["success"]) == "True",
                np.array(manifest["attacked"]) == "True",
            )
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        output = Path(folder) / "comparison"
        output.mkdir()
        artifacts.write_table(output / COMPARISON, columns)
        table.html_table(output / COMPARISON_HTML, columns, f"{len(rows)} attack runs")
        curves.success_plot(output / SUCCESS_PLOT, rows)
        curves.queries_plot(output / QUERIES_PLOT, query_curves)
        mlflow.log_artifacts(str(output))
    print(summary(rows))
    return rows


def comparison_row(run: Run, manifest: dict[str, list[str]]) -> dict[str, Any]:
    """One attack run's row: what ran (``max_iter`` and ``popsize`` as resolved, not
    the 0 logged for a strategy's default; ``loss`` empty for runs older than it), how
    well and how fast, with its distances."""
    params, logged = run.data.params, run.data.metrics
    images = len(manifest["file"])
    es = int(params["es"])
    max_iter, popsize = resolved_budget(es, int(params["max_iter"]), int(params["popsize"]))
    model_uri = run.data.tags.get(tracking.MODEL_URI_TAG, "")
    return {
        "run_name": run.info.run_name,
        "model": naming.model_name(model_uri) if model_uri else "",
        "data": naming.dataset_name(run.data.tags.get(tracking.DATA_TAG, params["data"])),
        "attack_type": params["attack_type"],
        "th": int(params["th"]),
        "es": es,
        "strategy": STRATEGIES.get(es, ""),
        "loss": params.get("loss", ""),
        "max_iter": max_iter,
        "popsize": popsize,
        "images": images,
        "images_attacked": manifest["attacked"].count("True"),
        **{name: logged.get(name, math.nan) for name in COPIED},
        "seconds_per_image": logged.get("attack_seconds", math.nan) / images,
        **{name: logged.get(name, math.nan) for name in DISTANCE_SUMMARIES},
        "attack_run_id": run.info.run_id,
    }


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison as a short text table: success rate and its 95% interval,
    adversarial accuracy and attack time per run."""
    header = f"{'th':>4} {'es':>3}  {'success rate [95% CI]':<24}"
    lines = [header + f"{'adv. accuracy':>14}{'seconds':>9}  model"]
    for row in rows:
        interval = f"[{row['success_rate_ci_low']:.2f}, {row['success_rate_ci_high']:.2f}]"
        lines.append(
            f"{row['th']:>4} {row['es']:>3}  {row['success_rate']:<6.2f}{interval:<18}"
            f"{row['adversarial_accuracy']:>14.2f}{row['attack_seconds']:>9.1f}  {row['model']}"
        )
    return "\n".join(lines)


def _attack_run(run_id: str) -> Run:
    run = tracking.named_run(run_id, "attack", param="run_ids")
    if run.info.status != "FINISHED":
        raise ValueError(
            f"expected run_ids to name finished attack runs, got {run_id!r} ({run.info.status})"
        )
    return run


def _manifest(run: Run, folder: Path) -> dict[str, list[str]]:
    """The manifest of ``run``'s ``adv_testing.tar.gz``, downloaded into ``folder``."""
    return artifacts.read_manifest(tracking.download_adversarial_set(run.info.run_id, folder))
