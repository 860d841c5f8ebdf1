"""Files a run logs: the ``adv_testing.tar.gz`` adversarial set and CSV tables.

The tarball holds one top folder ``adv_testing/`` with a sub-folder per class, named
as in the source data, of lossless PNGs, plus ``adv_testing/manifest.csv``: one row
per image with its ``file`` (path inside the tarball), ``label`` (class index),
``label_name`` and the caller's columns. Readers take labels from the manifest,
never from folder names or their order.
"""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

TOP = "adv_testing"
MANIFEST = f"{TOP}/manifest.csv"
Table = Mapping[str, Sequence[Any]]
"""Columns of equal length: name -> one value per row."""


@dataclass(frozen=True)
class AdvTesting:
    """An adversarial set read back: images (N, H, W, C) uint8 and manifest columns (N,)."""

    images: npt.NDArray[np.uint8]
    manifest: dict[str, list[str]]

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        """True class indices (N,), from the manifest."""
        return np.array(self.manifest["label"], dtype=np.int64)

    def column(self, name: str) -> npt.NDArray[np.int64]:
        """An integer manifest column (N,), e.g. ``index`` or ``label_after``."""
        return np.array(self.manifest[name], dtype=np.int64)


def write_adv_testing(
    path: Path,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer[Any]],
    class_names: Sequence[str],
    columns: Table,
) -> None:
    """Write (N, H, W, C) uint8 ``images`` of class ``labels`` (N,) as ``path``.

    Image ``i`` becomes ``adv_testing/<class name>/<i:05d>.png``; ``columns`` (each
    N long) follow ``file``, ``label`` and ``label_name`` in the manifest.
    """
    for name in class_names:
        if name in ("", ".", "..") or any(char in name for char in "/\\\0"):
            raise ValueError(f"expected class names usable as folder names, got {name!r}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected (N, H, W, 1 or 3) uint8 images, got {images.dtype} {images.shape}"
        )
    files = [f"{TOP}/{class_names[label]}/{row:05d}.png" for row, label in enumerate(labels)]
    table: dict[str, Sequence[Any]] = {
        "file": files,
        "label": [int(label) for label in labels],
        "label_name": [class_names[label] for label in labels],
        **columns,
    }
    for name, values in table.items():
        if len(values) != len(images):
            raise ValueError(f"expected {len(images)} values in column {name!r}, got {len(values)}")
    now = time.time()
    with tarfile.open(path, "w:gz") as tar:
        for folder in (TOP, *(f"{TOP}/{name}" for name in class_names)):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(info)
        for file, image in zip(files, images, strict=True):
            _add(tar, file, _png(image), now)
        _add(tar, MANIFEST, _csv(table).encode(), now)


def read_adv_testing(path: Path, workdir: Path) -> AdvTesting:
    """Extract the tarball ``path`` into ``workdir`` and read it back.

    Extraction uses tarfile's ``data`` filter (no absolute paths, links out of
    ``workdir`` or special files), and every manifest ``file`` must lie inside
    ``adv_testing/``.
    """
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(workdir, filter="data")
    top = (workdir / TOP).resolve()
    with open(workdir / MANIFEST, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"expected at least one image in {path.name}'s manifest, got none")
    manifest = {name: [row[name] for row in rows] for name in rows[0]}
    images = []
    for file in manifest["file"]:
        image_path = (workdir / PurePosixPath(file)).resolve()
        if not image_path.is_relative_to(top):
            raise ValueError(f"expected manifest files inside {TOP}/, got {file!r}")
        with Image.open(image_path) as image:
            pixels = np.asarray(image)
        images.append(pixels[..., None] if pixels.ndim == 2 else pixels)
    return AdvTesting(np.stack(images), manifest)


def write_table(path: Path, table: Table) -> None:
    """Write ``table`` as a CSV file with a header row, gzipped if ``path`` ends in .gz."""
    text = _csv(table)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", newline="") as handle:
            handle.write(text)
    else:
        path.write_text(text)


def _csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table)
    writer.writerows(zip(*table.values(), strict=True))
    return buffer.getvalue()


def _png(image: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, mtime
    tar.addfile(info, io.BytesIO(data))
