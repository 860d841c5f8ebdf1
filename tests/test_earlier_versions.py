"""Runs logged by an earlier version are read, evaluated, compared and resumed by this
one: the two attack runs of `tests/fixtures/runs_v1` (a finished one, and a th=-1 one
interrupted with 5 of 12 images done), as commit f56f629 logged them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pixel_threshold.artifacts import manifest
from pixel_threshold.models import registry
from pixel_threshold.runs import records, tracking
from pixel_threshold.runs.params import AttackParams, CompareParams, EvaluateParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.compare import run_compare
from pixel_threshold.steps.evaluate import run_evaluate
from tests.logged_runs import FIXTURES, log_fixture_run
from tests.tracking_store import sqlite_experiment

V1 = FIXTURES / "runs_v1"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, digits_weights: Path) -> str:
    model = registry.build_model("small_cnn", (8, 8, 1), 10, weights=str(digits_weights))
    path = tmp_path_factory.mktemp("model") / "digits_small_cnn.keras"
    model.save(path)
    return str(path)


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    with sqlite_experiment(tmp_path / "tracking", "earlier-versions") as experiment_id:
        yield experiment_id


def _logged(name: str, experiment: str, model_file: str) -> str:
    return log_fixture_run(V1 / name, experiment, model_file)


def test_a_version_1_run_reads_as_a_typed_record(experiment: str, model_file: str) -> None:
    run_id = _logged("killed-pixel-smallest-random-search", experiment, model_file)
    run = records.attack_run(run_id, param="attack_run_id")
    assert run.status == "KILLED"
    assert run.params == AttackParams(
        model=model_file,
        th=-1,
        th_max=4,
        es=2,
        limit=12,
        max_iter=50,
        popsize=0,
        seed=3,
        batch_size=4,
        loss="margin",
        resize="stretch",  # not logged in version 1: what it did, folders stretched
    )
    assert run.budget == (50, 1) and run.strategy == "random search"
    assert (run.model_uri, run.data, run.train_run_id) == (model_file, "digits", None)
    assert run.metric("th_max") == 4 and np.isnan(run.metric("success_rate"))


def test_a_version_1_manifest_reads_at_its_version(experiment: str, model_file: str) -> None:
    run_id = _logged("killed-pixel-smallest-random-search", experiment, model_file)
    adv = tracking.read_adversarial_set(run_id, (8, 8, 1))
    assert "manifest_version" not in adv.manifest
    logged = manifest.read(adv.manifest, source=run_id)
    assert logged.version == 1 and len(logged.sources) == 5
    assert all(
        (th is None) != success
        for th, success in zip(logged.min_th, logged["success"], strict=True)
    )


def test_a_version_1_run_evaluates_and_compares(experiment: str, model_file: str) -> None:
    run_id = _logged("finished-pixel-th3-de", experiment, model_file)
    evaluated = mlflow.get_run(run_evaluate(EvaluateParams(attack_run_id=run_id)))
    assert evaluated.info.status == "FINISHED"
    assert evaluated.data.tags[tracking.ATTACK_RUN_TAG] == run_id
    assert evaluated.data.metrics["clean_accuracy"] > 0.5
    compared = mlflow.get_run(run_compare(CompareParams(run_ids=run_id)))
    assert compared.info.status == "FINISHED"


def test_an_interrupted_version_1_run_resumes(experiment: str, model_file: str) -> None:
    run_id = _logged("killed-pixel-smallest-random-search", experiment, model_file)
    params = records.attack_run(run_id, param="resume").params
    resumed = mlflow.get_run(run_attack(dataclasses.replace(params, resume=run_id)))
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumed_from"] == run_id
    adv = tracking.read_adversarial_set(resumed.info.run_id, (8, 8, 1))
    logged = manifest.read(adv.manifest, source="resumed")
    assert logged.version == manifest.VERSION and logged["index"].tolist() == list(range(12))
    before = tracking.read_adversarial_set(run_id, (8, 8, 1))
    done = manifest.read(before.manifest, source=run_id)["index"]
    np.testing.assert_array_equal(adv.images[done], before.images)  # reused as they were
