"""An attack's per-image results as ``adv_testing/manifest.csv`` columns, and back, at
every version of the manifest.

The manifest holds every field of ``ImageResult`` but the adversarial image (its
PNG) and the core's own distances (recomputed from the images), written so that
they read back exactly: floats as their shortest round-trip text. A ``th=-1`` run's
manifest also holds ``min_th``, empty for an image not fooled within ``th_max``.

Versions: a manifest says its version in the column ``manifest_version``; one without
it is version 1 (written up to 2026-12-04, f56f629). `read` reads any version: a column
added after a manifest's version reads as its `Column.before` value, so a run logged
by an earlier version still resumes, evaluates and compares. To add a column: a
`Column` in `COLUMNS` with ``since`` the new `VERSION` and what older rows mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pixel_threshold.artifacts.tarball import AdvTesting
from pixel_threshold.attack import ImageResult
from pixel_threshold.attack.distances import DISTANCES, FloatArray, distances

VERSION = 2
"""The version this code writes: 2 added ``manifest_version`` itself."""
VERSION_COLUMN = "manifest_version"
FIRST_VERSION = 1
"""The version of a manifest without ``manifest_version``."""
MIN_TH = "min_th"
SOURCE = "source"


@dataclass(frozen=True)
class Column:
    """A per-image column of the result: its name, its type (int, float or bool), the
    version that added it, and what it reads as in a manifest older than that."""

    name: str
    kind: type
    since: int = FIRST_VERSION
    before: Any = None


COLUMNS = (
    Column("index", int),
    Column("attacked", bool),
    Column("success", bool),
    Column("queries", int),
    Column("generations", int),
    Column("label_before", int),
    Column("label_after", int),
    Column("p_true_before", float),
    Column("p_true_after", float),
)
"""The typed columns of a result besides ``source`` and ``min_th``, in the order written."""


@dataclass(frozen=True)
class Manifest:
    """A manifest read back at any version: its version, the typed `COLUMNS` (each
    (N,)), each image's ``source`` and ``min_th`` (None where not fooled within
    ``th_max``, or for a run at a fixed th)."""

    version: int
    columns: Mapping[str, npt.NDArray[Any]]
    sources: list[str]
    min_th: list[int | None]

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.columns[name]


def columns(
    results: Sequence[ImageResult],
    sources: Sequence[str],
    image_distances: dict[str, FloatArray],
    *,
    smallest: bool = False,
) -> dict[str, list[Any]]:
    """Manifest columns for ``results`` (n,) from images ``sources`` (n,), with the
    Dioptra distances (each (n,)), ``min_th`` if ``smallest`` (a ``th=-1`` run) and the
    version; ``file``, ``label`` and ``label_name`` come first from the tarball writer."""
    smallest_th = (
        {MIN_TH: ["" if result.min_th is None else result.min_th for result in results]}
        if smallest
        else {}
    )
    typed = {
        column.name: [getattr(result, column.name) for result in results] for column in COLUMNS
    }
    return {
        "index": typed.pop("index"),
        SOURCE: list(sources),
        **typed,
        **smallest_th,
        **{name: image_distances[name].tolist() for name in DISTANCES},
        VERSION_COLUMN: [VERSION] * len(results),
    }


def read(manifest: Mapping[str, list[str]], *, source: str) -> Manifest:
    """The manifest of ``source`` (a run id or a file, for errors) at its version.
    Raises ValueError naming a column that version must have and does not, or a value
    that does not read."""
    rows = len(manifest["file"])
    version = _version(manifest.get(VERSION_COLUMN), source)
    required = [column.name for column in COLUMNS if column.since <= version]
    missing = sorted({*required, SOURCE} - set(manifest))
    if missing:
        raise ValueError(
            f"expected the columns {missing} in {source}'s manifest (version {version}), found none"
        )
    typed = {
        column.name: _typed(column, manifest[column.name], source)
        if column.name in manifest
        else np.full(rows, column.before)
        for column in COLUMNS
    }
    min_th = [_min_th(text, source) for text in manifest.get(MIN_TH, [""] * rows)]
    return Manifest(version, typed, list(manifest[SOURCE]), min_th)


def _version(texts: list[str] | None, source: str) -> int:
    if texts is None:
        return FIRST_VERSION
    if len(set(texts)) != 1 or not texts[0].isdigit():
        raise ValueError(
            f"expected one integer {VERSION_COLUMN} in {source}'s manifest, "
            f"got {sorted(set(texts))}"
        )
    return int(texts[0])


def _typed(column: Column, texts: list[str], source: str) -> npt.NDArray[Any]:
    try:
        if column.kind is bool:
            if not set(texts) <= {"True", "False"}:
                raise ValueError
            flags: npt.NDArray[np.bool_] = np.array(texts) == "True"
            return flags
        return np.array([column.kind(text) for text in texts])
    except ValueError:
        raise ValueError(
            f"expected {column.kind.__name__} values in the {column.name} column of {source}'s "
            f"manifest, got {sorted(set(texts))[:3]}"
        ) from None


def _min_th(text: str, source: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(
            f"expected an integer or nothing in the min_th column of {source}'s manifest, "
            f"got {text!r}"
        )
    return int(text)


def results(
    adv: AdvTesting, manifest: Manifest, originals: npt.NDArray[np.uint8]
) -> list[ImageResult]:
    """The results an adversarial set records, one per manifest row, from its images and
    its ``manifest`` (`read`); ``originals`` (N, H, W, C) are the clean images of the
    attacked set, by ``index``, from which each result's distances are recomputed."""
    labels = adv.labels
    restored = []
    for row, adversarial in enumerate(adv.images):
        index = int(manifest["index"][row])
        if not 0 <= index < len(originals):
            raise ValueError(f"expected indices in [0, {len(originals)}), got index={index}")
        l0, l2, linf = distances(originals[index], adversarial)
        restored.append(
            ImageResult(
                label=int(labels[row]),
                adversarial=adversarial,
                l0=l0,
                l2=l2,
                linf=linf,
                min_th=manifest.min_th[row],
                **{column.name: column.kind(manifest[column.name][row]) for column in COLUMNS},
            )
        )
    return restored
