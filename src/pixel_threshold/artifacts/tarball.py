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
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

TOP = "adv_testing"
"""The tarball's one top folder (its file name: `names.ADV_TESTING`)."""
MANIFEST = f"{TOP}/manifest.csv"
Table = Mapping[str, Sequence[Any]]
"""Columns of equal length: name -> one value per row."""
PNG_CHANNELS = {"L": 1, "RGB": 3}


@dataclass(frozen=True)
class Limits:
    """The most an adversarial-set tarball may extract to: bytes per member, members,
    bytes in all."""

    member_bytes: int
    members: int
    total_bytes: int


LIMITS = Limits(member_bytes=256 * 2**20, members=1_000_000, total_bytes=8 * 2**30)
"""Far above any real set (a 224x224 RGB PNG is at most ~150 KB; 50,000 of them,
ImageNet's validation set, ~7.5 GB), far below what a decompression bomb expands to."""


@dataclass(frozen=True)
class AdvTesting:
    """An adversarial set read back: images (N, H, W, C) uint8 and manifest columns (N,)."""

    images: npt.NDArray[np.uint8]
    manifest: dict[str, list[str]]

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        """True class indices (N,), from the manifest."""
        return self.column("label")

    def column(self, name: str) -> npt.NDArray[np.int64]:
        """An integer manifest column (N,), e.g. ``index`` or ``label_after``."""
        if name not in self.manifest:
            raise ValueError(f"expected column {name!r} in {MANIFEST}, found none")
        try:
            return np.array(self.manifest[name], dtype=np.int64)
        except ValueError as error:
            raise ValueError(f"expected integers in {MANIFEST}'s {name!r} column") from error


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


def read_adv_testing(
    path: Path, workdir: Path, *, shape: Sequence[int] | None = None, limits: Limits = LIMITS
) -> AdvTesting:
    """Extract the tarball ``path`` into ``workdir`` and read it back; images must have
    ``shape`` (H, W, C) if given.

    Only ``adv_testing/`` folders and regular files are extracted, within ``limits``,
    and only PNGs listed in the manifest are decoded. Raises ValueError, naming the
    tarball, for anything else: a hostile or broken archive extracts nothing further.
    """
    _extract(path, workdir, limits)
    manifest_path = workdir / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"expected {MANIFEST} in {path.name}, found none")
    manifest = _parse_manifest(manifest_path.read_bytes(), path.name)
    top = (workdir / TOP).resolve()
    images = []
    for file in manifest["file"]:
        image_path = (workdir / PurePosixPath(file)).resolve()
        if not image_path.is_relative_to(top):
            raise ValueError(f"expected manifest files inside {TOP}/, got {file!r}")
        images.append(_read_png(image_path, file, shape))
    if len({image.shape for image in images}) > 1:
        raise ValueError(f"expected images of one shape in {path.name}")
    return AdvTesting(np.stack(images), manifest)


def read_manifest(path: Path, *, limits: Limits = LIMITS) -> dict[str, list[str]]:
    """Only the manifest columns of the tarball ``path``, each (N,) as text, without
    extracting or decoding an image; members are checked as ``read_adv_testing`` does."""
    with _streamed(path) as tar:
        for member in _checked_members(tar, path.name, limits):
            handle = tar.extractfile(member) if member.name == MANIFEST else None
            if handle is not None:
                return _parse_manifest(handle.read(), path.name)
    raise ValueError(f"expected {MANIFEST} in {path.name}, found none")


def _parse_manifest(data: bytes, tarball: str) -> dict[str, list[str]]:
    """The manifest's columns from its CSV bytes; it needs a row and ``file``, ``label``."""
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    except (csv.Error, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {MANIFEST} in {tarball}: {error}") from error
    if not rows:
        raise ValueError(f"expected at least one image in {tarball}'s manifest, got none")
    missing = {"file", "label"} - set(rows[0])
    if missing:
        raise ValueError(f"expected columns {sorted(missing)} in {tarball}'s manifest")
    return {name: [row[name] for row in rows] for name in rows[0]}


def _extract(path: Path, workdir: Path, limits: Limits) -> None:
    """Extract member by member, each checked before a byte of it is written, so that
    a decompression bomb stops at ``limits.total_bytes``."""
    with _streamed(path) as tar:
        for member in _checked_members(tar, path.name, limits):
            tar.extract(member, workdir, filter="data")


@contextmanager
def _streamed(path: Path) -> Iterator[tarfile.TarFile]:
    """The .tar.gz ``path`` opened as a stream; a broken archive, met anywhere in the
    block, raises ValueError naming it."""
    try:
        with tarfile.open(path, "r|gz") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise ValueError(f"cannot read {path.name} as a .tar.gz archive: {error}") from error


def _checked_members(
    tar: tarfile.TarFile, tarball: str, limits: Limits
) -> Iterator[tarfile.TarInfo]:
    """The members of a streamed ``tar``, each checked, and their count and sizes in
    all, before it is yielded."""
    total = 0
    for count, member in enumerate(tar, start=1):
        _check_member(member, tarball, limits)
        total += member.size
        if count > limits.members or total > limits.total_bytes:
            raise ValueError(
                f"expected {tarball} to hold at most {limits.members} members and "
                f"{limits.total_bytes} bytes, got more: refusing a decompression bomb"
            )
        yield member


def _check_member(member: tarfile.TarInfo, tarball: str, limits: Limits) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or name.parts[:1] != (TOP,):
        raise ValueError(f"expected {tarball} to hold only {TOP}/..., got {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise ValueError(
            f"expected {tarball} to hold only folders and regular files, got {member.name!r} "
            "(a link, device or other special file)"
        )
    if member.size > limits.member_bytes:
        raise ValueError(
            f"expected members of {tarball} to hold at most {limits.member_bytes} bytes, "
            f"got {member.name!r} with {member.size}"
        )


def _read_png(path: Path, file: str, shape: Sequence[int] | None) -> npt.NDArray[np.uint8]:
    """An 8-bit grayscale or RGB PNG as (H, W, C) uint8, its size checked before decoding."""
    try:
        with Image.open(path, formats=["PNG"]) as image:
            channels = PNG_CHANNELS.get(image.mode)
            if channels is None:
                raise ValueError(f"expected an 8-bit grayscale or RGB PNG, got mode {image.mode}")
            found = (image.height, image.width, channels)
            if shape is not None and found != tuple(shape):
                raise ValueError(f"expected an image of shape {tuple(shape)}, got {found}")
            pixels = np.asarray(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read {file} from the adversarial set: {error}") from error
    return pixels.reshape(found)


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
