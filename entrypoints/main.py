"""Entry point ``main``: ``python entrypoints/main.py --help`` lists its options."""

from pixel_threshold.runs.cli import command
from pixel_threshold.runs.params import MainParams
from pixel_threshold.steps import plan


def main(params: MainParams) -> None:
    """Run the step (importing TensorFlow only now, so that ``--help`` is quick)."""
    from pixel_threshold.steps.main import run_main

    run_main(params)


cli = command("main", MainParams, main, check=plan.check_main)

if __name__ == "__main__":
    cli()
