"""Command-line glue for ``entrypoints/*.py``: click options from a params dataclass.

Each option is named after its field (``max_iter`` -> ``--max-iter``) and takes its
type, default and help from it. The parameters are checked first (`steps.plan`),
before TensorFlow or MLflow is imported: a bad one answers within a second or two,
starts no run of its own, and under ``mlflow run`` is recorded on the run that
``mlflow run`` made (ended FAILED, the error as its description). A ``ValueError``
from the step (a bad parameter, named with its value), an `outbox.UploadFailed`
(results kept on disk, the error names the folder) or MLflow's own (the tracking
server refused a login or permission, or failed) becomes a one-line error and exit
status 1; the step has already marked its MLflow run FAILED (or kept that in the
outbox). Ctrl-C or SIGTERM stops the step (which ends its run KILLED) with the shell's
status for the signal: 130 or 143.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pixel_threshold.artifacts import names
from pixel_threshold.runs import interrupts, outbox

P = TypeVar("P")
MLFLOW_RUN_ID = "MLFLOW_RUN_ID"
"""The run ``mlflow run`` created for this process, if it started it."""
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""Defaults that keep the attack's progress bar readable: fewer TensorFlow start-up
notices, no MLflow download bars. Set either variable to override."""


def option_name(field: str) -> str:
    """The command-line option for a parameter: ``max_iter`` -> ``--max-iter``."""
    return "--" + field.replace("_", "-")


def command(
    name: str,
    params_type: type[P],
    step: Callable[[P], object],
    *,
    check: Callable[[P], object] | None = None,
) -> click.Command:
    """A click command that builds ``params_type`` from its options, checks them with
    ``check`` (which must not import TensorFlow or MLflow) and calls ``step``."""
    types = typing.get_type_hints(params_type)

    def callback(**values: Any) -> None:
        for variable, value in QUIET.items():
            os.environ.setdefault(variable, value)
        params = params_type(**values)
        if check is not None:
            _check(name, params, check)
        try:
            with interrupts.signals_raise():
                step(params)
        except (ValueError, outbox.UploadFailed) as error:
            raise click.ClickException(str(error)) from error
        except Exception as error:
            said = _tracking_error(error)
            if not said:
                raise
            raise click.ClickException(said) from error
        except KeyboardInterrupt as error:
            click.echo(f"{name}: interrupted by {str(error) or 'SIGINT'}", err=True)
            raise SystemExit(interrupts.exit_status(error)) from error

    options: list[click.Parameter] = [
        click.Option(
            [option_name(field.name), *_alias(field)],
            type=types[field.name],
            default=field.default,
            show_default=True,
            help=field.metadata["help"],
        )
        for field in parameter_fields(params_type)
    ]
    text = f"{params_type.__doc__} {names.described(name)}".strip()
    return click.Command(name, callback=callback, params=options, help=text)


def _tracking_error(error: Exception) -> str:
    """What went wrong, in one line (`failures.failure_message`), if ``error`` is
    MLflow's: the tracking server refused a login or permission, or failed; else ''."""
    from mlflow.exceptions import MlflowException

    from pixel_threshold.runs import failures

    return failures.failure_message(error) if isinstance(error, MlflowException) else ""


def _alias(field: dataclasses.Field[Any]) -> list[str]:
    alias = field.metadata.get("alias", "")
    return [option_name(alias)] if alias else []


def parameter_fields(params_type: type[Any]) -> list[dataclasses.Field[Any]]:
    """An entry point's parameters in the order of its options and MLproject: the fields
    of its params dataclass, its own before those it inherits (`--model`
    before `ModelCall`'s `--input-range`)."""
    fields = dataclasses.fields(params_type)
    inherited = {
        field.name
        for base in params_type.__mro__[1:]
        if dataclasses.is_dataclass(base)
        for field in dataclasses.fields(base)
    }
    return sorted(fields, key=lambda field: field.name in inherited)


def _check(name: str, params: P, check: Callable[[P], object]) -> None:
    """Run ``check``; a ValueError becomes the command's error, recorded first on the
    run of ``mlflow run`` if there is one (a plain script has no run yet)."""
    try:
        check(params)
    except ValueError as error:
        if os.environ.get(MLFLOW_RUN_ID):
            from pixel_threshold.runs import tracking

            tracking.record_refusal(name, params, error)
        raise click.ClickException(str(error)) from error
