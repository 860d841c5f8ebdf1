"""Step ``compare``: attack runs side by side, as a table and as plots.

Logs to the active run ``comparison.csv`` and ``comparison.html`` (a row per attack
run), ``success_vs_th.png`` (fixed-th runs: a panel per attack type, a line per model
run and search setting) and ``queries.png`` (every run's cumulative success rate
against queries, a panel per attack type). With ``th=-1`` runs among them, also
``robustness_curves.png`` (each one's robust accuracy against th, a panel per attack
type) and ``robustness_levels.csv`` (a model's Pixel and Threshold levels side by
side). Each picture is titled with what it shows: the runs' attack types, th, es and
models; a model is named as in its runs' names, with a short id of its train run
where two models share a name. Per-image queries and successes come from each run's
``adv_testing.tar.gz`` manifest and the curves from its ``robust_accuracy`` history,
both read through MLflow, so a remote tracking server works the same way.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from pixel_threshold import metrics
from pixel_threshold.artifacts import manifest, names, tarball
from pixel_threshold.attack.config import SMALLEST_TH
from pixel_threshold.attack.encodings import ATTACK_TYPES
from pixel_threshold.report import curves, table
from pixel_threshold.runs import naming, outcome, records, tracking
from pixel_threshold.runs.params import CompareParams
from pixel_threshold.steps import legends

MIN_TH = ("median_min_th", "mean_min_th")
"""A ``th=-1`` attack run's metrics, copied with its ``th_max`` (as resolved)."""
COPIED = (
    "success_rate",
    "success_rate_ci_low",
    "success_rate_ci_high",
    "clean_accuracy",
    "adversarial_accuracy",
    *MIN_TH,
    "mean_queries",
    "median_queries_successful",
    "attack_seconds",
)
"""Attack-run metrics copied into the table as they are (NaN where a run has none:
``MIN_TH`` for a fixed th)."""
DISTANCE_SUMMARIES = tuple(
    f"{name}_{summary}"
    for name in ("l_0_norm", "l_2_norm", "l_infinity_norm")
    for summary in ("mean", "median", "max")
)
SETTING = ("model", "model_uri", "data", "es", "strategy", "loss", "max_iter", "popsize", "images")
"""What a Pixel and a Threshold ``th=-1`` run share to stand side by side in
``robustness_levels.csv``."""


def run_compare(params: CompareParams) -> str:
    """Compare the attack runs ``params`` names in a run of its own; return its id."""
    with tracking.step_run("compare") as run:
        tracking.log_params(params)
        runs = attack_runs(params, run.info.experiment_id)
        naming.name_run(f"compare {len(runs)} run{'' if len(runs) == 1 else 's'}")
        log_comparison(runs)
        run_id: str = run.info.run_id
    outcome.print_outcome(run_id)
    return run_id


def attack_runs(params: CompareParams, experiment_id: str) -> list[records.AttackRun]:
    """The runs ``params.run_ids`` names, in that order, else every finished attack run
    of ``params.experiment_name`` (or of ``experiment_id``), oldest first."""
    if params.run_ids:
        return [
            records.finished_attack_run(run_id.strip(), param="run_ids")
            for run_id in params.run_ids.split(",")
        ]
    experiment_id = tracking.experiment_id(params.experiment_name, experiment_id)
    return records.finished_attack_runs(experiment_id)


def log_comparison(runs: Sequence[records.AttackRun]) -> list[dict[str, Any]]:
    """Log the table and plots of ``runs`` to the active run and print a summary;
    return the table's rows."""
    with tempfile.TemporaryDirectory() as folder:
        rows, labels = [], legends.run_labels(runs)
        query_curves: dict[str, dict[str, curves.Curve]] = {kind: {} for kind in ATTACK_TYPES}
        for run, label in zip(runs, labels, strict=True):
            logged = _manifest(run, Path(folder) / run.run_id)
            rows.append(comparison_row(run, logged))
            query_curves[rows[-1]["attack_type"]][label] = curves.success_by_queries(
                logged["queries"], logged["success"], logged["attacked"]
            )
        output = Path(folder) / "comparison"
        output.mkdir()
        tarball.write_table(output / names.COMPARISON, _columns(rows))
        table.html_table(output / names.COMPARISON_HTML, _columns(rows), f"{len(rows)} attack runs")
        fixed = [row for row in rows if row["th"] != SMALLEST_TH]
        if fixed:
            curves.success_plot(
                output / names.SUCCESS_VS_TH,
                legends.success_lines(fixed),
                title=legends.picture_title("success rate against th, with 95% intervals", fixed),
            )
        curves.queries_plot(
            output / names.QUERIES,
            {kind: lines for kind, lines in query_curves.items() if lines},
            title=legends.picture_title("share of attacked images fooled within x queries", rows),
        )
        levels = _log_robustness(output, rows, labels)
        mlflow.log_artifacts(str(output))
    print(summary(rows))
    if levels:
        print(levels_summary(levels))
    return rows


