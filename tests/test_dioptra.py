"""pixel-threshold's Dioptra 1.2.2 resources (``dioptra-resources/``) checked with
Dioptra's own schema, validator and worker code (`tests.dioptra_jobs`): the TOML imports,
each task matches its function, each entrypoint validates, and jobs run in-process
against a sqlite MLflow store, their steps nested under the job's run."""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dioptra import pyplugs
from dioptra.sdk.api.artifact import ArtifactTaskInterface
from mlflow import MlflowClient
from mlflow.entities import Run

from pixel_threshold.runs import tracking
from tests import dioptra_jobs, dioptra_resources
from tests.dioptra_jobs import JobRun
from tests.dioptra_resources import Resources
from tests.tracking_store import sqlite_experiment

RESOURCES = Resources.load(Path(__file__).resolve().parents[1] / "dioptra-resources/dioptra.toml")
TASK_PLUGIN = "pixel_threshold_tasks"
ARTIFACT_PLUGIN = "pixel_threshold_artifacts"
PYTHON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "run_id_list": list[str],
}
"""The Python annotation each declared parameter type stands for."""
SMALL_DEMO = {
    "dataset": "digits",
    "architecture": "small_cnn",
    "weights": "none",
    "epochs": 1,
    "limit": 5,
    "max_iter": 3,
    "popsize": 10,
    "th": 1,
    "es": 1,
}
"""A demo job of a few seconds: one epoch of the small CNN on digits, 5 images attacked."""
SMALL_ASSESSMENT = {"data": "digits", "limit": 3, "max_iter": 3, "popsize": 10, "th_max": 3}


# --- the resource files ------------------------------------------------------------------


def test_toml_validates_against_dioptras_schema_and_importer_checks() -> None:
    assert dioptra_resources.schema_errors(RESOURCES) == []
    assert dioptra_resources.importer_problems(RESOURCES) == []
    assert set(RESOURCES.plugins()) == {TASK_PLUGIN, ARTIFACT_PLUGIN}
    assert set(RESOURCES.entrypoints()) == {"pixel_threshold_demo", "robustness_assessment"}


def test_importer_checks_catch_what_the_schema_lets_through() -> None:
    """The checks are live: an entrypoint parameter typed ``number`` (the schema takes any
    string, the importer only its six types) and an undeclared task parameter type."""
    config = copy.deepcopy(RESOURCES.config)
    config["entrypoints"][0]["params"][0]["type"] = "number"
    config["plugins"][0]["tasks"]["functions"][0]["input_params"][0]["type"] = "text"
    broken = Resources(RESOURCES.root, config)
    assert dioptra_resources.schema_errors(broken) == []
    problems = dioptra_resources.importer_problems(broken)
    assert len(problems) == 2
    assert any("type 'number', not one of" in problem for problem in problems)
    assert any("undeclared type 'text'" in problem for problem in problems)


@pytest.mark.parametrize("task", RESOURCES.function_tasks(TASK_PLUGIN), ids=lambda t: t["name"])
def test_function_task_matches_its_function(task: dict[str, Any]) -> None:
    """Declared inputs are the function's parameters in order, required exactly when they
    have no default, typed as declared; its return is the single declared output."""
    with dioptra_resources.plugin_module(RESOURCES, TASK_PLUGIN, task["filename"]) as module:
        function = getattr(module, task["name"])
        hints = typing.get_type_hints(function)
        parameters = inspect.signature(function).parameters
        registered = pyplugs.info(TASK_PLUGIN, Path(task["filename"]).stem, task["name"]).func
    assert registered is function  # @pyplugs.register: the task engine can call it
    declared = task["input_params"]
    assert [p["name"] for p in declared] == list(parameters)
    for param in declared:
        has_default = parameters[param["name"]].default is not inspect.Parameter.empty
        assert param.get("required", False) is not has_default, param["name"]
        assert hints[param["name"]] == PYTHON_TYPES[param["type"]], param["name"]
    [output] = task["output_params"]
    assert hints["return"] == PYTHON_TYPES[output["type"]]


@pytest.mark.parametrize("task", RESOURCES.artifact_tasks(ARTIFACT_PLUGIN), ids=lambda t: t["name"])
def test_artifact_task_is_an_artifact_task_class(task: dict[str, Any]) -> None:
    with dioptra_resources.plugin_module(RESOURCES, ARTIFACT_PLUGIN, task["filename"]) as module:
        cls = getattr(module, task["name"])
    assert issubclass(cls, ArtifactTaskInterface)
    assert cls.__name__ == task["name"]  # the worker finds artifact tasks by class name
    assert set(cls.validation()) == {p["name"] for p in task["output_params"]}


