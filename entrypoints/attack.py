"""Entry point ``attack``: ``python entrypoints/attack.py --help`` lists its options."""

from pixel_threshold.steps import plan
from pixel_threshold.steps.cli import command
from pixel_threshold.steps.params import AttackParams


def attack(params: AttackParams) -> None:
    """Run the step (importing TensorFlow only now, so that ``--help`` is quick)."""
    from pixel_threshold.steps.attack import run_attack

    run_attack(params)


cli = command("attack", AttackParams, attack, check=plan.check_attack)

if __name__ == "__main__":
    cli()
