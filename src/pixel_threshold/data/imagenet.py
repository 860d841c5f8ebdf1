"""ImageNet without a network: the 1000 classes and the built-in ``imagenet-sample``
photos. No TensorFlow here.

The class table (``imagenet_classes.csv``, shipped with the package) lists each class
index with its WordNet id and words (the synset's WordNet lemmas, as in ImageNet's
``LOC_synset_mapping.txt``); the indices are the WordNet ids in sorted order, as in
ImageNet's training folders and every Keras application.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

CLASSES = 1000
INPUT_SHAPE = (224, 224, 3)
WNID = re.compile(r"n\d{8}")
"""A WordNet noun id, as ImageNet names its class folders."""


@dataclass(frozen=True)
class ImagenetClass:
    """One of the 1000 classes: its index, WordNet id and words."""

    index: int
    wnid: str
    words: str


@cache
def classes() -> tuple[ImagenetClass, ...]:
    """The 1000 ImageNet classes in index order."""
    text = resources.files("pixel_threshold.data").joinpath("imagenet_classes.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    table = tuple(ImagenetClass(int(row["index"]), row["wnid"], row["words"]) for row in rows)
    if [entry.index for entry in table] != list(range(CLASSES)):
        raise RuntimeError("expected imagenet_classes.csv to list classes 0 to 999 in order")
    return table


def wnids() -> tuple[str, ...]:
    """The WordNet ids of the 1000 classes, in index order (sorted)."""
    return tuple(entry.wnid for entry in classes())


@cache
def wnid_index() -> dict[str, int]:
    """WordNet id -> class index."""
    return {entry.wnid: entry.index for entry in classes()}


def display_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Names to show people: for the 1000 WordNet ids, each class's first words
    (``n02123045`` -> ``tabby``); any other class names as they are."""
    if tuple(class_names) != wnids():
        return tuple(class_names)
    return tuple(entry.words.split(",")[0] for entry in classes())


def is_imagenet_layout(folder_names: list[str]) -> bool:
    """True if every name is the WordNet id of one of the 1000 classes."""
    index = wnid_index()
    return bool(folder_names) and all(name in index for name in folder_names)


SCIKIT_PHOTOS = (
    ("skimage", "chelsea", "n02123159"),
    ("skimage", "coffee", "n07920052"),
    ("skimage", "rocket", "n03773504"),
    ("skimage", "camera", "n04485082"),
    ("skimage", "clock", "n04548280"),
    ("sklearn", "china.jpg", "n03877845"),
)
"""The first six ``imagenet-sample`` photos: (package, photo, WordNet id of its true class).

scikit-image's chelsea, a cat with a striped coat (WordNet's gloss of tiger cat, 282;
ImageNet's tabby 281 and Egyptian cat 285 look alike); coffee, an espresso (967) in a
cup; rocket, a launch vehicle on its pad (missile, 657); camera, a photographer at a
camera on a tripod (872); clock, a wall clock (892), grayscale and blurred; and
scikit-learn's china.jpg, a tower of Beijing's Summer Palace (palace, 698). Left out,
with no ImageNet class that clearly applies: scikit-image's astronaut (a portrait),
coins, textures, cells and drawings, and scikit-learn's flower.jpg (a dahlia).
"""
FOOLBOX = "foolbox"
FOOLBOX_PHOTOS = 20
"""The other ``imagenet-sample`` photos: ImageNet validation photos that the foolbox
wheel (3.3.4, the ``imagenet`` extra) ships as ``foolbox/data/imagenet_NN_<class
index>.jpg``, NN = 00 to 19 (512x512, one 1024x683), taken in NN order."""
FOOLBOX_PHOTO = re.compile(r"imagenet_(\d{2})_(\d{1,3})\.jpg")
SAMPLE_SIZE = len(SCIKIT_PHOTOS) + FOOLBOX_PHOTOS
"""How many photos ``imagenet-sample`` has: the scikit ones first, then foolbox's."""


def sample_photos() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], tuple[str, ...]]:
    """The ``imagenet-sample`` photos as (N, 224, 224, 3) uint8, their class indices (N,)
    and names (``wnid/photo``): the shorter side resized to 256, the centre 224x224 kept.

    ``SCIKIT_PHOTOS`` first, then the ``FOOLBOX_PHOTOS`` (``foolbox_photos``); raises
    ValueError, naming the extra, if foolbox is not installed."""
    foolbox = foolbox_photos()
    images, labels, names = [], [], []
    for package, photo, wnid in SCIKIT_PHOTOS:
        images.append(_centre_crop(_photo(package, photo)))
        labels.append(wnid_index()[wnid])
        names.append(f"{wnid}/{photo}")
    for path, label in foolbox:
        with Image.open(path) as image:
            images.append(_centre_crop(np.asarray(image.convert("RGB"))))
        labels.append(label)
        names.append(f"{classes()[label].wnid}/{path.name}")
    return np.stack(images), np.array(labels, dtype=np.int64), tuple(names)


def foolbox_photos() -> list[tuple[Path, int]]:
    """The ImageNet photos of the installed foolbox wheel in NN order, each with the class
    index its file name gives. foolbox is found, not imported (importing it would load
    eagerpy, GitPython and requests). Raises ValueError, naming the fix, if it is not
    installed or does not hold the ``FOOLBOX_PHOTOS`` expected."""
    spec = importlib.util.find_spec(FOOLBOX)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"expected the package foolbox for dataset 'imagenet-sample' ({FOOLBOX_PHOTOS} of "
            "its photos are ImageNet validation photos shipped with it), found none: "
            "pip install '.[imagenet]'"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = []
    for path in folder.glob("imagenet_*.jpg"):
        match = FOOLBOX_PHOTO.fullmatch(path.name)
        if match and int(match[2]) < CLASSES:
            found.append((int(match[1]), path, int(match[2])))
    found.sort()
    if [number for number, _, _ in found] != list(range(FOOLBOX_PHOTOS)):
        raise ValueError(
            f"expected {FOOLBOX_PHOTOS} photos imagenet_00_<class>.jpg to imagenet_"
            f"{FOOLBOX_PHOTOS - 1}_<class>.jpg in {folder}, got "
            f"{sorted(path.name for _, path, _ in found)}: pip install '.[imagenet]' "
            "(foolbox==3.3.4)"
        )
    return [(path, label) for _, path, label in found]


def _photo(package: str, photo: str) -> npt.NDArray[np.uint8]:
    """A photo shipped in the scikit-image or scikit-learn wheel (no download)."""
    if package == "skimage":
        from skimage import data as skimage_data

        pixels: npt.NDArray[np.uint8] = getattr(skimage_data, photo)()
        return pixels
    from sklearn.datasets import load_sample_image

    return np.asarray(load_sample_image(photo), dtype=np.uint8)


def _centre_crop(pixels: npt.NDArray[np.uint8], *, resize: int = 256) -> npt.NDArray[np.uint8]:
    """An (H, W) or (H, W, 3) photo as (224, 224, 3): shorter side to ``resize``, centre crop."""
    image = Image.fromarray(pixels).convert("RGB")
    scale = resize / min(image.size)
    width, height = round(image.width * scale), round(image.height * scale)
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    size = INPUT_SHAPE[0]
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))
