"""What a report assesses, read back from its attack runs: one model on one data set,
each run's per-image results, and the clean images they attacked.

Everything comes through MLflow (each run's ``adv_testing.tar.gz`` and metrics) and
from the data itself, read as the attacks read it; the model is not loaded, so a
report of an endpoint or a model on another machine needs neither.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import numpy.typing as npt

from pixel_threshold.artifacts import manifest, names, tarball
from pixel_threshold.attack.encodings import ATTACK_TYPES
from pixel_threshold.data import datasets, imagenet
from pixel_threshold.data.folders import Skipped
from pixel_threshold.report.curves import Curve
from pixel_threshold.runs import naming, records, tracking
from pixel_threshold.runs.params import ReportParams
from pixel_threshold.steps import compare

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class AssessedRun:
    """One attack run of the assessment: the run, its per-image results (its manifest),
    a short label for tables, its robustness curve (``th=-1``: th and robust accuracy,
    else empty) and its ``examples.png`` saved as ``examples`` ('' if it logged none)."""

    run: records.AttackRun
    logged: manifest.Manifest
    label: str
    curve: Curve
    examples: str

    @property
    def attacked(self) -> npt.NDArray[np.bool_]:
        return self.logged["attacked"]

    @property
    def fooled(self) -> npt.NDArray[np.bool_]:
        """(N,) images the attack fooled (only attacked ones can be)."""
        fooled: npt.NDArray[np.bool_] = self.logged["attacked"] & self.logged["success"]
        return fooled

    @property
    def indices(self) -> npt.NDArray[np.int64]:
        """(N,) each row's position in the attacked set."""
        return self.logged["index"]


@dataclass(frozen=True)
class Assessment:
    """A model on one data set under every attack run of the report: the clean images
    (the largest set any run attacked; each run attacked its first ``limit``), their
    labels, class names (ImageNet's WordNet ids as words), SHA-256 digests of their
    pixels, the images skipped and resized on the way, and the runs."""

    model_uri: str
    data: str
    shape: Shape
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    sources: tuple[str, ...]
    digests: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    resized: int
    runs: Sequence[AssessedRun]

    @property
    def model_name(self) -> str:
        return naming.model_name(self.model_uri)

    @property
    def first(self) -> records.AttackRun:
        return self.runs[0].run


def report_runs(params: ReportParams, experiment_id: str) -> list[records.AttackRun]:
    """The attack runs ``params.run_ids`` names, in that order; else the experiment's
    (``params.experiment_name``, or ``experiment_id``) latest finished attack run and,
    for each other attack type, the latest finished run of that type on the same model
    and data."""
    if params.run_ids:
        return [
            records.finished_attack_run(run_id.strip(), param="run_ids")
            for run_id in params.run_ids.split(",")
        ]
    experiment_id = tracking.experiment_id(params.experiment_name, experiment_id)
    runs = records.finished_attack_runs(experiment_id)
    latest = runs[-1]
    chosen = {latest.params.attack_type: latest}
    for run in reversed(runs):
        same = (run.model_uri, run.data) == (latest.model_uri, latest.data)
        if same and run.params.attack_type not in chosen:
            chosen[run.params.attack_type] = run
    return [chosen[kind] for kind in ATTACK_TYPES if kind in chosen]


def check_one_assessment(runs: Sequence[records.AttackRun]) -> None:
    """Raise ValueError, naming the runs, unless they attack one model on one data set
    read one way (a report assesses one model; ``compare`` sets several side by side)."""
    for what, values in (
        ("model", [run.model_uri for run in runs]),
        ("data", [run.data for run in runs]),
        ("resize", [run.params.resize for run in runs]),
    ):
        if len(set(values)) > 1:
            listed = ", ".join(
                f"{run.run_id}: {value!r}" for run, value in zip(runs, values, strict=True)
            )
            raise ValueError(
                f"expected run_ids to name attack runs of one {what}, got {listed} (compare "
                "sets different models or data side by side)"
            )


