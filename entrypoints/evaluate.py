"""Entry point ``evaluate``: ``python entrypoints/evaluate.py --help`` lists its options."""

from pixel_threshold.runs.cli import command
from pixel_threshold.runs.params import EvaluateParams


def evaluate(params: EvaluateParams) -> None:
    """Run the step (importing TensorFlow only now, so that ``--help`` is quick)."""
    from pixel_threshold.steps.evaluate import run_evaluate

    run_evaluate(params)


cli = command("evaluate", EvaluateParams, evaluate)

if __name__ == "__main__":
    cli()
