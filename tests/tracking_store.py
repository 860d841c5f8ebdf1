"""A throw-away MLflow store for a test module: sqlite in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow import MlflowClient


@contextmanager
def sqlite_experiment(root: Path, name: str) -> Iterator[str]:
    """Create experiment ``name`` in a sqlite store under ``root`` and make it the
    tracking URI and experiment of the block (``MLFLOW_TRACKING_URI``,
    ``MLFLOW_EXPERIMENT_ID``); yield its id."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment_id = MlflowClient(uri).create_experiment(
        name, artifact_location=(root / "artifacts").as_uri()
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
        yield experiment_id
