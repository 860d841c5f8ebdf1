"""The ImageNet class table, WordNet-id folders and the built-in imagenet-sample."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_threshold.data import imagenet
from pixel_threshold.data.datasets import attack_set, training_split
from pixel_threshold.data.folders import image_folder
from pixel_threshold.models import weights


def test_the_class_table_is_imagenets() -> None:
    table = imagenet.classes()
    assert len(table) == 1000
    assert len(set(imagenet.wnids())) == 1000
    assert list(imagenet.wnids()) == sorted(imagenet.wnids())
    assert all(imagenet.WNID.fullmatch(wnid) for wnid in imagenet.wnids())
    assert (table[281].wnid, table[281].words.split(",")[0]) == ("n02123045", "tabby")
    assert table[285].words == "Egyptian cat"
    assert (table[967].words, table[968].words) == ("espresso", "cup")


def _write(path: Path, color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), color).save(path)


def test_pictures_show_imagenet_classes_by_their_words() -> None:
    names = imagenet.display_names(imagenet.wnids())
    assert (names[281], names[282], names[967]) == ("tabby", "tiger cat", "espresso")
    assert imagenet.display_names(("0", "1")) == ("0", "1")


def test_wordnet_id_folders_take_their_imagenet_indices(tmp_path: Path) -> None:
    _write(tmp_path / "n07920052" / "a.png", (200, 100, 0))
    _write(tmp_path / "n02123045" / "b.png", (0, 100, 200))
    _write(tmp_path / "n02123045" / "c.jpg", (10, 10, 10))
    folder = image_folder(tmp_path)
    assert folder.class_names == imagenet.wnids()
    assert folder.labels.tolist() == [281, 281, 967]
    chosen = attack_set(str(tmp_path), (224, 224, 3), limit=None)
    assert chosen.images.shape == (3, 224, 224, 3)
    assert chosen.labels.tolist() == [281, 281, 967]
    assert chosen.sources == ("n02123045/b.png", "n02123045/c.jpg", "n07920052/a.png")
    assert len(chosen.class_names) == 1000


@pytest.mark.parametrize("names", [["n02123045", "cats"], ["n99999999"]])
def test_other_folders_keep_their_own_sorted_classes(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        _write(tmp_path / name / "x.png", (1, 2, 3))
    folder = image_folder(tmp_path)
    assert folder.class_names == tuple(sorted(names))
    assert folder.labels.tolist() == list(range(len(names)))


SCIKIT_LABELS = [282, 967, 657, 872, 892, 698]
"""chelsea (tiger cat), coffee (espresso), rocket (missile), camera (tripod), clock (wall
clock), china.jpg (palace): the sample's first six, as before foolbox's were added."""


def test_imagenet_sample_is_photos_with_their_true_classes() -> None:
    split = training_split("imagenet-sample")
    assert len(split.train_images) == 0
    assert imagenet.SAMPLE_SIZE == 26
    assert split.test_images.shape == (26, 224, 224, 3)
    assert split.test_images.dtype == np.uint8
    assert split.class_names == imagenet.wnids()
    assert split.test_labels[:6].tolist() == SCIKIT_LABELS
    assert split.test_labels[:6].tolist() == [
        imagenet.wnid_index()[wnid] for _, _, wnid in imagenet.SCIKIT_PHOTOS
    ]
    for image in split.test_images:  # real photos: varied, not blank
        assert image.std() > 20
    chosen = attack_set("imagenet-sample", (224, 224, 3), limit=2)
    assert np.array_equal(chosen.images, split.test_images[:2])


def test_the_first_six_are_the_scikit_photos_as_before() -> None:
    images, labels, names = imagenet.sample_photos()
    first = [
        imagenet._centre_crop(imagenet._photo(package, photo))
        for package, photo, _ in imagenet.SCIKIT_PHOTOS
    ]
    assert np.array_equal(images[:6], np.stack(first))
    assert labels[:6].tolist() == SCIKIT_LABELS
    assert names[:6] == tuple(f"{wnid}/{photo}" for _, photo, wnid in imagenet.SCIKIT_PHOTOS)
    chosen = attack_set("imagenet-sample", (224, 224, 3), limit=6)
    assert np.array_equal(chosen.images, np.stack(first))
    assert chosen.labels.tolist() == SCIKIT_LABELS


def test_the_foolbox_photos_follow_in_order_labelled_by_their_file_names() -> None:
    files = imagenet.foolbox_photos()
    assert [path.name[:11] for path, _ in files] == [f"imagenet_{n:02d}" for n in range(20)]
    assert [label for _, label in files] == [int(path.stem.split("_")[2]) for path, _ in files]
    assert files[0][0].name == "imagenet_00_243.jpg"  # bull mastiff
    assert files[19][0].name == "imagenet_19_305.jpg"  # dung beetle
    _, labels, names = imagenet.sample_photos()
    assert labels[6:].tolist() == [label for _, label in files]
    assert (labels[6], labels[9], labels[25]) == (243, 990, 305)
    assert imagenet.classes()[243].words == "bull mastiff"
    assert names[6] == "n02108422/imagenet_00_243.jpg"
    assert names[25] == f"{imagenet.classes()[305].wnid}/imagenet_19_305.jpg"


def test_the_foolbox_photos_are_found_without_importing_foolbox() -> None:
    script = (
        "import sys; from pixel_threshold.data import imagenet; imagenet.sample_photos(); "
        "print(sorted({'foolbox', 'eagerpy', 'git', 'requests'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_missing_foolbox_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, imagenet.FOOLBOX, None)  # find_spec: not installed
    with pytest.raises(ValueError, match=r"foolbox.*pip install '\.\[imagenet\]'"):
        training_split("imagenet-sample")


def test_a_foolbox_without_its_photos_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "imagenet_00_243.jpg").write_bytes(b"")
    spec = importlib.machinery.ModuleSpec(imagenet.FOOLBOX, None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(imagenet.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(ValueError, match=r"expected 20 photos .*imagenet_00_243\.jpg"):
        imagenet.sample_photos()


def test_keras_and_cache_folders_follow_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert weights.keras_models_dir() == tmp_path / "k" / "models"
    assert weights.cache_dir() == tmp_path / "c" / "pixel-threshold"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights.keras_models_dir() == tmp_path / ".keras" / "models"
    assert weights.cache_dir() == tmp_path / ".cache" / "pixel-threshold"
