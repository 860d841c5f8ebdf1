"""The ImageNet class table, WordNet-id folders and the built-in imagenet-sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_threshold import imagenet
from pixel_threshold.data import attack_set, image_folder, training_split


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


def test_imagenet_sample_is_photos_with_their_true_classes() -> None:
    split = training_split("imagenet-sample")
    assert len(split.train_images) == 0
    assert split.test_images.shape == (len(imagenet.SAMPLE_PHOTOS), 224, 224, 3)
    assert split.test_images.dtype == np.uint8
    assert split.class_names == imagenet.wnids()
    assert split.test_labels.tolist() == [
        imagenet.wnid_index()[wnid] for _, _, wnid in imagenet.SAMPLE_PHOTOS
    ]
    assert split.test_labels.tolist() == [282, 967, 657, 872, 892, 698]
    for image in split.test_images:  # real photos: varied, not blank
        assert image.std() > 20
    chosen = attack_set("imagenet-sample", (224, 224, 3), limit=2)
    assert np.array_equal(chosen.images, split.test_images[:2])


def test_keras_and_cache_folders_follow_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "k"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert imagenet.keras_models_dir() == tmp_path / "k" / "models"
    assert imagenet.cache_dir() == tmp_path / "c" / "pixel-threshold"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert imagenet.keras_models_dir() == tmp_path / ".keras" / "models"
    assert imagenet.cache_dir() == tmp_path / ".cache" / "pixel-threshold"
