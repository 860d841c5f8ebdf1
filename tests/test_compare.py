"""compare's view of th=-1 runs: labels, robustness curves from metric histories, the
robustness levels side by side and the printed tables, on fake rows and a sqlite store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from PIL import Image

from pixel_threshold.report import curves
from pixel_threshold.runs import records
from pixel_threshold.steps import compare, legends
from tests.tracking_store import sqlite_experiment

FIRST_COLOUR = (0x1F, 0x77, 0xB4)
SETTING = {
    "model": "digits_small_cnn",
    "model_uri": "runs:/a/model",
    "data": "digits",
    "es": 1,
    "strategy": "differential evolution",
    "loss": "margin",
    "max_iter": 30,
    "popsize": 100,
    "images": 100,
}


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    with sqlite_experiment(tmp_path, "compare") as experiment_id:
        yield experiment_id


def _row(attack_type: str, run_id: str, th: int = -1, **changes: Any) -> dict[str, Any]:
    """A comparison row: a th=-1 run's levels 2 / 2.5 of th_max 64 (pixel) or 255, a
    fixed th's NaN."""
    levels = (2.0, 2.5) if th == -1 else (math.nan, math.nan)
    th_max = {"pixel": 64.0, "threshold": 255.0}[attack_type] if th == -1 else math.nan
    return {
        **SETTING,
        "attack_type": attack_type,
        "th": th,
        "th_max": th_max,
        **dict(zip(compare.MIN_TH, levels, strict=True)),
        "attack_run_id": run_id,
        **changes,
    }


def test_labels_are_run_names_with_a_short_id_only_where_names_repeat(experiment: str) -> None:
    ids = []
    for name in ("attack pixel", "attack threshold", "attack pixel"):
        with mlflow.start_run(run_name=name) as run:
            ids.append(run.info.run_id)
    runs = [records.LoggedRun.of(mlflow.get_run(run_id)) for run_id in ids]
    assert legends.run_labels(runs) == [
        f"attack pixel ({ids[0][:8]})",
        "attack threshold",
        f"attack pixel ({ids[2][:8]})",
    ]


def test_robustness_curve_is_the_robust_accuracy_history_in_th_order(experiment: str) -> None:
    with mlflow.start_run() as run:
        for th, accuracy in [(2, 0.5), (0, 0.9), (1, 0.75)]:
            mlflow.log_metric("robust_accuracy", accuracy, step=th)
    th, accuracy = compare.robustness_curve(run.info.run_id)
    assert th.tolist() == [0, 1, 2]
    assert accuracy.tolist() == [0.9, 0.75, 0.5]
    with mlflow.start_run() as fixed:
        mlflow.log_metric("success_rate", 0.5)
    assert [len(part) for part in compare.robustness_curve(fixed.info.run_id)] == [0, 0]


def test_robustness_levels_put_a_model_s_pixel_and_threshold_runs_side_by_side() -> None:
    rows = [
        _row("pixel", "p1"),
        _row("pixel", "fixed", th=3),
        _row("threshold", "t2", es=0, strategy="cma-es"),
        _row("threshold", "t1", median_min_th=20.0, mean_min_th=math.nan),
        _row("pixel", "p3", model_uri="runs:/b/model"),
        _row("pixel", "p4", model_uri="runs:/b/model", th_max=8),
    ]
    levels = compare.robustness_levels(rows)
    assert [
        (level["pixel_run_id"], level["threshold_run_id"], level["es"], level["model_uri"])
        for level in levels
    ] == [
        ("p1", "t1", 1, "runs:/a/model"),
        ("", "t2", 0, "runs:/a/model"),
        ("p3", "", 1, "runs:/b/model"),
        ("p4", "", 1, "runs:/b/model"),
    ]
    first = levels[0]
    assert {name: first[name] for name in SETTING} == SETTING
    assert (first["pixel_median_min_th"], first["pixel_mean_min_th"], first["pixel_th_max"]) == (
        2.0,
        2.5,
        64,
    )
    assert (first["threshold_median_min_th"], first["threshold_th_max"]) == (20.0, 255)
    assert math.isnan(first["threshold_mean_min_th"])
    assert all(math.isnan(levels[1][f"pixel_{name}"]) for name in (*compare.MIN_TH, "th_max"))
    assert levels[3]["pixel_th_max"] == 8
    assert compare.robustness_levels([_row("pixel", "fixed", th=1)]) == []


def test_the_printed_table_says_when_runs_are_not_comparable() -> None:
    rows = [
        _row("pixel", "p1", th=1),
        _row("pixel", "p2", th=1, data="photos", images=20, max_iter=100, popsize=400),
    ]
    for row in rows:
        row |= {"success_rate": 0.5, "success_rate_ci_low": 0.3, "success_rate_ci_high": 0.7}
        row |= {"adversarial_accuracy": 0.4, "attack_seconds": 1.0}
    lines = compare.summary(rows).splitlines()
    assert "photos (20)" in lines[2] and "100x400" in lines[2]
    assert lines[-1].startswith(
        "note: these runs differ in data and budget (queries an image): compare their"
    )
    assert not compare.summary(rows[:1]).splitlines()[-1].startswith("note:")


