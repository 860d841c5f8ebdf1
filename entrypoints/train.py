"""Entry point ``train``: ``python entrypoints/train.py --help`` lists its options."""

from pixel_threshold.runs.cli import command
from pixel_threshold.runs.params import TrainParams
from pixel_threshold.steps import plan


def train(params: TrainParams) -> None:
    """Run the step (importing TensorFlow only now, so that ``--help`` is quick)."""
    from pixel_threshold.steps.train import run_train

    run_train(params)


cli = command("train", TrainParams, train, check=plan.check_train)

if __name__ == "__main__":
    cli()
