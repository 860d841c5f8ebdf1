"""What a finished step prints: its run (id and name), the key figures, where the
results are and where the MLflow UI shows them.

``mlflow run`` itself prints only "succeeded"; a plain script printed nothing.
Every figure is read back from the finished run, so what is printed is what was
logged.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlparse

import mlflow
import requests
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from pixel_threshold.artifacts import names
from pixel_threshold.models.sources import first_line
from pixel_threshold.runs import logins, records, tracking

UI_ADDRESS = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` (and ``make ui``) serves a local store by default."""


def print_outcome(run_id: str) -> None:
    """Print `outcome` of the run ``run_id``, an ended step's run. If the tracking server
    does not answer, say so instead: the step is done and logged, and its run's status is
    not to be changed by a summary left unprinted."""
    try:
        text = outcome(mlflow.get_run(run_id))
    except (MlflowException, requests.RequestException) as error:
        print(
            f"run {run_id} is logged, but its outcome is not printed: the tracking server "
            f"did not answer when it was read back ({first_line(error)})",
            file=sys.stderr,
        )
        return
    print(text, flush=True)


def outcome(run: Run) -> str:
    """A few lines on ``run``: ``<step> run <id> '<name>' <status>``, the step's key
    figures, its artifacts (where they are, their names) and its page in the UI."""
    info = run.info
    step = run.data.tags.get(tracking.STEP_TAG, "")
    lines = [f"{step} run {info.run_id} {info.run_name!r} {info.status}"]
    lines += FIGURES.get(step, _no_figures)(run)
    logged = [item.path for item in mlflow.MlflowClient().list_artifacts(info.run_id)]
    lines.append(f"artifacts: {where(info.artifact_uri)} ({', '.join(logged) or 'none'})")
    lines.append(f"in the UI: {ui_page(info.experiment_id, info.run_id)}")
    return "\n  ".join(lines)


def where(uri: str) -> str:
    """An artifact location as a person can open it: a local folder as its path, a
    tracking server's (``mlflow-artifacts:/...``) or a remote one as it is."""
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def ui_page(experiment_id: str, run_id: str) -> str:
    """The run's page: on the tracking server, or with how to serve a local store."""
    uri = mlflow.get_tracking_uri()
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"{UI_ADDRESS}/{page} (serve it: mlflow ui --backend-store-uri {logins.shown(uri)})"


def _train(run: Run) -> list[str]:
    metrics = run.data.metrics
    lines = [f"test accuracy {figure(metrics.get('test_accuracy'))}"]
    for output in run.outputs.model_outputs if run.outputs else []:
        model = mlflow.get_logged_model(output.model_id)
        lines.append(
            f"model: runs:/{run.info.run_id}/{tracking.MODEL_ARTIFACT} = {model.model_uri}, a "
            f"logged model (the run's Logged models, not its Artifacts): "
            f"{where(model.artifact_location)}"
        )
    name = records.TrainRun.of(run).params.register_model_name
    if name:
        versions = mlflow.MlflowClient().search_model_versions(
            f"name = '{name}' and run_id = '{run.info.run_id}'"
        )
        lines += [f"registered as models:/{name}/{version.version}" for version in versions]
    return lines


def _attack(run: Run) -> list[str]:
    metrics = run.data.metrics
    attacked = metrics.get("images_attacked", math.nan)
    rate = metrics.get("success_rate", math.nan)
    fooled = "" if math.isnan(rate) else f", {round(rate * attacked)} of {attacked:.0f} fooled"
    lines = [
        f"success rate {figure(rate)} [{figure(metrics.get('success_rate_ci_low'))}, "
        f"{figure(metrics.get('success_rate_ci_high'))}] (95% interval{fooled}), "
        f"adversarial accuracy {figure(metrics.get('adversarial_accuracy'))} "
        f"(clean {figure(metrics.get('clean_accuracy'))})",
        f"mean queries {figure(metrics.get('mean_queries'), ',.0f')} "
        f"(query budget {figure(metrics.get('query_budget'), ',.0f')} a search), "
        f"{figure(metrics.get('attack_seconds'), '.1f')} s",
    ]
    if "median_min_th" in metrics:
        lines.append(
            f"smallest th: median {figure(metrics['median_min_th'], 'g')}, mean "
            f"{figure(metrics.get('mean_min_th'), '.1f')} over the fooled "
            f"(th_max {figure(metrics.get('th_max'), 'g')})"
        )
    tags = run.data.tags
    version = tags.get(tracking.MODEL_VERSION_TAG)
    lines.append(
        f"model {tags.get(tracking.MODEL_URI_TAG, '')}"
        + (f" (version {version})" if version else "")
        + f", {tags.get(tracking.MODEL_KIND_TAG, '')} returning "
        f"{tags.get(tracking.MODEL_OUTPUTS_TAG, '')}; {tags.get(tracking.STRATEGY_TAG, '')} "
        f"{tags.get(tracking.BUDGET_TAG, '')} (max_iter x popsize)"
    )
    resized = int(metrics.get("resized_images", 0))
    if resized:
        lines.append(
            f"resized {resized} image{'' if resized == 1 else 's'} to the model's size by "
            f"resize={run.data.params.get('resize', 'stretch')}"
        )
    skipped = int(metrics.get("skipped_images", 0))
    if skipped:
        lines.append(_skipped(run.info.run_id, skipped))
    return lines


def _skipped(run_id: str, count: int) -> str:
    """``skipped 3 unreadable images (a.png, b.png, c.png): skipped_images.csv``."""
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{names.SKIPPED_IMAGES}")
    files = [row["file"] for row in csv.DictReader(io.StringIO(text))]
    shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
    return (
        f"skipped {count} unreadable image{'' if count == 1 else 's'} ({shown}): "
        f"{names.SKIPPED_IMAGES} lists each with its reason"
    )


def _evaluate(run: Run) -> list[str]:
    metrics = run.data.metrics
    return [
        f"clean accuracy {figure(metrics.get('clean_accuracy'))}, adversarial accuracy "
        f"{figure(metrics.get('adversarial_accuracy'))}, attack agreement "
        f"{figure(metrics.get('attack_agreement'))} (adversarial images classified as the "
        "attack recorded)",
        f"attack run {run.data.tags.get(tracking.ATTACK_RUN_TAG, '')}",
    ]


def _report(run: Run) -> list[str]:
    attack_runs = run.data.tags.get(tracking.ATTACK_RUNS_TAG, "")
    return [
        f"model {run.data.tags.get(tracking.MODEL_URI_TAG, '')} on "
        f"{run.data.tags.get(tracking.DATA_TAG, '')}; attack runs {attack_runs}",
        f"the page: {names.REPORT_HTML} (opens in the UI's artifact view), "
        f"{names.REPORT_MARKDOWN} for a ticket (with the pictures beside it)",
    ]


def _no_figures(run: Run) -> list[str]:
    return []


FIGURES: Mapping[str, Callable[[Run], list[str]]] = {
    "train": _train,
    "attack": _attack,
    "evaluate": _evaluate,
    "report": _report,
}
"""Each step's key figures; ``main`` and ``compare`` print their tables themselves."""


def figure(value: float | None, spec: str = ".2f") -> str:
    """``value`` formatted by ``spec``; ``n/a`` when missing or NaN."""
    return "n/a" if value is None or math.isnan(value) else format(value, spec)
