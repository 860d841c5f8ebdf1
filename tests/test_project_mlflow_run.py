"""Smoke: ``mlflow run <project> --env-manager local`` of every entry point, as a user would.

Each run is a subprocess against a temporary sqlite tracking store, started in a
temporary directory so that artifacts land there (MLflow's default ``./mlruns``). The
default suite keeps one, ``main`` (which runs train, attack, evaluate and compare in
its process), named as CI names its smoke run; the others are slow.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from pixel_threshold.runs import failures, records, tracking

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "smoke"


class Store:
    """A temporary tracking store and the environment that points at it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.uri,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.printed: dict[str, list[str]] = {}
        """What each entry point's runs printed on stdout, in order."""

    def run(
        self, entry_point: str, *, run_name: str = "", **params: object
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry_point]
        command += ["--env-manager", "local", "--experiment-name", EXPERIMENT]
        command += ["--run-name", run_name] if run_name else []
        for name, value in params.items():
            command += ["-P", f"{name}={value}"]
        done = subprocess.run(
            command, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=300
        )
        self.printed.setdefault(entry_point, []).append(done.stdout)
        return done

    def latest(self, step: str) -> Run:
        client = MlflowClient(self.uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        assert experiment is not None
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.{tracking.STEP_TAG} = '{step}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        assert runs, f"no {step} run"
        run: Run = runs[0]
        return run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    yield Store(tmp_path_factory.mktemp("smoke"))


def _ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def chain(store: Store) -> dict[str, Run]:
    """train, then attack (its model by default), then evaluate (the latest attack)."""
    _ok(store.run("train", epochs=2))
    _ok(store.run("attack", th=2, es=0, limit=12, max_iter=5, popsize=20, batch_size=100))
    _ok(store.run("evaluate"))
    return {step: store.latest(step) for step in ("train", "attack", "evaluate")}


@pytest.mark.slow
def test_train_run_logs_the_model(chain: dict[str, Run], store: Store) -> None:
    run = chain["train"]
    assert run.info.status == "FINISHED"
    assert f"train run {run.info.run_id} 'train small_cnn digits'" in store.printed["train"][0]
    assert run.data.params["epochs"] == "2"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert {"loss", "val_accuracy", "test_accuracy"} <= set(run.data.metrics)
    mlflow.set_tracking_uri(store.uri)
    try:
        info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    assert "keras" in info.flavors


@pytest.mark.slow
def test_attack_run_logs_params_metrics_and_the_tarball(
    chain: dict[str, Run], store: Store, tmp_path: Path
) -> None:
    run = chain["attack"]
    assert run.info.status == "FINISHED"
    assert (run.data.params["th"], run.data.params["es"]) == ("2", "0")
    assert (
        f"attack run {run.info.run_id} {run.info.run_name!r} FINISHED" in store.printed["attack"][0]
    )
    assert run.data.params["batch_size"] == "100"
    # MLproject's default ('', logged shell-quoted by mlflow run) reaches the run and
    # reads back as the loss that ran
    assert run.data.params["loss"] == "''"
    assert records.AttackRun.of(run).loss == "margin"
    assert run.data.metrics["query_budget"] == 5 * 20
    assert run.data.tags[tracking.TRAIN_RUN_TAG] == chain["train"].info.run_id
    metrics = run.data.metrics
    assert metrics["images_attacked"] >= 10
    assert 0 <= metrics["success_rate_ci_low"] <= metrics["success_rate"] <= 1
    assert {"l_0_norm_max", "wasserstein_distance_iqr", "queries_per_second"} <= set(metrics)
    client = MlflowClient(store.uri)
    assert {item.path for item in client.list_artifacts(run.info.run_id)} == {
        "adv_testing.tar.gz",
        "distance_metrics.csv.gz",
        "examples.png",
        "queries.png",
    }
    tarball = client.download_artifacts(run.info.run_id, "adv_testing.tar.gz", str(tmp_path))
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert {name.split("/")[0] for name in names} == {"adv_testing"}
    assert "adv_testing/manifest.csv" in names
    pngs = [name for name in names if name.endswith(".png")]
    assert len(pngs) == 12
    assert {name.split("/")[1] for name in pngs} <= {str(digit) for digit in range(10)}


@pytest.mark.slow
def test_evaluate_run_reproduces_the_attack(chain: dict[str, Run]) -> None:
    run, attack = chain["evaluate"], chain["attack"]
    assert run.info.status == "FINISHED"
    assert run.data.tags[tracking.ATTACK_RUN_TAG] == attack.info.run_id
    assert run.data.metrics["adversarial_accuracy"] == attack.data.metrics["adversarial_accuracy"]
    assert {"clean_precision", "adversarial_recall", "adversarial_f1"} <= set(run.data.metrics)


@pytest.mark.slow
def test_compare_run_tabulates_the_experiment_s_attack_runs(
    chain: dict[str, Run], store: Store, tmp_path: Path
) -> None:
    _ok(store.run("compare", run_name="ci-smoke"))
    run = store.latest("compare")
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "compare"
    assert run.info.run_name == "ci-smoke"  # a name given to mlflow run is kept
    client = MlflowClient(store.uri)
    table = client.download_artifacts(run.info.run_id, "comparison.csv", str(tmp_path))
    with open(table) as handle:
        rows = list(csv.DictReader(handle))
    assert [row["attack_run_id"] for row in rows] == [chain["attack"].info.run_id]
    assert rows[0]["run_name"] == "attack pixel th=2 es=0 cma-es 5x20 digits_small_cnn"


def test_main_run_has_child_runs_and_a_comparison(store: Store) -> None:
    done = store.run(
        "main",
        run_name="ci-smoke",
        th_values="1,2",
        es_values=1,
        limit=8,
        epochs=1,
        max_iter=3,
        popsize=10,
    )
    _ok(done)
    assert "success rate" in done.stdout
    parent = store.latest("main")
    assert parent.info.run_name == "ci-smoke"  # a name given to mlflow run is kept
    assert parent.data.params["th_values"] == "1,2"
    client = MlflowClient(store.uri)
    assert {item.path for item in client.list_artifacts(parent.info.run_id)} == {
        "comparison.csv",
        "comparison.html",
        "success_vs_th.png",
        "queries.png",
    }
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    steps = sorted(child.data.tags[tracking.STEP_TAG] for child in children)
    assert steps == ["attack", "attack", "evaluate", "evaluate", "report", "train"]


@pytest.mark.slow
def test_bad_parameter_exits_non_zero_and_marks_the_run_failed(store: Store) -> None:
    done = store.run("attack", th=0, limit=2)
    assert done.returncode != 0
    assert "expected th >= 1 or th=-1 (each image's smallest), got th=0" in done.stderr
    run = store.latest("attack")
    assert run.info.status == "FAILED"
    assert run.data.params["th"] == "0"
    reason = "expected th >= 1 or th=-1 (each image's smallest), got th=0"
    assert run.data.tags[failures.ERROR_TAG] == reason  # refused before TensorFlow loaded
    assert run.data.tags[failures.DESCRIPTION_TAG] == f"attack failed: {reason}"
    assert run.info.run_name == f"attack failed: {reason}"
