"""Files a pixel-threshold step logged to its MLflow run, as a Dioptra job's artifact
outputs: ``adv_testing.tar.gz``, the pictures, the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from dioptra.sdk.api.artifact import ArtifactTaskInterface


class RunFileArtifactTask(ArtifactTaskInterface):
    """The file ``path`` of the MLflow run whose id the graph gives as contents."""

    @staticmethod
    def serialize(working_dir: Path, name: str, contents: Any, **kwargs: Any) -> Path:
        folder = Path(working_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        downloaded = mlflow.artifacts.download_artifacts(
            run_id=str(contents), artifact_path=kwargs["path"], dst_path=str(folder)
        )
        return Path(downloaded)

    @staticmethod
    def deserialize(working_dir: Path, path: str, **kwargs: Any) -> Path:
        return Path(working_dir) / path

    @staticmethod
    def validation() -> dict[str, Any] | None:
        return {"path": {"type": "string"}}
