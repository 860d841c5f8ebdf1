"""Bad parameters answer at once: the entry points check them before TensorFlow or
MLflow is imported (what took the time), and a plain script starts no run for them.
No wall time is asserted: the imports are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("entry_point", "option", "message"),
    [
        (
            "attack",
            "--es=-1",
            "expected es 0 (CMA-ES), 1 (differential evolution) or 2 (random search), got es=-1",
        ),
        ("main", "--th-values=1,x", "expected comma-separated integers in th_values"),
        ("train", "--epochs=-1", "expected epochs >= 0, got epochs=-1"),
    ],
)
def test_a_bad_parameter_answers_before_tensorflow_or_mlflow_is_imported(
    entry_point: str, option: str, message: str, tmp_path: Path
) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    script = ROOT / "entrypoints" / f"{entry_point}.py"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), option],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"Error: {message}" in done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "numpy" in imported  # -X importtime reports every module
    assert not {"tensorflow", "keras", "mlflow"} & imported
    assert not (tmp_path / "mlflow.db").exists()  # no run: nothing was started


@pytest.mark.parametrize(("entry_point", "alias"), [("attack", "--dataset"), ("train", "--data")])
def test_the_data_parameter_answers_to_the_other_step_s_name(
    entry_point: str, alias: str, tmp_path: Path
) -> None:
    """train's ``dataset`` and attack's ``data`` are one thing: each step takes both names."""
    script = ROOT / "entrypoints" / f"{entry_point}.py"
    done = subprocess.run(
        [sys.executable, str(script), f"{alias}={tmp_path / 'nothing'}", "--epochs=-1"]
        if entry_point == "train"
        else [sys.executable, str(script), f"{alias}={tmp_path / 'nothing'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "No such option" not in done.stderr
    assert "Error: expected" in done.stderr
