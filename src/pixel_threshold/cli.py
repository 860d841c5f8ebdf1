"""Command-line glue for ``entrypoints/*.py``: click options from a params dataclass.

Each option is named after its field (``max_iter`` -> ``--max-iter``) and takes its
type, default and help from it. A ``ValueError`` from the step (a bad parameter,
named with its value) becomes a one-line error and exit status 1; the step has
already marked its MLflow run FAILED. Ctrl-C or SIGTERM stops the step (which ends
its run KILLED) with the shell's status for the signal: 130 or 143.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pixel_threshold import interrupts

P = TypeVar("P")
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""Defaults that keep the attack's progress bar readable: fewer TensorFlow start-up
notices, no MLflow download bars. Set either variable to override."""


def option_name(field: str) -> str:
    """The command-line option for a parameter: ``max_iter`` -> ``--max-iter``."""
    return "--" + field.replace("_", "-")


def command(name: str, params_type: type[P], step: Callable[[P], object]) -> click.Command:
    """A click command that builds ``params_type`` from its options and calls ``step``."""
    types = typing.get_type_hints(params_type)

    def callback(**values: Any) -> None:
        for variable, value in QUIET.items():
            os.environ.setdefault(variable, value)
        try:
            with interrupts.signals_raise():
                step(params_type(**values))
        except ValueError as error:
            raise click.ClickException(str(error)) from error
        except KeyboardInterrupt as error:
            click.echo(f"{name}: interrupted by {str(error) or 'SIGINT'}", err=True)
            raise SystemExit(interrupts.exit_status(error)) from error

    options: list[click.Parameter] = [
        click.Option(
            [option_name(field.name)],
            type=types[field.name],
            default=field.default,
            show_default=True,
            help=field.metadata["help"],
        )
        for field in dataclasses.fields(typing.cast(Any, params_type))
    ]
    return click.Command(name, callback=callback, params=options, help=params_type.__doc__)
