"""MLproject against the entry points' click options: every parameter must arrive.

Dioptra's example passed hard-coded ``--th 10 --es 0 --batch-size 25`` and logged the
user's values; MLflow drops a declared parameter that its command leaves out. Here
each command is rendered by MLflow itself and parsed by the entry point's click
command, and the values that come out must be the values that went in.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from mlflow.projects._project_spec import load_project

from pixel_threshold.artifacts import names
from pixel_threshold.runs.cli import option_name, parameter_fields
from pixel_threshold.runs.params import (
    AttackParams,
    CompareParams,
    EvaluateParams,
    MainParams,
    ReportParams,
    TrainParams,
)

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS: dict[str, type[Any]] = {
    "train": TrainParams,
    "attack": AttackParams,
    "evaluate": EvaluateParams,
    "main": MainParams,
    "compare": CompareParams,
    "report": ReportParams,
}


def _cli(name: str) -> click.Command:
    spec = importlib.util.spec_from_file_location(
        f"entrypoint_{name}", ROOT / "entrypoints" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    command: click.Command = module.cli
    return command


def _parse(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Render the entry point's command with MLflow, then parse it with its click command."""
    entry = load_project(ROOT).get_entry_point(name)
    argv = shlex.split(entry.compute_command(values, storage_dir=None))
    assert argv[:3] == ["PYTHONPATH=src:$PYTHONPATH", "python", f"entrypoints/{name}.py"]
    params: dict[str, Any] = _cli(name).make_context(name, argv[3:]).params
    return params


def _distinct_values(params_type: type[Any]) -> dict[str, Any]:
    """A value per field, different from its default and from every other field's."""
    values: dict[str, Any] = {}
    for number, field in enumerate(dataclasses.fields(params_type), start=1):
        if isinstance(field.default, bool | int):
            values[field.name] = 1000 + number
        elif isinstance(field.default, float):
            values[field.name] = 0.25 + number
        else:
            values[field.name] = f"value {number}: '{field.name}'"  # spaces and quotes survive
    return values


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_parameter_reaches_its_click_option(name: str) -> None:
    values = _distinct_values(ENTRY_POINTS[name])
    assert _parse(name, values) == values


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_mlproject_declares_the_parameters_and_defaults_of_the_entry_point(name: str) -> None:
    declared = load_project(ROOT).get_entry_point(name).parameters
    defaults = {field.name: field.default for field in parameter_fields(ENTRY_POINTS[name])}
    assert list(declared) == list(defaults)
    assert _parse(name, {}) == defaults


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_commands_pass_no_option_without_a_parameter(name: str) -> None:
    entry = load_project(ROOT).get_entry_point(name)
    options = [token for token in entry.command.split() if token.startswith("--")]
    assert options == [option_name(parameter) for parameter in entry.parameters]


def test_project_environment_is_python_3_11_installing_the_project() -> None:
    manifest = yaml.safe_load((ROOT / "MLproject").read_text())
    assert manifest["conda_env"] == "conda.yaml"
    environment = yaml.safe_load((ROOT / manifest["conda_env"]).read_text())
    assert "python=3.11" in environment["dependencies"]
    pip = next(entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict))
    assert any(line.split("[")[0] == "." for line in pip)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_points_run_as_scripts(name: str) -> None:
    done = subprocess.run(
        [sys.executable, f"entrypoints/{name}.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for field in dataclasses.fields(ENTRY_POINTS[name]):
        assert option_name(field.name) in done.stdout


@pytest.mark.parametrize("name", sorted(names.LOGGED))
def test_help_and_the_readme_list_every_file_the_step_logs(name: str) -> None:
    command = _cli(name)
    help_text = " ".join(command.get_help(click.Context(command)).split())
    readme = (ROOT / "README.md").read_text()
    reference = readme[readme.index("## Entry-point reference") :]
    for entry in names.LOGGED[name]:
        assert entry.name in help_text
        assert f"`{entry.name}`" in reference, f"README's reference lacks {entry.name}"