def test_printed_tables_show_the_smallest_th_of_th_minus_one_runs_only() -> None:
    rows = [
        _row("pixel", "p1", success_rate=0.9, adversarial_accuracy=0.05),
        _row("threshold", "t1", th=8, success_rate=0.5, adversarial_accuracy=0.45),
    ]
    for row in rows:
        row |= {"success_rate_ci_low": 0.4, "success_rate_ci_high": 0.95, "attack_seconds": 3.0}
    header, smallest, fixed = (_spaced(line) for line in compare.summary(rows).splitlines())
    assert header.startswith("attack th es success rate")
    assert "min th: median mean seconds" in header
    assert header.endswith(" seconds data (images) budget model run id")
    assert smallest == (
        "pixel -1 1 0.90 [0.40, 0.95] 0.05 2.0 2.5 3.0 digits (100) 30x100 digits_small_cnn p1"
    )
    assert fixed == (
        "threshold 8 1 0.50 [0.40, 0.95] 0.45 3.0 digits (100) 30x100 digits_small_cnn t1"
    )
    levels = compare.robustness_levels(
        [*rows[:1], _row("threshold", "t1", median_min_th=256.0, mean_min_th=math.nan)]
    )
    levels += compare.robustness_levels([_row("pixel", "p2", es=2)])
    lines = compare.levels_summary(levels).splitlines()
    assert not any(line.endswith(" ") for line in lines)
    assert _spaced(lines[1]) == "model es strategy pixel threshold"
    assert _spaced(lines[2]) == (
        "digits_small_cnn 1 differential evolution 2 / 2.5 (64) >255 / - (255)"
    )
    assert _spaced(lines[3]).endswith("2 / 2.5 (64) -")


def _spaced(line: str) -> str:
    return " ".join(line.split())


def test_robustness_curves_plot_draws_each_attack_type_in_its_own_panel(tmp_path: Path) -> None:
    curve = (np.arange(5.0), np.array([0.9, 0.6, 0.3, 0.1, 0.0]))
    path = tmp_path / "robustness_curves.png"
    other = (curve[0], curve[1] / 2)
    curves.robustness_curves_plot(
        path, {"pixel": {"a": curve, "b": other}, "threshold": {}}, title="robust accuracy"
    )
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (400, 1200, 3)
    first_line = np.all(pixels == FIRST_COLOUR, axis=-1)  # matplotlib's first line colour
    assert first_line[:, :600].sum() > 100
    assert not first_line[:, 600:].any()


def _fixed(attack_type: str, run_id: str, th: int, model_uri: str = "runs:/a/model") -> Any:
    bounds = {"success_rate_ci_low": 0.3, "success_rate_ci_high": 0.7}
    return _row(attack_type, run_id, th=th, model_uri=model_uri, success_rate=0.5, **bounds)


def test_models_of_one_name_are_told_apart_by_their_train_run() -> None:
    rows = [
        _fixed("pixel", "p1", 1, "runs:/0123456789abcdef/model"),
        _fixed("pixel", "p2", 1, "runs:/fedcba9876543210/model"),
        _fixed("pixel", "p3", 3, "runs:/0123456789abcdef/model"),
        _fixed("pixel", "p4", 1, "models:/digits/2") | {"model": "digits/2"},
    ]
    assert legends.model_labels(rows) == [
        "digits_small_cnn (01234567)",
        "digits_small_cnn (fedcba98)",
        "digits_small_cnn (01234567)",
        "digits/2",
    ]
    assert legends.model_labels(rows[2:]) == ["digits_small_cnn", "digits/2"]


def test_success_lines_are_one_per_attack_type_model_run_and_setting() -> None:
    rows = [
        _fixed("threshold", "t1", 8),
        _fixed("pixel", "p1", 1),
        _fixed("pixel", "p2", 3),
        _fixed("pixel", "q1", 1, "runs:/b/model"),
        _fixed("pixel", "r1", 1) | {"es": 2, "strategy": "random search"},
        _fixed("pixel", "p3", 1),  # p1 again: a repeat
        _fixed("threshold", "t2", 8) | {"loss": "probability", "data": "photos"},
    ]
    panels = legends.success_lines(rows)
    assert list(panels) == ["pixel", "threshold"]
    lines = {
        label: [row["attack_run_id"] for row in line] for label, line in panels["pixel"].items()
    }
    assert lines == {
        "digits_small_cnn (a) es=1 (differential evolution) 30x100": ["p1", "p2"],
        "digits_small_cnn (b) es=1 (differential evolution) 30x100": ["q1"],
        "digits_small_cnn (a) es=2 (random search) 30x100": ["r1"],
        "digits_small_cnn (a) es=1 (differential evolution) 30x100 (repeat 2)": ["p3"],
    }
    assert list(panels["threshold"]) == [
        "digits_small_cnn (a) es=1 (differential evolution) 30x100",
        "digits_small_cnn (a) es=1 (differential evolution) 30x100 loss=probability on photos",
    ]


def test_picture_titles_name_attack_types_th_es_and_models() -> None:
    rows = [_fixed("pixel", "p1", 1), _fixed("pixel", "p2", 3), _row("threshold", "t1")]
    assert legends.picture_title("success", rows) == (
        "success\n3 attack runs: pixel, threshold; th=1, th=3, th=-1 (smallest<=255); "
        "es=1 (differential evolution)\nmodel: digits_small_cnn"
    )
    many = [_fixed("pixel", str(th), th, f"runs:/{th}/model") for th in range(1, 6)]
    assert legends.picture_title("x", many).endswith(
        "5 th values; es=1 (differential evolution)\nmodel: 5 models"
    )


def test_success_plot_draws_pixel_and_threshold_in_panels_of_their_own(tmp_path: Path) -> None:
    panels = legends.success_lines([_fixed("pixel", "p1", 1), _fixed("pixel", "p2", 3)])
    path = tmp_path / "success_vs_th.png"
    curves.success_plot(path, panels | {"threshold": {}}, title="success rate")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    first_line = np.all(pixels == FIRST_COLOUR, axis=-1)
    assert first_line[:, :600].sum() > 100
    assert not first_line[:, 600:].any()
