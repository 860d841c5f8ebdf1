"""This checkout's entry points run as processes of their own, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(
    name: str, *options: str, cwd: Path, env: Mapping[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """``python entrypoints/<name>.py *options`` in ``cwd`` with ``env``; its output kept."""
    return subprocess.run(
        [sys.executable, str(ROOT / "entrypoints" / f"{name}.py"), *options],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