@pytest.mark.parametrize("entrypoint", sorted(RESOURCES.entrypoints()))
def test_entrypoint_validates_with_the_workers_schema(
    entrypoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job configuration compiles and validates with Dioptra's own validator, under the
    schema the worker writes (artifact tasks limited to the artifact plugin's classes)."""
    monkeypatch.chdir(tmp_path)
    schema = dioptra_resources.write_worker_schema(RESOURCES, entrypoint)
    assert schema == tmp_path / ".dioptra/experiment_schema.json"
    config = dioptra_resources.job_config(RESOURCES, entrypoint)
    assert dioptra_resources.validation_errors(config) == []
    assert config["artifact_outputs"]
    tasks = {name: task["plugin"] for name, task in config["tasks"].items()}
    assert tasks["attack"] == f"{TASK_PLUGIN}.tasks.attack"


def test_worker_schema_checks_artifact_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the worker's schema an unknown artifact task passes Dioptra's validator;
    with it, an unknown task or a ``path`` that is not a string is an error."""
    config = dioptra_resources.job_config(RESOURCES, "pixel_threshold_demo")
    unknown = copy.deepcopy(config)
    unknown["artifact_outputs"]["examples"]["task"]["name"] = "NoSuchTask"
    not_a_path = copy.deepcopy(config)
    not_a_path["artifact_outputs"]["examples"]["task"]["args"]["path"] = 3
    monkeypatch.chdir(tmp_path)
    assert dioptra_resources.validation_errors(unknown) == []
    dioptra_resources.write_worker_schema(RESOURCES, "pixel_threshold_demo")
    assert "NoSuchTask" in " ".join(dioptra_resources.validation_errors(unknown))
    assert dioptra_resources.validation_errors(not_a_path)
    assert dioptra_resources.validation_errors(config) == []


# --- jobs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Jobs:
    """The module's two successful jobs: a demo, and an assessment of the demo's model."""

    demo: JobRun
    assessment: JobRun


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sqlite tracking store and an experiment with an absolute artifact location,
    pinned for the module (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_ID``)."""
    with sqlite_experiment(tmp_path_factory.mktemp("dioptra"), "dioptra-jobs") as experiment:
        yield experiment


@pytest.fixture(scope="module")
def jobs(store: str) -> Jobs:
    """A small demo job, then an assessment of the model it registered (version 1 of
    ``pixel-threshold-model``, the assessment's default ``model_uri``)."""
    demo = dioptra_jobs.run_job(RESOURCES, "pixel_threshold_demo", SMALL_DEMO, job_id=1)
    assert demo.error is None, demo.error
    assessment = dioptra_jobs.run_job(  # the model the demo registered: the default model_uri
        RESOURCES, "robustness_assessment", SMALL_ASSESSMENT, job_id=2
    )
    return Jobs(demo, assessment)


def children(job: JobRun, step: str | None = None) -> list[Run]:
    """The MLflow runs nested under the job's run, of ``step`` if given."""
    client = MlflowClient()
    experiment = client.get_run(job.mlflow_run_id).info.experiment_id
    found = client.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{job.mlflow_run_id}'", max_results=100
    )
    return [run for run in found if step is None or run.data.tags.get(tracking.STEP_TAG) == step]


def artifact_paths(run_id: str) -> set[str]:
    """Every file the run logged, by its path in the run's artifacts."""
    client = MlflowClient()
    paths: set[str] = set()
    folders = [""]
    while folders:
        for entry in client.list_artifacts(run_id, folders.pop() or None):
            if entry.is_dir:
                folders.append(entry.path)
            else:
                paths.add(entry.path)
    return paths


def test_demo_job_finishes_with_nested_step_runs(jobs: Jobs) -> None:
    demo = jobs.demo
    job_run = MlflowClient().get_run(demo.mlflow_run_id)
    assert job_run.info.status == "FINISHED"
    assert demo.client.statuses == ["started", "finished"]
    assert job_run.data.tags["dioptra.jobId"] == "1"
    assert "mlflow.parentRunId" not in job_run.data.tags
    assert job_run.data.params["dataset"] == "digits"
    steps = sorted(run.data.tags[tracking.STEP_TAG] for run in children(demo))
    assert steps == ["attack", "evaluate", "train"]
    assert {run.info.status for run in children(demo)} == {"FINISHED"}
    [attack] = children(demo, "attack")
    [evaluate] = children(demo, "evaluate")
    assert evaluate.data.tags[tracking.ATTACK_RUN_TAG] == attack.info.run_id
    [train] = children(demo, "train")
    [version] = MlflowClient().search_model_versions("name = 'pixel-threshold-model'")
    assert (str(version.version), version.run_id) == ("1", train.info.run_id)


def test_demo_job_artifacts_are_logged_and_registered(jobs: Jobs) -> None:
    demo = jobs.demo
    outputs = {"adv_testing/adv_testing.tar.gz", "examples/examples.png", "queries/queries.png"}
    assert outputs <= artifact_paths(demo.mlflow_run_id)
    root = MlflowClient().get_run(demo.mlflow_run_id).info.artifact_uri
    created = {entry["artifact_uri"] for entry in demo.client.artifacts_created}
    assert created == {f"{root}/{path}" for path in outputs}
    [file] = dioptra_resources.artifact_plugins(RESOURCES, "pixel_threshold_demo")[0]["files"]
    [task] = file["tasks"]["artifacts"]
    assert {entry["task_id"] for entry in demo.client.artifacts_created} == {task["id"]}


def test_demo_job_posts_the_attacks_metrics(jobs: Jobs) -> None:
    """The attack task posts its run's headline metrics to the job, named
    ``pixel_<metric>``, each equal to the attack run's MLflow metric."""
    demo = jobs.demo
    [attack] = children(demo, "attack")
    posted = {metric["name"]: metric["value"] for metric in demo.client.metrics}
    assert "pixel_success_rate" in posted
    assert len(posted) == len(demo.client.metrics)  # each once
    logged = {f"pixel_{name}": value for name, value in attack.data.metrics.items()}
    assert {name: logged.get(name) for name in posted} == posted
    metric_calls = [c for c in demo.client.calls if c.endpoint == "jobs.append_metric_by_id"]
    assert {str(call.arguments["job_id"]) for call in metric_calls} == {"1"}


def test_assessment_job_finishes_with_both_attacks_and_the_report(jobs: Jobs) -> None:
    assessment = jobs.assessment
    assert assessment.error is None, assessment.error
    assert MlflowClient().get_run(assessment.mlflow_run_id).info.status == "FINISHED"
    assert assessment.client.statuses == ["started", "finished"]
    steps = sorted(run.data.tags[tracking.STEP_TAG] for run in children(assessment))
    assert steps == ["attack", "attack", "report"]
    attacks = children(assessment, "attack")
    assert sorted(run.data.params["attack_type"] for run in attacks) == ["pixel", "threshold"]
    assert {run.data.params["th"] for run in attacks} == {"-1"}
    [report] = children(assessment, "report")
    assert {run.info.status for run in children(assessment)} == {"FINISHED"}
    reported = set(report.data.tags[tracking.ATTACK_RUNS_TAG].split(","))
    assert reported == {run.info.run_id for run in attacks}
    paths = artifact_paths(assessment.mlflow_run_id)
    assert "report/report.html" in paths
    assert {
        "pixel_adv_testing/adv_testing.tar.gz",
        "threshold_adv_testing/adv_testing.tar.gz",
    } <= paths
    assert len(assessment.client.artifacts_created) == 3
    posted = {metric["name"] for metric in assessment.client.metrics}
    assert {"pixel_median_min_th", "threshold_median_min_th"} <= posted


def test_failing_job_ends_failed(store: str) -> None:
    """th=0 is refused by the attack step: the job's run ends FAILED, its status
    ``failed``, and nothing is registered as an artifact."""
    values = SMALL_DEMO | {"th": 0}
    failed = dioptra_jobs.run_job(RESOURCES, "pixel_threshold_demo", values, job_id=3)
    assert isinstance(failed.error, ValueError)
    assert "th" in str(failed.error)
    assert MlflowClient().get_run(failed.mlflow_run_id).info.status == "FAILED"
    assert failed.client.statuses == ["started", "failed"]
    assert failed.client.artifacts_created == []
    assert [run.info.status for run in children(failed, "attack")] == ["FAILED"]
