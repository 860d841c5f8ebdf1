"""Datasets as (N, H, W, C) uint8 images in 0-255 with integer labels.

A dataset is named by ``data``/``dataset``: a built-in name (``digits``) or a folder
with one sub-folder per class (the ImageNet layout; PNG or JPEG files). A folder's
classes are its sub-folders in sorted order; its images are sorted by path, and each
is converted to the requested channels (grayscale, RGB; RGBA loses its alpha) and
resized to the requested height and width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLIT_SEED = 0
"""Built-in and folder train/test splits use this fixed seed, so that ``train`` and
``attack`` agree on the test split whatever seeds their runs use."""


@dataclass(frozen=True)
class Split:
    """A train/test split with its class names."""

    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.int64]
    test_images: npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class ImageSet:
    """Images (N, H, W, C) uint8 with labels (N,), class names, and where each came from."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ImageFolder:
    """A folder of class folders: image paths sorted by path, their labels, class names."""

    root: Path
    paths: tuple[Path, ...]
    labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]


def digits(*, seed: int = SPLIT_SEED, test_fraction: float = 0.25) -> Split:
    """scikit-learn's 1,797 handwritten digits, 8x8x1, scaled from 0-16 to 0-255.

    The split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    names = tuple(str(name) for name in bunch.target_names)
    return _split(images, labels, names, seed=seed, test_fraction=test_fraction)


BUILTIN: dict[str, Callable[[], Split]] = {"digits": digits}


def image_folder(root: str | Path, *, param: str = "data") -> ImageFolder:
    """Index a folder with one sub-folder per class.

    Raises ValueError, naming the parameter ``param``, if ``root`` is no folder or
    holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(
            f"expected {param} to be a built-in dataset ({', '.join(BUILTIN)}) or a folder "
            f"of class folders, got {param}={str(root)!r}"
        )
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    found = [
        (path, label)
        for label, name in enumerate(classes)
        for path in (root / name).iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    if not found:
        raise ValueError(
            f"expected class sub-folders holding {'/'.join(IMAGE_SUFFIXES)} images in "
            f"{param}={str(root)!r}, found none"
        )
    found.sort()
    return ImageFolder(
        root,
        tuple(path for path, _ in found),
        np.array([label for _, label in found], dtype=np.int64),
        tuple(classes),
    )


def read_images(paths: Sequence[Path], shape: Sequence[int]) -> npt.NDArray[np.uint8]:
    """Read image files as (N, H, W, C) uint8 for ``shape`` (H, W, C), C 1 or 3."""
    height, width, channels = shape
    if channels not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got shape {tuple(shape)}")
    images = np.empty((len(paths), height, width, channels), dtype=np.uint8)
    for row, path in enumerate(paths):
        with Image.open(path) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
            if converted.size != (width, height):
                converted = converted.resize((width, height), Image.Resampling.BILINEAR)
            images[row] = np.asarray(converted).reshape(height, width, channels)
    return images


def training_split(dataset: str) -> Split:
    """A built-in dataset's split, or a folder's stratified split at its first image's shape.

    A folder's images take the size of its first image (by path), and 1 channel if that
    image is grayscale, else 3.
    """
    if dataset in BUILTIN:
        return BUILTIN[dataset]()
    folder = image_folder(dataset, param="dataset")
    with Image.open(folder.paths[0]) as first:
        shape = (first.height, first.width, 1 if first.mode in ("1", "L", "LA", "I", "F") else 3)
    images = read_images(folder.paths, shape)
    return _split(images, folder.labels, folder.class_names, seed=SPLIT_SEED, test_fraction=0.25)


def attack_set(data: str, shape: Sequence[int], *, limit: int) -> ImageSet:
    """The attacked set: the first ``limit`` images of ``data``, as (N, H, W, C) = ``shape``.

    A built-in dataset gives its test split, which must already have ``shape``; a
    folder gives its images sorted by path, converted and resized to ``shape``.
    """
    if limit < 1:
        raise ValueError(f"expected limit >= 1, got limit={limit}")
    if data in BUILTIN:
        split = BUILTIN[data]()
        if split.test_images.shape[1:] != tuple(shape):
            raise ValueError(
                f"expected a model taking {split.test_images.shape[1:]} images for "
                f"data={data!r}, got a model taking {tuple(shape)}"
            )
        count = min(limit, len(split.test_images))
        return ImageSet(
            split.test_images[:count],
            split.test_labels[:count],
            split.class_names,
            tuple(f"{data}/test/{row}" for row in range(count)),
        )
    folder = image_folder(data)
    paths = folder.paths[:limit]
    return ImageSet(
        read_images(paths, shape),
        folder.labels[: len(paths)],
        folder.class_names,
        tuple(path.relative_to(folder.root).as_posix() for path in paths),
    )


def _split(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    class_names: tuple[str, ...],
    *,
    seed: int,
    test_fraction: float,
) -> Split:
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return Split(train_x, train_y, test_x, test_y, class_names)
