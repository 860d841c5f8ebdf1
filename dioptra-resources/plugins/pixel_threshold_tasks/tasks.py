"""pixel-threshold's steps as Dioptra tasks: each runs the step in this process, its
MLflow run nested under the job's run, and returns the step's run id; the attack also
posts its headline figures as job metrics.

The worker needs the ``pixel-threshold`` package installed (README, "From Dioptra").
"""

from __future__ import annotations

import os
from typing import Any

import structlog
from dioptra import pyplugs

from pixel_threshold.runs import records, tracking
from pixel_threshold.runs.params import AttackParams, EvaluateParams, ReportParams, TrainParams
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.report import run_report
from pixel_threshold.steps.train import run_train

LOGGER = structlog.stdlib.get_logger()
JOB_METRICS = (
    "images_attacked",
    "success_rate",
    "success_rate_ci_low",
    "success_rate_ci_high",
    "adversarial_accuracy",
    "clean_accuracy",
    "mean_queries",
    "median_min_th",
)
"""An attack run's metrics posted to the job, where Dioptra's UI shows them (those the
run has: ``median_min_th`` only with th=-1)."""


@pyplugs.register
def train_model(
    dataset: str,
    architecture: str,
    weights: str,
    epochs: int,
    seed: int,
    register_model_name: str,
) -> str:
    """Train (or, with epochs=0, wrap pretrained weights) and return the model's URI."""
    params = TrainParams(
        dataset=dataset,
        architecture=architecture,
        weights=weights,
        epochs=epochs,
        seed=seed,
        register_model_name=register_model_name,
    )
    return f"runs:/{run_train(params)}/{tracking.MODEL_ARTIFACT}"


@pyplugs.register
def attack(
    model_uri: str,
    data: str,
    attack_type: str,
    th: int,
    th_max: int,
    es: int,
    max_iter: int,
    popsize: int,
    limit: int,
    seed: int,
) -> str:
    """Attack the model's first ``limit`` images of ``data``; post the run's headline
    metrics to the job (`JOB_METRICS`); return the attack run's id."""
    params = AttackParams(
        model=model_uri,
        data=data,
        attack_type=attack_type,
        th=th,
        th_max=th_max,
        es=es,
        max_iter=max_iter,
        popsize=popsize,
        limit=limit,
        seed=seed,
    )
    run_id = run_attack(params)
    logged = records.read_attack_run(run_id).metrics
    prefix = f"{attack_type}_"
    for name in JOB_METRICS:
        if name in logged:
            _post_metric(prefix + name, float(logged[name]))
    return run_id


@pyplugs.register
def evaluate(attack_run_id: str) -> str:
    """Evaluate the attack run's adversarial set; return the evaluate run's id."""
    return run_evaluate(EvaluateParams(attack_run_id=attack_run_id))


@pyplugs.register
def report(attack_run_ids: list[str]) -> str:
    """The one-page assessment of the attack runs; return the report run's id."""
    return run_report(ReportParams(run_ids=",".join(attack_run_ids)))


@pyplugs.register
def run_ids(first: str, second: str) -> list[str]:
    """Two run ids as a list (the graph has no list literal of step outputs)."""
    return [first, second]


def _post_metric(name: str, value: float) -> None:
    """Post a job metric through Dioptra's client, as its own plugins do; nothing
    outside a Dioptra job (``__JOB_ID`` unset)."""
    from dioptra.sdk.utilities import auth_client

    job_id = os.environ.get("__JOB_ID")
    if job_id is None:
        return
    client: Any = auth_client.get_authenticated_worker_client(LOGGER, "json")
    client.jobs.append_metric_by_id(job_id=job_id, metric_name=name, metric_value=value)
