"""Step ``report``: one page per assessment of a model on one data set, from its attack
runs (typically a Pixel and a Threshold attack at ``th=-1``), for a security engineer
to file as it is.

Logs ``report.html`` (one file, pictures inlined: the MLflow UI shows it in the run's
artifacts), ``report.md`` (for a ticket; its pictures are logged beside it),
``report_images.csv`` (every image: source, class, SHA-256 of its pixels, each run's
outcome), the robustness curves and each run's examples. The model is not loaded:
everything is read from the runs and the data (`assessment`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from pixel_threshold.artifacts import names, tarball
from pixel_threshold.report import page
from pixel_threshold.runs import naming, outcome, tracking
from pixel_threshold.runs.params import ReportParams
from pixel_threshold.steps import assessment, report_sections


def run_report(params: ReportParams) -> str:
    """Write and log the report of the attack runs ``params`` names (`assessment.report_runs`)
    in a run of its own; return its id."""
    with tracking.step_run("report") as run:
        tracking.log_params(params)
        runs = assessment.report_runs(params, run.info.experiment_id)
        assessment.check_one_assessment(runs)
        first = runs[0]
        mlflow.set_tags(
            {
                tracking.ATTACK_RUNS_TAG: ",".join(attack.run_id for attack in runs),
                tracking.MODEL_URI_TAG: first.model_uri,
                tracking.DATA_TAG: first.data,
            }
        )
        naming.name_run(
            f"report {naming.model_name(first.model_uri)} on {naming.dataset_name(first.data)}"
        )
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            assessed = assessment.assess(runs, folder)
            document = report_sections.assessment_page(
                assessed,
                folder,
                tracking_uri=mlflow.get_tracking_uri(),
                experiment=mlflow.get_experiment(first.experiment_id).name,
            )
            page.write_html(document, folder, names.REPORT_HTML)
            page.write_markdown(document, folder, names.REPORT_MARKDOWN)
            tarball.write_table(folder / names.REPORT_IMAGES, report_sections.image_table(assessed))
            mlflow.log_artifacts(str(folder))
        run_id: str = run.info.run_id
    outcome.print_outcome(run_id)
    return run_id