def assess(runs: Sequence[records.AttackRun], folder: Path) -> Assessment:
    """Read back ``runs`` (`check_one_assessment`) and the data they attacked; their
    examples are saved into ``folder``. Raises ValueError if the data no longer gives
    the images the runs attacked (`_check_images`)."""
    check_one_assessment(runs)
    saved = [_adversarial_set(run) for run in runs]
    height, width, channels = saved[0].images.shape[1:]
    shape = (int(height), int(width), int(channels))
    first = runs[0]
    clean = datasets.attack_set(
        first.data, shape, limit=max(run.params.limit for run in runs), resize=first.params.resize
    )
    assessed = []
    for run, adversarial, label in zip(runs, saved, _labels(runs), strict=True):
        logged = manifest.read(adversarial.manifest, source=f"attack run {run.run_id}")
        _check_images(run, logged, adversarial, clean)
        assessed.append(
            AssessedRun(
                run=run,
                logged=logged,
                label=label,
                curve=compare.robustness_curve(run.run_id),
                examples=_save_examples(run, folder),
            )
        )
    return Assessment(
        model_uri=first.model_uri,
        data=first.data,
        shape=shape,
        images=clean.images,
        labels=clean.labels,
        class_names=imagenet.display_names(clean.class_names),
        sources=clean.sources,
        digests=tuple(pixel_digest(image) for image in clean.images),
        skipped=clean.skipped,
        resized=clean.resized,
        runs=assessed,
    )


def pixel_digest(image: npt.NDArray[np.uint8]) -> str:
    """SHA-256 of an image's pixels as attacked: its (H, W, C) uint8 values in row-major
    order, hex."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def _labels(runs: Sequence[records.AttackRun]) -> list[str]:
    """Each run as tables name it: ``pixel th=-1 (smallest<=64) differential evolution``,
    with its id's first 8 characters where two runs would read alike."""
    labels = [
        f"{run.params.attack_type} {naming.th_name(run.params.th, run.th_max or 0)} {run.strategy}"
        for run in runs
    ]
    repeated = Counter(labels)
    return [
        f"{label} ({run.run_id[:8]})" if repeated[label] > 1 else label
        for label, run in zip(labels, runs, strict=True)
    ]


def _adversarial_set(run: records.AttackRun) -> tarball.AdvTesting:
    with tempfile.TemporaryDirectory() as workdir:
        path = tracking.download_adversarial_set(run.run_id, Path(workdir))
        return tarball.read_adv_testing(path, Path(workdir) / "extracted")


def _save_examples(run: records.AttackRun, folder: Path) -> str:
    """``run``'s ``examples.png`` saved into ``folder`` as ``examples_<type>_<id>.png``;
    '' if it logged none."""
    logged = {item.path for item in mlflow.MlflowClient().list_artifacts(run.run_id)}
    if names.EXAMPLES not in logged:
        return ""
    name = names.REPORT_EXAMPLES.format(attack_type=run.params.attack_type, run=run.run_id[:8])
    with tempfile.TemporaryDirectory() as workdir:
        path = mlflow.artifacts.download_artifacts(
            run_id=run.run_id, artifact_path=names.EXAMPLES, dst_path=workdir
        )
        (folder / name).write_bytes(Path(path).read_bytes())
    return name


def _check_images(
    run: records.AttackRun,
    logged: manifest.Manifest,
    adversarial: tarball.AdvTesting,
    clean: datasets.ImageSet,
) -> None:
    """Raise ValueError unless the data still gives the images ``run`` attacked: every
    manifest index within it, with the label the manifest says, and every image the
    attack left unchanged (not fooled) bit-identical to its saved copy."""
    indices = logged["index"]
    if indices.min() < 0 or indices.max() >= len(clean.labels):
        raise ValueError(
            f"expected manifest indices in [0, {len(clean.labels)}) in attack run "
            f"{run.run_id}, got {indices.min()} to {indices.max()}: data={run.data!r} changed"
        )
    unchanged = ~logged["success"]
    if not np.array_equal(clean.labels[indices], adversarial.labels) or not np.array_equal(
        clean.images[indices[unchanged]], adversarial.images[unchanged]
    ):
        raise ValueError(
            f"expected data={run.data!r} to give the images attack run {run.run_id} attacked "
            "(its labels, and its unchanged images bit for bit): the data changed"
        )
