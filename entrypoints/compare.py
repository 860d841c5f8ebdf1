"""Entry point ``compare``: ``python entrypoints/compare.py --help`` lists its options."""

from pixel_threshold.runs.cli import command
from pixel_threshold.runs.params import CompareParams


def compare(params: CompareParams) -> None:
    """Run the step (importing MLflow's tracking only now, so that ``--help`` is quick)."""
    from pixel_threshold.steps.compare import run_compare

    run_compare(params)


cli = command("compare", CompareParams, compare)

if __name__ == "__main__":
    cli()
