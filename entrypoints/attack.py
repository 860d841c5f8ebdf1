"""Entry point ``attack``: ``python entrypoints/attack.py --help`` lists its options."""

from pixel_threshold.runs.cli import command
from pixel_threshold.runs.params import AttackParams
from pixel_threshold.steps import plan


def attack(params: AttackParams) -> None:
    """Run the step (importing TensorFlow only now, so that ``--help`` is quick)."""
    from pixel_threshold.steps.attack import run_attack

    run_attack(params)


cli = command("attack", AttackParams, attack, check=plan.check_attack)

if __name__ == "__main__":
    cli()
