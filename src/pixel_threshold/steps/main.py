"""Step ``main``: train once (or take the ``model`` given), attack every (attack type,
th, es), evaluate each, compare them, and end with the report of them all.

Every attack gets the same query budget per image: ``max_iter x popsize``, spent by
the random search (``es=2``) one query a step.
"""

from __future__ import annotations

import dataclasses

import mlflow

from pixel_threshold.runs import naming, outcome, records, tracking
from pixel_threshold.runs.params import EvaluateParams, MainParams, ReportParams
from pixel_threshold.steps import compare, plan
from pixel_threshold.steps.attack import run_attack
from pixel_threshold.steps.evaluate import run_evaluate
from pixel_threshold.steps.report import run_report
from pixel_threshold.steps.train import run_train


def run_main(params: MainParams) -> str:
    """Child runs train (none with a ``model`` of its own), then attack and evaluate per
    (attack type, th, es), every attack with ``th_max``; log the comparison of the
    attack runs (``steps.compare``) to this parent run; a last child run reports them
    (``steps.report``), tagged ``report_run_id`` here; return its id.

    The comparison goes to the parent itself, not to a ``compare`` child: it is the
    result of the whole grid, and the parent is the row the runs table shows first.
    """
    with tracking.step_run("main") as run:
        tracking.log_params(params)
        naming.name_run(naming.main_run_name(params))
        grid = plan.main_grid(params)
        train_run_id = None if params.model else run_train(plan.main_train(params))
        model = params.model or f"runs:/{train_run_id}/{tracking.MODEL_ARTIFACT}"
        attack_runs = []
        for attack_params in grid:
            attack_run_id = run_attack(dataclasses.replace(attack_params, model=model))
            run_evaluate(EvaluateParams(attack_run_id=attack_run_id))
            attack_runs.append(records.read_attack_run(attack_run_id))
        compare.log_comparison(attack_runs)
        report_run_id = run_report(
            ReportParams(run_ids=",".join(attack.run_id for attack in attack_runs))
        )
        mlflow.set_tag(tracking.REPORT_RUN_TAG, report_run_id)
        if train_run_id is not None:
            mlflow.set_tag(tracking.TRAIN_RUN_TAG, train_run_id)
        run_id: str = run.info.run_id
    outcome.print_outcome(run_id)
    return run_id
