"""Image folders: a folder with one sub-folder per class (the ImageNet layout; PNG or
JPEG files), read as (N, H, W, C) uint8.

A folder's classes are its sub-folders in sorted order, except that sub-folders all
named by ImageNet WordNet ids (``n02123045``) are the 1000 ImageNet classes, each
folder taking its ImageNet index. A folder's images are sorted by path, and each is
converted to the requested channels (grayscale, RGB; RGBA loses its alpha; 16-bit
grayscale is scaled to 8 bits) and resized to the requested height and width. Files
that cannot be read as images are skipped, and reported with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from pixel_threshold.data import imagenet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")
"""Pillow's modes of one-channel images (with an alpha channel for LA)."""
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
"""Pillow's 16/32-bit integer modes: 16-bit PNGs, whose 0-65535 values are scaled to 0-255."""
UNREADABLE = (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError)
"""What Pillow raises for a file that is not an image it can decode: unknown format,
truncated or corrupt data, or more pixels than its decompression-bomb limit."""
Skipped = tuple[str, str]
RESIZES = ("crop", "stretch", "refuse")
"""How an image of another size than the model's becomes its size (``resize``): ``crop``
scales it so that it covers the size, keeping its aspect ratio, and keeps the centre (as
ImageNet models are evaluated: nothing is distorted, the borders are cut); ``stretch``
scales width and height each to fit (the whole image, distorted); ``refuse`` stops with
the image named. The resize is part of the threat model: the attacked image is the
resized one."""
"""An image file that could not be read: (its path, the reason)."""


@dataclass(frozen=True)
class ReadImages:
    """Image files read as (N, H, W, C) uint8: ``read`` holds each image's position in
    the list of paths, ``skipped`` the unreadable files before the last one read,
    ``resized`` how many images were not of the size asked for."""

    images: npt.NDArray[np.uint8]
    read: tuple[int, ...]
    skipped: tuple[Skipped, ...]
    resized: int = 0


@dataclass(frozen=True)
class ImageFolder:
    """A folder of class folders: image paths sorted by path, their labels, class names."""

    root: Path
    paths: tuple[Path, ...]
    labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]

    def relative(self, path: str | Path) -> str:
        """A path inside the folder, as ``class/file``."""
        return Path(path).relative_to(self.root).as_posix()

    def relative_skipped(self, skipped: Sequence[Skipped]) -> tuple[Skipped, ...]:
        return tuple((self.relative(path), reason) for path, reason in skipped)


def image_folder(root: str | Path, *, param: str = "data") -> ImageFolder:
    """Index a folder with one sub-folder per class.

    Raises ValueError, naming the parameter ``param``, if ``root`` is no folder or
    holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(
            f"expected {param} to be a folder of class folders, got {param}={str(root)!r}"
        )
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    class_names, labels = tuple(classes), {name: label for label, name in enumerate(classes)}
    if imagenet.is_imagenet_layout(classes):
        class_names, labels = imagenet.wnids(), imagenet.wnid_index()
    found = [
        (path, labels[name])
        for name in classes
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
        class_names,
    )


def read_images(
    paths: Sequence[Path],
    shape: Sequence[int],
    *,
    limit: int | None = None,
    resize: str = "crop",
) -> ReadImages:
    """Read image files in order as (N, H, W, C) uint8 for ``shape`` (H, W, C), C 1 or
    3, skipping those that cannot be read, until ``limit`` images are read (all if None);
    an image of another size is resized as ``resize`` says (`RESIZES`)."""
    if resize not in RESIZES:
        raise ValueError(f"expected resize in {RESIZES}, got resize={resize!r}")
    height, width, channels = _image_shape(shape)
    wanted = len(paths) if limit is None else min(limit, len(paths))
    images = np.empty((wanted, height, width, channels), dtype=np.uint8)
    read: list[int] = []
    skipped: list[Skipped] = []
    resized = 0
    for position, path in enumerate(paths):
        if len(read) == wanted:
            break
        try:
            image = _read_image(path, channels)
        except UNREADABLE as error:
            skipped.append((str(path), _reason(error)))
            continue
        if image.size != (width, height):
            if resize == "refuse":
                raise ValueError(
                    f"expected images of {width}x{height} for the model (resize=refuse), got "
                    f"{path} of {image.width}x{image.height}: resize=crop or resize=stretch "
                    "resizes them"
                )
            image = _resized(image, width, height, resize)
            resized += 1
        images[len(read)] = np.asarray(image).reshape(height, width, channels)
        read.append(position)
    return ReadImages(images[: len(read)], tuple(read), tuple(skipped), resized)


def _resized(image: Image.Image, width: int, height: int, resize: str) -> Image.Image:
    if resize == "stretch":
        return image.resize((width, height), Image.Resampling.BILINEAR)
    scale = max(width / image.width, height / image.height)
    covering = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    scaled = image.resize(covering, Image.Resampling.BILINEAR)
    left, top = (covering[0] - width) // 2, (covering[1] - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def _image_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise ValueError(f"expected an (H, W, 1 or 3) image shape, got {tuple(shape)}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _read_image(path: Path, channels: int) -> Image.Image:
    """One image file, 8-bit grey or RGB; raises one of ``UNREADABLE`` if it cannot."""
    with Image.open(path) as image:
        image.load()
        eight_bit: Image.Image = image
        if image.mode in WIDE_MODES:
            wide = np.round(np.asarray(image, dtype=np.float64) / 257.0)
            eight_bit = Image.fromarray(np.clip(wide, 0, 255).astype(np.uint8))
        return eight_bit.convert("L" if channels == 1 else "RGB")


def _reason(error: Exception) -> str:
    """Why a file was skipped: the error's type and message."""
    return f"{type(error).__name__}: {error}"


def nothing_readable(param: str, root: Path, skipped: Sequence[Skipped]) -> ValueError:
    path, reason = skipped[0]
    return ValueError(
        f"expected readable images in {param}={str(root)!r}, got none: {len(skipped)} "
        f"unreadable files skipped (the first, {path}: {reason})"
    )


def first_image_shape(folder: ImageFolder) -> tuple[int, int, int]:
    """(H, W, C) of the folder's first readable image: C is 1 for grayscale, else 3."""
    skipped: list[Skipped] = []
    for path in folder.paths:
        try:
            with Image.open(path) as first:
                first.load()
                return first.height, first.width, 1 if first.mode in GRAY_MODES else 3
        except UNREADABLE as error:
            skipped.append((str(path), _reason(error)))
    raise nothing_readable("dataset", folder.root, skipped)