def _log_robustness(
    output: Path, rows: Sequence[dict[str, Any]], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Write ``robustness_curves.png`` and ``robustness_levels.csv`` of the ``th=-1``
    runs among the comparison ``rows`` (legend ``labels``; a run without a
    ``robust_accuracy`` history draws no line) into ``output``; return the levels
    (none, and nothing written, without such runs)."""
    smallest = [
        (row, label) for row, label in zip(rows, labels, strict=True) if row["th"] == SMALLEST_TH
    ]
    if not smallest:
        return []
    lines: dict[str, dict[str, curves.Curve]] = {kind: {} for kind in ATTACK_TYPES}
    for row, label in smallest:
        th, accuracy = robustness_curve(row["attack_run_id"])
        if len(th):
            lines[row["attack_type"]][label] = th, accuracy
    curves.robustness_curves_plot(
        output / names.ROBUSTNESS_CURVES,
        lines,
        title=legends.picture_title(
            "robust accuracy against th (each image's smallest th)", [row for row, _ in smallest]
        ),
    )
    levels = robustness_levels(rows)
    tarball.write_table(output / names.ROBUSTNESS_LEVELS, _columns(levels))
    return levels


def robustness_curve(run_id: str) -> curves.Curve:
    """A ``th=-1`` run's ``robust_accuracy`` history: th (its steps, 0..th_max) and the
    accuracy at each, both (th_max + 1,); empty for a run without it."""
    history = records.metric_history(run_id, metrics.ROBUST_ACCURACY)
    return (
        np.array([step for step, _ in history], dtype=np.float64),
        np.array([value for _, value in history], dtype=np.float64),
    )


def robustness_levels(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``th=-1`` comparison ``rows`` as robustness levels: one row per model and
    search setting (``SETTING``) with its Pixel and its Threshold run side by side
    (``<type>_median_min_th``, ``<type>_mean_min_th``, ``<type>_th_max``,
    ``<type>_run_id``), in the order the settings first appear.
    A setting with several runs of a type pairs them in order; a side without a run
    is NaN, its run id empty."""
    by_setting: dict[tuple[Any, ...], dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        if row["th"] == SMALLEST_TH:
            setting = tuple(row[name] for name in SETTING)
            runs = by_setting.setdefault(setting, {kind: [] for kind in ATTACK_TYPES})
            runs[row["attack_type"]].append(row)
    levels = []
    for setting, runs in by_setting.items():
        for pair in itertools.zip_longest(*(runs[kind] for kind in ATTACK_TYPES)):
            level = dict(zip(SETTING, setting, strict=True))
            for attack_type, row in zip(ATTACK_TYPES, pair, strict=True):
                level |= _level(attack_type, row)
            levels.append(level)
    return levels


def _level(attack_type: str, row: Mapping[str, Any] | None) -> dict[str, Any]:
    """One side of a robustness level: ``row``'s, or NaN and no run id without one."""
    values = {name: math.nan if row is None else row[name] for name in (*MIN_TH, "th_max")}
    values["run_id"] = "" if row is None else row["attack_run_id"]
    return {f"{attack_type}_{name}": value for name, value in values.items()}


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in rows[0]}


def comparison_row(run: records.AttackRun, logged: manifest.Manifest) -> dict[str, Any]:
    """One attack run's row: what ran (``max_iter`` and ``popsize`` as resolved, not
    the 0 logged for a strategy's default), how well and how fast, with its distances."""
    images = len(logged.sources)
    max_iter, popsize = run.budget
    return {
        "run_name": run.name,
        "model": naming.model_name(run.model_uri) if run.model_uri else "",
        "model_uri": run.model_uri,
        "data": naming.dataset_name(run.data),
        "attack_type": run.params.attack_type,
        "th": run.params.th,
        "th_max": run.metric("th_max"),
        "es": run.params.es,
        "strategy": run.strategy,
        "loss": run.loss,
        "max_iter": max_iter,
        "popsize": popsize,
        "images": images,
        "images_attacked": int(logged["attacked"].sum()),
        **{name: run.metric(name) for name in COPIED},
        "seconds_per_image": run.metric("attack_seconds") / images,
        **{name: run.metric(name) for name in DISTANCE_SUMMARIES},
        "attack_run_id": run.run_id,
    }


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison as a short text table: per run its attack type, th, es, success
    rate and its 95% interval, adversarial accuracy, each image's smallest th (median
    and mean, ``th=-1`` runs), attack time, data and images, budget (``max_iter`` x
    ``popsize``), model (`model_labels`) and run id; then, when the runs differ in data,
    budget or model, a note that says so."""
    models = legends.model_labels(rows)
    width = max(len("model"), *(len(model) for model in models))
    data = [f"{row['data']} ({row['images']})" for row in rows]
    data_width = max(len("data (images)"), *(len(text) for text in data))
    header = f"{'attack':<10}{'th':>4} {'es':>3}  {'success rate [95% CI]':<24}"
    lines = [
        header + f"{'adv. accuracy':>14}{'min th: median':>16}{'mean':>7}{'seconds':>9}  "
        f"{'data (images)':<{data_width}}  {'budget':<12}{'model':<{width}}  run id"
    ]
    for row, model, source in zip(rows, models, data, strict=True):
        interval = f"[{row['success_rate_ci_low']:.2f}, {row['success_rate_ci_high']:.2f}]"
        median, mean = (_blank(row[name], ".1f") for name in MIN_TH)
        budget = f"{row['max_iter']}x{row['popsize']}"
        lines.append(
            f"{row['attack_type']:<10}{row['th']:>4} {row['es']:>3}  "
            f"{row['success_rate']:<6.2f}{interval:<18}{row['adversarial_accuracy']:>14.2f}"
            f"{median:>16}{mean:>7}{row['attack_seconds']:>9.1f}  {source:<{data_width}}  "
            f"{budget:<12}{model:<{width}}  {row['attack_run_id']}"
        )
    return "\n".join([*lines, *_not_comparable(rows, models)])


def _not_comparable(rows: Sequence[Mapping[str, Any]], models: Sequence[str]) -> list[str]:
    """A note naming what differs between the rows among data, budget and model; none
    when every row shares them."""
    differing = {
        "data": {(row["data"], row["images"]) for row in rows},
        "budget (queries an image)": {row["max_iter"] * row["popsize"] for row in rows},
        "model": set(models),
    }
    apart = [what for what, values in differing.items() if len(values) > 1]
    if not apart:
        return []
    return [
        f"note: these runs differ in {' and '.join(apart)}: compare their success rates "
        "with care (same data, budget and model make rows comparable)"
    ]


def levels_summary(levels: Sequence[Mapping[str, Any]]) -> str:
    """``robustness_levels`` as a short text table: per model and strategy, each attack
    type's median and mean smallest th, out of its th_max."""
    lines = [
        "robustness levels: each image's smallest th, median / mean over the fooled (th_max)",
        f"{'model':<24}{'es':>3}  {'strategy':<24}"
        + "".join(f"{kind:<22}" for kind in ATTACK_TYPES),
    ]
    for level in levels:
        sides = "".join(f"{_side(level, kind):<22}" for kind in ATTACK_TYPES)
        lines.append(f"{level['model']:<24}{level['es']:>3}  {level['strategy']:<24}{sides}")
    return "\n".join(line.rstrip() for line in lines)


def _side(level: Mapping[str, Any], attack_type: str) -> str:
    """One attack type's level: ``2 / 2.4 (64)``; ``>64`` when most images were not
    fooled within th_max; ``-`` without a run."""
    if not level[f"{attack_type}_run_id"]:
        return "-"
    median, mean, th_max = (
        level[f"{attack_type}_{name}"] for name in ("median_min_th", "mean_min_th", "th_max")
    )
    largest = _blank(th_max, "g")
    shown = f">{largest}" if median > th_max else _blank(median, "g")
    return f"{shown} / {_blank(mean, '.1f') or '-'} ({largest})"


def _blank(value: float, spec: str) -> str:
    """``value`` formatted by ``spec``; empty for NaN."""
    return "" if math.isnan(value) else format(value, spec)


def _manifest(run: records.AttackRun, folder: Path) -> manifest.Manifest:
    """The manifest of ``run``'s ``adv_testing.tar.gz``, downloaded into ``folder``."""
    path = tracking.download_adversarial_set(run.run_id, folder)
    return manifest.read(tarball.read_manifest(path), source=f"attack run {run.run_id}")
