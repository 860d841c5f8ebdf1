"""Entry point ``report``: ``python entrypoints/report.py --help`` lists its options."""

from pixel_threshold.runs.cli import command
from pixel_threshold.runs.params import ReportParams


def report(params: ReportParams) -> None:
    """Run the step (importing MLflow's tracking only now, so that ``--help`` is quick)."""
    from pixel_threshold.steps.report import run_report

    run_report(params)


cli = command("report", ReportParams, report)

if __name__ == "__main__":
    cli()
