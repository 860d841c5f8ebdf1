"""The report step against a temporary sqlite store: its sections from both attacks at
th=-1 on digits, every figure checked against the runs it reports, its commands
reproducing an attack, its choice of runs, and its refusals."""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
import shlex
import typing
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from pixel_threshold import metrics
from pixel_threshold.artifacts import manifest, tarball
from pixel_threshold.data.datasets import digits
from pixel_threshold.models import small_cnn
from pixel_threshold.runs import records, tracking
from pixel_threshold.runs.params import AttackParams, ReportParams, TrainParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.report import run_report
from pixel_threshold.steps.train import run_train
from tests.tracking_store import sqlite_experiment

LIMIT = 12
PIXEL = AttackParams(th=-1, th_max=8, es=2, max_iter=60, limit=LIMIT)
THRESHOLD = AttackParams(attack_type="threshold", th=-1, th_max=64, es=2, max_iter=60, limit=LIMIT)
SECTIONS = [
    "Summary",
    "Model",
    "Data",
    "Threat model",
    "Results",
    "Robustness curves",
    "Smallest th per image",
    "Per class",
    "Examples",
    "Reproduce",
]


class Assessed(typing.NamedTuple):
    """The runs of the module's assessment and its report, downloaded."""

    pixel: records.AttackRun
    threshold: records.AttackRun
    report_id: str
    folder: Path

    def text(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")

    def images(self) -> list[dict[str, str]]:
        with open(self.folder / "report_images.csv", newline="") as handle:
            return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_experiment(tmp_path_factory.mktemp("tracking"), "report") as experiment_id:
        yield experiment_id


@pytest.fixture(scope="module")
def assessed(experiment: str, tmp_path_factory: pytest.TempPathFactory) -> Assessed:
    run_train(TrainParams(epochs=3))
    pixel = records.read_attack_run(run_attack(PIXEL))
    threshold = records.read_attack_run(run_attack(THRESHOLD))
    report_id = run_report(ReportParams())
    folder = Path(
        mlflow.artifacts.download_artifacts(
            run_id=report_id, dst_path=str(tmp_path_factory.mktemp("report"))
        )
    )
    return Assessed(pixel, threshold, report_id, folder)


def _manifest(run: records.AttackRun, folder: Path) -> manifest.Manifest:
    path = tracking.download_adversarial_set(run.run_id, folder)
    return manifest.read(tarball.read_manifest(path), source=run.run_id)


def test_the_latest_run_of_each_attack_type_is_reported_by_default(assessed: Assessed) -> None:
    run = mlflow.get_run(assessed.report_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "report digits_small_cnn on digits"
    assert run.data.tags["attack_run_ids"] == f"{assessed.pixel.run_id},{assessed.threshold.run_id}"
    assert run.data.tags["model_uri"] == assessed.pixel.model_uri
    logged = {item.path for item in MlflowClient().list_artifacts(assessed.report_id)}
    assert logged == {
        "report.html",
        "report.md",
        "report_images.csv",
        "robustness_curves.png",
        f"examples_pixel_{assessed.pixel.run_id[:8]}.png",
        f"examples_threshold_{assessed.threshold.run_id[:8]}.png",
    }


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_both_pages_hold_every_section_in_order(assessed: Assessed, name: str) -> None:
    text = assessed.text(name)
    pattern = r"^## (.+)$" if name.endswith(".md") else r"<h2>(.+?)</h2>"
    assert re.findall(pattern, text, flags=re.MULTILINE) == SECTIONS


def test_the_html_page_stands_alone_with_its_pictures_inlined(assessed: Assessed) -> None:
    page = assessed.text("report.html")
    sources = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(sources) == 3  # the curves and each run's examples
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    assert "<script" not in page and "http" not in page.split("Reproduce")[0]


def test_the_model_is_named_with_its_clean_accuracy(assessed: Assessed) -> None:
    markdown = assessed.text("report.md")
    attacked = int(assessed.pixel.metric("images_attacked"))
    assert f"| model URI | {assessed.pixel.model_uri} |" in markdown
    assert "| registry version | not a registered model |" in markdown
    assert "| kind | keras |" in markdown
    accuracy = assessed.pixel.metric("clean_accuracy")
    assert f"| clean accuracy on the data | {accuracy:.3f} ({attacked} of {LIMIT} images) |" in (
        markdown
    )


def test_the_threat_model_is_said_in_words_for_each_attack(assessed: Assessed) -> None:
    markdown = assessed.text("report.md")
    assert (
        "setting at most th of its 64 pixels (8x8) to any value (its 1 channel 0-255), the "
        "others untouched; the attack finds, for each image, the smallest th from 1 to 8"
    ) in markdown
    assert "moving every one of its 64 values (8x8x1) by at most th on the 0-255 scale" in (
        markdown
    )
    assert "at most 60 queries a search (random search, 60 steps of 1, seed 0)" in markdown
    assert "any class but the true one (untargeted)" in markdown
    assert "no weights, no gradients (black box)" in markdown


def test_results_name_their_denominator_and_interval_and_warn_of_few_images(
    assessed: Assessed,
) -> None:
    markdown = assessed.text("report.md")
    for run in (assessed.pixel, assessed.threshold):
        attacked = int(run.metric("images_attacked"))
        fooled = round(run.metric("success_rate") * attacked)
        low, high = metrics.wilson_interval(fooled, attacked)
        assert run.metric("success_rate_ci_low") == pytest.approx(low)
        row = (
            f"| 60x1 | {LIMIT} | {attacked} | {fooled} | {fooled / attacked:.3f} | "
            f"{low:.3f}-{high:.3f} | {run.metric('adversarial_accuracy'):.3f} |"
        )
        assert row in markdown
    assert "the denominator is the images the model classified correctly" in markdown
    assert "Wilson score 95% interval" in markdown
    assert markdown.count("**Warning:** fewer than 30 images were attacked") == 2


def test_the_image_list_holds_every_image_s_pixel_digest_and_outcomes(
    assessed: Assessed, tmp_path: Path
) -> None:
    split = digits()
    rows = assessed.images()
    assert [row["source"] for row in rows] == [f"digits/test/{index}" for index in range(LIMIT)]
    for row, image, label in zip(rows, split.test_images, split.test_labels, strict=False):
        assert row["sha256"] == hashlib.sha256(image.tobytes()).hexdigest()
        assert int(row["label"]) == label
    for run in (assessed.pixel, assessed.threshold):
        logged = _manifest(run, tmp_path / run.run_id)
        prefix = f"{run.params.attack_type}_{run.run_id[:8]}_"
        expected = ["" if th is None else str(th) for th in logged.min_th]
        assert [row[prefix + "min_th"] for row in rows] == expected
        assert [row[prefix + "queries"] for row in rows] == [str(q) for q in logged["queries"]]
    markdown = assessed.text("report.md")
    assert f"... {LIMIT - 12} more rows in report_images.csv" not in markdown  # 12 fit
    assert rows[0]["sha256"] in markdown


def test_smallest_th_is_summarised_from_each_run_s_images(
    assessed: Assessed, tmp_path: Path
) -> None:
    markdown = assessed.text("report.md")
    for run in (assessed.pixel, assessed.threshold):
        logged = _manifest(run, tmp_path / run.run_id)
        found = [
            th
            for th, attacked in zip(logged.min_th, logged["attacked"], strict=True)
            if attacked and th is not None
        ]
        low, q1, median, q3, high = np.percentile(found, [0, 25, 50, 75, 100])
        row = f"| {len(found)} | {low:g} | {q1:g} | {median:g} | {q3:g} | {high:g} |"
        assert row in markdown


def test_per_class_rows_add_up_to_the_attacked_set(assessed: Assessed) -> None:
    markdown = assessed.text("report.md")
    section = markdown[markdown.index("## Per class") : markdown.index("## Examples")]
    rows = [line.split(" | ") for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    assert sum(int(row[1]) for row in rows) == LIMIT
    attacked = sum(int(row[2].split(" / ")[1]) for row in rows)
    assert attacked == int(assessed.pixel.metric("images_attacked"))


def test_the_curves_stand_side_by_side(assessed: Assessed) -> None:
    with Image.open(assessed.folder / "robustness_curves.png") as picture:
        assert picture.size == (1200, 400)  # a panel per attack type


def _attack_params(command: str) -> AttackParams:
    """The parameters a reproduce command gives ``mlflow run . -e attack``."""
    words = shlex.split(command)
    values = dict(word.split("=", 1) for flag, word in itertools.pairwise(words) if flag == "-P")
    types = typing.get_type_hints(AttackParams)
    return AttackParams(**{name: types[name](value) for name, value in values.items()})


def test_its_commands_reproduce_each_attack_image_for_image(
    assessed: Assessed, tmp_path: Path
) -> None:
    markdown = assessed.text("report.md")
    commands = [line for line in markdown.splitlines() if line.startswith("mlflow run . -e attack")]
    assert len(commands) == 2
    params = _attack_params(commands[0])
    assert params.model == assessed.pixel.model_uri
    again = records.read_attack_run(run_attack(params))
    first, second = (_manifest(run, tmp_path / run.run_id) for run in (assessed.pixel, again))
    assert second.min_th == first.min_th
    assert np.array_equal(second["queries"], first["queries"])
    assert "export MLFLOW_TRACKING_URI=" in markdown


def test_runs_of_different_models_are_refused_naming_them(assessed: Assessed) -> None:
    other = run_train(TrainParams(epochs=1, seed=1))
    fixed = run_attack(AttackParams(model=f"runs:/{other}/model", th=2, es=2, max_iter=10, limit=4))
    ids = f"{assessed.pixel.run_id},{fixed}"
    with pytest.raises(ValueError, match=f"one model, got {assessed.pixel.run_id}: 'runs:/"):
        run_report(ReportParams(run_ids=ids))
    with pytest.raises(ValueError, match="expected run_ids to name an attack run"):
        run_report(ReportParams(run_ids=other))


def test_a_folder_s_skipped_and_resized_images_and_changed_data(
    experiment: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        for number in range(4):
            pixels = rng.integers(0, 256, size=(8, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / name / f"{number}.png")
    (data / "b" / "broken.png").write_bytes(b"not a png")
    small_cnn.small_cnn((6, 6, 3), 2, seed=1).save(tmp_path / "model.keras")
    attack_id = run_attack(
        AttackParams(
            model=str(tmp_path / "model.keras"), data=str(data), es=2, max_iter=5, limit=10
        )
    )
    folder = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_report(ReportParams(run_ids=attack_id)), dst_path=str(tmp_path / "report")
        )
    )
    markdown = (folder / "report.md").read_text()
    assert "8 images from the folder" in markdown
    assert "1 unreadable file was skipped (not attacked, not counted):" in markdown
    assert "| b/broken.png |" in markdown
    assert "centre-cropped (no distortion) (resize=crop): 8 of 8 were resized" in markdown
    assert "the others untouched" in markdown and "(6x6)" in markdown
    assert "## Smallest th per image\n\nNo run searched each image's smallest th" in markdown
    assert (folder / "success_vs_th.png").is_file()
    logged = _manifest(records.read_attack_run(attack_id), tmp_path / "manifest")
    unchanged = logged.sources[int(np.flatnonzero(~logged["success"])[0])]
    Image.fromarray(rng.integers(0, 256, size=(8, 12, 3), dtype=np.uint8)).save(data / unchanged)
    with pytest.raises(ValueError, match=r"to give the images attack run .* the data changed"):
        run_report(ReportParams(run_ids=attack_id))
