"""The MLflow UI in a real browser: what a person sees after an attack.

A small experiment (train, then a fast attack on digits) is served by ``mlflow server``
on 127.0.0.1 at a free port and opened in Debian's headless Chromium through
Playwright (``executable_path``: ``$CHROMIUM``, default /usr/bin/chromium; no browser
download). Screenshots go to
``test-output/ui/``. Run by ``make test-ui`` (``-m ui``); deselected otherwise.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from PIL import Image

from pixel_threshold.report import examples
from pixel_threshold.runs.params import AttackParams, CompareParams, ReportParams, TrainParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.compare import run_compare
from pixel_threshold.steps.report import run_report
from pixel_threshold.steps.train import run_train
from tests.test_report_step import SECTIONS
from tests.tracking_store import mlflow_server

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-output" / "ui"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ATTACK = AttackParams(th=3, es=1, limit=6, max_iter=10, popsize=40)
ATTACK_NAME = "attack pixel th=3 es=1 differential evolution 10x40 digits_small_cnn"
SMALLEST = AttackParams(attack_type="threshold", th=-1, th_max=40, es=2, limit=6, max_iter=150)
REFUSED = "attack failed: expected th >= 1 or th=-1 (each image's smallest), got th=0"
"""The name and the description of the run of an attack with th=0."""
WARNING_COLOUR = (0xFF, 0xF4, 0xE0)
"""The background of the report's warnings (6 images attacked: fewer than 30)."""
COMPARE_PICTURES = {
    "success_vs_th.png": (600, 400),  # the fixed-th run: a Pixel panel only
    "queries.png": (1200, 400),  # a panel per attack type
    "robustness_curves.png": (1200, 400),
}
TIMEOUT_MS = 60_000


