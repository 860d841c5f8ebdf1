"""Datasets as (N, H, W, C) uint8 images in 0-255 with integer labels.

A dataset is named by ``data``/``dataset``: a built-in name (``digits``,
``imagenet-sample``) or a folder with one sub-folder per class (`folders`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pixel_threshold.data import imagenet
from pixel_threshold.data.folders import (
    ImageFolder,
    Skipped,
    first_image_shape,
    image_folder,
    nothing_readable,
    read_images,
)

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
    skipped: tuple[Skipped, ...] = ()

    def test_set(self) -> ImageSet:
        """The test split as an ``ImageSet`` (no sources)."""
        return ImageSet(self.test_images, self.test_labels, self.class_names, ())


@dataclass(frozen=True)
class ImageSet:
    """Images (N, H, W, C) uint8 with labels (N,), class names, and where each came from;
    ``skipped`` lists the unreadable files passed over on the way."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    sources: tuple[str, ...]
    skipped: tuple[Skipped, ...] = ()
    resized: int = 0
    """How many images were resized to the model's size (`folders.RESIZES`)."""

    def subset(self, rows: Sequence[int]) -> ImageSet:
        """The images at ``rows``, in that order (no skipped files)."""
        return ImageSet(
            self.images[list(rows)],
            self.labels[list(rows)],
            self.class_names,
            tuple(self.sources[row] for row in rows),
        )


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


def imagenet_sample() -> Split:
    """The photos scikit-image and scikit-learn ship, then the ImageNet validation photos
    of the foolbox wheel, 224x224x3, labelled with their ImageNet classes (see
    ``imagenet.sample_photos``): all in the test split (no training images), with the
    1000 WordNet ids as class names. Raises ValueError if foolbox is not installed."""
    images, labels, _ = imagenet.sample_photos()
    empty = np.empty((0, *images.shape[1:]), dtype=np.uint8)
    return Split(empty, np.empty(0, dtype=np.int64), images, labels, imagenet.wnids())


BUILTIN: dict[str, Callable[[], Split]] = {"digits": digits, "imagenet-sample": imagenet_sample}


def _folder(data: str, *, param: str) -> ImageFolder:
    """``data`` as a folder of class folders; raises ValueError naming ``param`` and the
    built-in datasets it could have named instead."""
    if not Path(data).is_dir():
        raise ValueError(
            f"expected {param} to be a built-in dataset ({', '.join(BUILTIN)}) or a folder "
            f"of class folders, got {param}={str(Path(data))!r}"
        )
    return image_folder(data, param=param)


def training_split(dataset: str, shape: Sequence[int] | None = None) -> Split:
    """A built-in dataset's split, or a folder's stratified split at ``shape`` (H, W, C).

    Without ``shape``, a folder's images take the size of its first image (by path),
    and 1 channel if that image is grayscale, else 3.
    """
    if dataset in BUILTIN:
        return BUILTIN[dataset]()
    folder = _folder(dataset, param="dataset")
    loaded = read_images(folder.paths, shape or first_image_shape(folder))
    split = _split(
        loaded.images,
        folder.labels[list(loaded.read)],
        folder.class_names,
        seed=SPLIT_SEED,
        test_fraction=0.25,
    )
    return dataclasses.replace(split, skipped=folder.relative_skipped(loaded.skipped))


def check_data(data: str, *, param: str = "data") -> None:
    """Raise ValueError, naming ``param``, unless ``data`` is a built-in dataset or a
    folder of class folders holding images: a check before any work."""
    if data not in BUILTIN:
        _folder(data, param=param)


def natural_shape(data: str, *, param: str = "data") -> tuple[int, int, int]:
    """The (H, W, C) of ``data``'s images as they are: a built-in dataset's, or a folder's
    first readable image's (for a model that does not say what size it takes)."""
    if data in BUILTIN:
        height, width, channels = BUILTIN[data]().test_images.shape[1:]
        return (int(height), int(width), int(channels))
    return first_image_shape(_folder(data, param=param))


def attack_set(
    data: str,
    shape: Sequence[int],
    *,
    limit: int | None,
    param: str = "data",
    resize: str = "crop",
) -> ImageSet:
    """The attacked set: the first ``limit`` images of ``data`` (all if None), as
    (N, H, W, C) = ``shape``; errors name the parameter ``param``.

    A built-in dataset gives its test split, which must already have ``shape``; a
    folder gives its images sorted by path, converted and resized to ``shape`` as
    ``resize`` says (`folders.RESIZES`).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"expected limit >= 1, got limit={limit}")
    if data in BUILTIN:
        split = BUILTIN[data]()
        if split.test_images.shape[1:] != tuple(shape):
            raise ValueError(
                f"expected a model taking {split.test_images.shape[1:]} images for "
                f"{param}={data!r}, got a model taking {tuple(shape)}"
            )
        count = len(split.test_images) if limit is None else min(limit, len(split.test_images))
        return ImageSet(
            split.test_images[:count],
            split.test_labels[:count],
            split.class_names,
            tuple(f"{data}/test/{row}" for row in range(count)),
        )
    folder = _folder(data, param=param)
    loaded = read_images(folder.paths, shape, limit=limit, resize=resize)
    if not loaded.read:
        raise nothing_readable(param, folder.root, loaded.skipped)
    return ImageSet(
        loaded.images,
        folder.labels[list(loaded.read)],
        folder.class_names,
        tuple(folder.relative(folder.paths[position]) for position in loaded.read),
        folder.relative_skipped(loaded.skipped),
        loaded.resized,
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
