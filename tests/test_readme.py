"""The README as a newcomer reads it: the first commands work where conda is absent,
the conda error it quotes is the one MLflow prints, the demo logs where the README's
commands look, and its links lead somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pixel_threshold.attack import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _commands(text: str) -> list[str]:
    """The shell commands of ``text``'s sh code blocks, continuation lines joined."""
    blocks = [body for kind, body in CODE_BLOCK.findall(text) if kind == "sh"]
    return [line.strip() for body in blocks for line in body.replace("\\\n", " ").splitlines()]


def test_the_first_code_block_runs_the_steps_with_the_local_env_manager() -> None:
    kind, first = CODE_BLOCK.findall(README)[0]
    steps = [line for line in first.splitlines() if line.startswith("mlflow run")]
    assert kind == "sh"
    assert [line.split()[:2] for line in first.splitlines()[:2]] == [
        ["make", "demo"],
        ["make", "test"],
    ]  # the two commands that do all set-up come first
    assert [line.split()[4] for line in steps] == ["train", "attack"]
    assert all("--env-manager local" in line for line in steps)
    assert "mlflow ui" in first


def test_every_mlflow_run_in_the_readme_names_its_env_manager() -> None:
    runs = [command for command in _commands(README) if command.startswith("mlflow run ")]
    assert len(runs) > 10
    assert all("--env-manager local" in command for command in runs)


def test_the_demo_logs_where_the_readme_commands_look() -> None:
    demo = subprocess.run(
        ["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    runs = [line for line in demo.replace("\\\n", " ").splitlines() if "mlflow run " in line]
    assert len(runs) == 2
    assert not any("--experiment-name" in line for line in runs)  # MLflow's default, as below
    assert not any("--experiment-name" in command for command in _commands(README))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("document", ["README.md", "docs/internals.md", "docs/benchmarks.md"])
def test_links_lead_to_files_and_headings_that_exist(document: str) -> None:
    path = ROOT / document
    for target in re.findall(r"\]\(([^)#]*)(?:#([^)]*))?\)", path.read_text()):
        file, anchor = target
        if file.startswith("http"):
            continue
        linked = (path.parent / file) if file else path
        assert linked.is_file(), f"{document} links to {file}"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", linked.read_text(), re.MULTILINE)
            assert anchor in {_anchor(heading) for heading in headings}, f"#{anchor} in {file}"


@pytest.mark.slow
def test_the_quoted_conda_error_is_mlflow_s_and_the_stuck_run_can_be_deleted(
    tmp_path: Path,
) -> None:
    (quoted,) = [
        line for line in README.splitlines() if "Could not find Conda executable at" in line
    ]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": str(Path(sys.executable).parent),  # no conda on it
    }
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "attack", "-P", "th=1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert quoted.removeprefix("ERROR mlflow.cli: ") in done.stderr
    client = MlflowClient(uri)
    (stuck,) = client.search_runs(["0"])
    assert stuck.info.status == "RUNNING"
    delete = [sys.executable, "-m", "mlflow", "runs", "delete", "--run-id", stuck.info.run_id]
    subprocess.run(delete, env=env, check=True, capture_output=True, timeout=120)
    assert client.search_runs(["0"]) == []


def test_the_strategy_table_is_the_registry() -> None:
    """One row per record of `STRATEGIES`, in its order, with its budget and paper."""
    times = "\N{MULTIPLICATION SIGN}"
    header = (
        f"| es | strategy | default budget (`max_iter` {times} `popsize`) | smallest `popsize` |"
    )
    table = README[README.index(header) :].split("\n\n")[0].splitlines()[2:]
    assert table == [
        f"| {record.es} | {record.label}{f' ({record.detail})' if record.detail else ''} "
        f"| {record.max_iter:,} {times} {record.popsize:,} | {record.min_popsize} "
        f"| {record.paper} |"
        for record in STRATEGIES.values()
    ]