class Experiment:
    """A tracking store holding one experiment with a train run, two attack runs (a
    Pixel one at th=3, a Threshold one at th=-1), a failed attack run, and a compare
    run and a report run of the two."""

    def __init__(self, folder: Path) -> None:
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.experiment_id = MlflowClient(self.uri).create_experiment(
            "ui", artifact_location=(folder / "artifacts").as_uri()
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", self.uri)
            patch.setenv("MLFLOW_EXPERIMENT_ID", self.experiment_id)
            run_train(TrainParams(epochs=3))
            self.attack_run_id = run_attack(ATTACK)
            self.smallest_run_id = run_attack(SMALLEST)
            self.compare_run_id = run_compare(CompareParams())
            self.report_run_id = run_report(ReportParams())
            with pytest.raises(ValueError, match="got th=0"):
                run_attack(AttackParams(th=0))
        (failed,) = MlflowClient(self.uri).search_runs(
            [self.experiment_id], filter_string="attributes.status = 'FAILED'"
        )
        self.failed_run_id = failed.info.run_id


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    return Experiment(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def server(experiment: Experiment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on the experiment's store; yields its URL and stops it after."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with mlflow_server(experiment.uri, log) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    page.close()


def _screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def _close_assistant(page: Any) -> None:
    """Close MLflow's assistant side panel if it opened (it hides the table's right side)."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() == 1:
        close.click()


def _show_column(page: Any, name: str) -> None:
    """Tick the column ``name`` (a param or metric) in the runs table's column selector."""
    page.get_by_placeholder("Search columns").fill(name)
    title = page.locator(".du-bois-light-tree-title").filter(has_text=re.compile(f"^{name}$"))
    node = page.locator("[data-testid=column-selector-tree] .du-bois-light-tree-treenode")
    node.filter(has=title).locator(".du-bois-light-tree-checkbox").click()


def test_runs_table_shows_th_es_and_success_rate(
    experiment: Experiment, server: str, page: Any
) -> None:
    page.goto(f"{server}/#/experiments/{experiment.experiment_id}/runs")
    page.get_by_text(ATTACK_NAME).wait_for()
    page.get_by_text("train small_cnn digits").wait_for()
    _close_assistant(page)
    page.get_by_role("button", name="Columns", exact=True).click()
    for column in ("th", "es", "success_rate"):
        _show_column(page, column)
    page.keyboard.press("Escape")
    headers = page.get_by_role("columnheader")
    for column in ("th", "es", "success_rate"):
        headers.filter(has_text=re.compile(f"^{column}$")).first.wait_for()
    assert {"Parameters", "Metrics"} <= set(headers.all_inner_texts())
    _screenshot(page, "runs_table.png")


@pytest.mark.parametrize("artifact", ["examples.png", "queries.png"])
def test_attack_run_artifact_view_renders_the_picture(
    experiment: Experiment, server: str, page: Any, artifact: str
) -> None:
    run_page = f"{server}/#/experiments/{experiment.experiment_id}/runs/{experiment.attack_run_id}"
    page.goto(f"{run_page}/artifacts/{artifact}")
    page.get_by_text(ATTACK_NAME).first.wait_for()
    _close_assistant(page)
    image = page.locator("img[src^='blob:']").first
    image.wait_for()
    page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=image.element_handle()
    )
    size = image.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    if artifact == "examples.png":
        assert tuple(size) == examples.layout((8, 8, 1), ATTACK.limit).size
    else:
        assert tuple(size) == (600, 400)
    _screenshot(page, f"attack_run_{artifact}")


def test_smallest_th_run_charts_robust_accuracy_against_th(
    experiment: Experiment, server: str, page: Any
) -> None:
    """A th=-1 run's Model metrics tab draws robust_accuracy as a line over its steps,
    which are th = 0..th_max: the accuracy-vs-th curve with no extra work."""
    run_page = (
        f"{server}/#/experiments/{experiment.experiment_id}/runs/{experiment.smallest_run_id}"
    )
    page.goto(run_page)
    page.get_by_text("th=-1 (smallest<=40)").first.wait_for()
    _close_assistant(page)
    page.get_by_role("tab", name="Model metrics").click()
    page.get_by_placeholder("Search metric charts").fill("robust_accuracy")
    page.get_by_text("robust_accuracy", exact=True).first.wait_for()
    # a metric with one value is a bar; one logged at many steps is a line over "Step"
    page.get_by_text("Step", exact=True).wait_for()
    _screenshot(page, "smallest_th_model_metrics.png")


def _run_page(experiment: Experiment, server: str, run_id: str) -> str:
    return f"{server}/#/experiments/{experiment.experiment_id}/runs/{run_id}"


def test_a_failed_run_shows_why_in_its_name_and_description(
    experiment: Experiment, server: str, page: Any
) -> None:
    page.goto(f"{server}/#/experiments/{experiment.experiment_id}/runs")
    page.get_by_text(REFUSED).first.wait_for()  # the runs table: the name says why
    page.goto(_run_page(experiment, server, experiment.failed_run_id))
    _close_assistant(page)
    page.get_by_text("Description").first.wait_for()
    shown = page.get_by_text(REFUSED)
    shown.first.wait_for()
    assert shown.count() >= 2  # the run's name and its description
    _screenshot(page, "failed_run.png")


@pytest.mark.parametrize("artifact", sorted(COMPARE_PICTURES))
def test_compare_run_artifact_view_renders_each_picture(
    experiment: Experiment, server: str, page: Any, artifact: str
) -> None:
    page.goto(f"{_run_page(experiment, server, experiment.compare_run_id)}/artifacts/{artifact}")
    page.get_by_text("compare 2 runs").first.wait_for()
    _close_assistant(page)
    image = page.locator("img[src^='blob:']").first
    image.wait_for()
    page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=image.element_handle()
    )
    size = image.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert tuple(size) == COMPARE_PICTURES[artifact]
    _screenshot(page, f"compare_run_{artifact}")


def test_report_run_shows_the_assessment_page_in_the_artifact_view(
    experiment: Experiment, server: str, page: Any
) -> None:
    """The UI shows report.html in its artifact view: every section, its pictures
    loaded from the page itself, the warning of a small sample in its colour."""
    page.goto(f"{_run_page(experiment, server, experiment.report_run_id)}/artifacts/report.html")
    page.get_by_text("report digits_small_cnn on digits").first.wait_for()
    _close_assistant(page)
    frame = page.frame_locator("iframe").first
    frame.get_by_text("Robustness assessment: digits_small_cnn on digits").wait_for()
    assert frame.locator("h2").all_inner_texts() == SECTIONS
    pictures = frame.locator("img")
    assert pictures.count() == 4  # curves, success against th, each run's examples
    for index in range(pictures.count()):
        picture = pictures.nth(index)
        picture.scroll_into_view_if_needed()
        assert picture.evaluate("image => image.complete && image.naturalWidth > 0")
    warning = SCREENSHOTS / "report_run_warning.png"
    frame.locator(".warning").first.screenshot(path=str(warning))
    with Image.open(warning) as shot:
        colours = {colour for _, colour in shot.convert("RGB").getcolors(maxcolors=1 << 20)}
    assert WARNING_COLOUR in colours
    frame.locator("h1").scroll_into_view_if_needed()
    _screenshot(page, "report_run_report.html.png")
