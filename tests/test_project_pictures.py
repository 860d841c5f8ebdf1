"""The pictures and comparisons runs log, and their names, in-process against a
temporary sqlite store: the marks in ``examples.png`` are checked against the pixels
that differ between the clean images and ``adv_testing.tar.gz``."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from PIL import Image

from pixel_threshold.artifacts.tarball import read_adv_testing
from pixel_threshold.data.datasets import digits
from pixel_threshold.report import examples
from pixel_threshold.runs import generated_names, naming
from pixel_threshold.runs.params import AttackParams, CompareParams, EvaluateParams, TrainParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.compare import run_compare
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.train import run_train
from tests.tracking_store import sqlite_experiment

LIMIT = 20
BUDGET = {"limit": LIMIT, "max_iter": 8, "popsize": 40}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_experiment(tmp_path_factory.mktemp("pictures"), "pictures") as experiment_id:
        yield experiment_id


@pytest.fixture(scope="module")
def runs(experiment: str, digits_weights: Path) -> dict[str, Run]:
    """train (the session's trained CNN), attacks with th=1 and th=3, evaluate of the
    th=3 attack."""
    train = run_train(TrainParams(weights=str(digits_weights), epochs=0))
    weak = run_attack(AttackParams(th=1, es=1, **BUDGET))
    strong = run_attack(AttackParams(th=3, es=1, **BUDGET))
    evaluate = run_evaluate(EvaluateParams(attack_run_id=strong))
    ids = {"train": train, "weak": weak, "strong": strong, "evaluate": evaluate}
    return {name: mlflow.get_run(run_id) for name, run_id in ids.items()}


def _download(run: Run, name: str, folder: Path) -> Path:
    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=name, dst_path=str(folder)
        )
    )


def _png(path: Path) -> Image.Image:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    return Image.open(path).convert("RGB")


def test_runs_are_named_after_what_ran(runs: dict[str, Run]) -> None:
    assert runs["train"].info.run_name == "train small_cnn digits"
    strong = "attack pixel th=3 es=1 differential evolution 8x40 digits_small_cnn"
    assert runs["strong"].info.run_name == strong
    assert runs["evaluate"].info.run_name == f"evaluate {strong}"


def test_a_name_given_to_the_run_is_kept(experiment: str) -> None:
    with mlflow.start_run(run_name="my attack") as run:
        naming.name_run("attack pixel th=1 es=1 digits_small_cnn")
    assert mlflow.get_run(run.info.run_id).info.run_name == "my attack"
    with mlflow.start_run() as run:
        assert generated_names.is_generated(str(run.info.run_name))
        naming.name_run("compare 2 runs")
    assert mlflow.get_run(run.info.run_id).info.run_name == "compare 2 runs"


def _panel(grid: np.ndarray, frame: examples.Layout, card: int, name: str) -> np.ndarray:
    """The pixels of one panel of one card of the examples grid (H, W, 3)."""
    (x, y), (width, height) = frame.panel_origin(card, name), frame.panel_size
    return grid[y : y + height, x : x + width]


def test_examples_mark_exactly_the_pixels_the_adversarial_set_changed(
    runs: dict[str, Run], tmp_path: Path
) -> None:
    run = runs["strong"]
    adv = read_adv_testing(_download(run, "adv_testing.tar.gz", tmp_path), tmp_path / "set")
    originals = digits().test_images[adv.column("index")]
    success = [value == "True" for value in adv.manifest["success"]]
    fooled = [row for row in range(LIMIT) if success[row]]
    shown = (fooled + [row for row in range(LIMIT) if not success[row]])[:12]
    grid = np.asarray(_png(_download(run, "examples.png", tmp_path)))
    frame = examples.layout((8, 8, 1), 12)
    assert (grid.shape[1], grid.shape[0]) == frame.size
    scale, centre = frame.scale, frame.scale // 2
    marked_cards = 0
    for card, row in enumerate(shown):
        changed = np.any(adv.images[row] != originals[row], axis=-1)
        marked_cards += bool(changed.any())
        np.testing.assert_array_equal(
            _panel(grid, frame, card, "clean")[centre::scale, centre::scale, 0],
            originals[row, ..., 0],
        )
        adversarial = _panel(grid, frame, card, "adversarial")
        np.testing.assert_array_equal(
            adversarial[centre::scale, centre::scale, 0], adv.images[row, ..., 0]
        )
        ringed = np.all(adversarial[::scale, ::scale] == examples.MARK, axis=-1)
        np.testing.assert_array_equal(ringed, changed)
        mapped = np.all(
            _panel(grid, frame, card, "changed")[centre::scale, centre::scale] == examples.MARK,
            axis=-1,
        )
        np.testing.assert_array_equal(mapped, changed)
    assert marked_cards == min(sum(success), 12) > 0  # successes first, each with marks


def test_attack_logs_its_query_efficiency_and_evaluate_its_confusion_matrices(
    runs: dict[str, Run], tmp_path: Path
) -> None:
    assert _png(_download(runs["strong"], "queries.png", tmp_path)).size == (600, 400)
    for name in ("clean", "adversarial"):
        image = _png(_download(runs["evaluate"], f"confusion_matrix_{name}.png", tmp_path))
        assert image.size == (650, 650)


def _table(run: Run, folder: Path) -> list[dict[str, str]]:
    with open(_download(run, "comparison.csv", folder)) as handle:
        return list(csv.DictReader(handle))


def test_compare_tabulates_and_plots_the_runs_it_is_given(
    runs: dict[str, Run], tmp_path: Path
) -> None:
    chosen = [runs["strong"], runs["weak"]]
    compare = mlflow.get_run(
        run_compare(CompareParams(run_ids=",".join(run.info.run_id for run in chosen)))
    )
    assert compare.info.status == "FINISHED"
    assert compare.info.run_name == "compare 2 runs"
    names = {item.path for item in MlflowClient().list_artifacts(compare.info.run_id)}
    assert names == {"comparison.csv", "comparison.html", "success_vs_th.png", "queries.png"}
    rows = _table(compare, tmp_path)
    assert [row["attack_run_id"] for row in rows] == [run.info.run_id for run in chosen]
    for row, run in zip(rows, chosen, strict=True):
        metrics = run.data.metrics
        assert (row["model"], row["attack_type"], row["th"]) == (
            "digits_small_cnn",
            "pixel",
            run.data.params["th"],
        )
        assert (row["es"], row["loss"], row["max_iter"], row["popsize"], row["images"]) == (
            "1",
            "margin",
            "8",
            "40",
            "20",
        )
        assert float(row["success_rate"]) == metrics["success_rate"]
        assert float(row["success_rate_ci_high"]) == metrics["success_rate_ci_high"]
        assert float(row["mean_queries"]) == metrics["mean_queries"]
        assert float(row["images_attacked"]) == metrics["images_attacked"]
        assert float(row["seconds_per_image"]) == metrics["attack_seconds"] / LIMIT
        assert row["l_0_norm_max"] == str(metrics["l_0_norm_max"])
        assert row["run_name"] == run.info.run_name
    html = _download(compare, "comparison.html", tmp_path).read_text()
    assert html.count("<tr>") == 3
    assert "attack pixel th=1 es=1 differential evolution 8x40 digits_small_cnn" in html
    assert _png(_download(compare, "success_vs_th.png", tmp_path)).size == (600, 400)


def test_compare_takes_every_finished_attack_run_of_the_experiment_by_default(
    runs: dict[str, Run], experiment: str, tmp_path: Path
) -> None:
    compare = mlflow.get_run(run_compare(CompareParams(experiment_name="pictures")))
    rows = _table(compare, tmp_path)
    assert [row["attack_run_id"] for row in rows] == [
        runs["weak"].info.run_id,
        runs["strong"].info.run_id,
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (CompareParams(run_ids="0" * 32), "cannot read run_ids='0000"),
        (CompareParams(experiment_name="no such"), "got experiment_name='no such'"),
    ],
)
def test_compare_refuses_what_it_cannot_compare(
    runs: dict[str, Run], experiment: str, params: CompareParams, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_compare(params)


def test_compare_refuses_runs_that_are_not_attacks_and_experiments_without_attacks(
    runs: dict[str, Run],
) -> None:
    train_id = runs["train"].info.run_id
    with pytest.raises(
        ValueError, match=f"run_ids to name an attack run, got run_ids='{train_id}'"
    ):
        run_compare(CompareParams(run_ids=train_id))
    MlflowClient().create_experiment("empty")
    with pytest.raises(ValueError, match="expected finished attack runs in experiment"):
        run_compare(CompareParams(experiment_name="empty"))
