"""Datasets: digits, and folders of class folders (sorted, converted, resized)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_threshold.data.datasets import attack_set, digits, training_split
from pixel_threshold.data.folders import image_folder, read_images


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """zebra/ (RGBA PNGs), ant/ (grayscale JPEG, RGB PNG), and a stray text file."""
    root = tmp_path / "pets"
    for name in ("zebra", "ant", "empty"):
        (root / name).mkdir(parents=True)
    Image.new("RGBA", (6, 4), (10, 20, 30, 0)).save(root / "zebra" / "b.png")
    Image.new("RGBA", (6, 4), (40, 50, 60, 255)).save(root / "zebra" / "a.png")
    Image.new("L", (6, 4), 200).save(root / "ant" / "z.JPG", quality=100)
    Image.new("RGB", (3, 2), (255, 0, 0)).save(root / "ant" / "m.png")
    (root / "ant" / "notes.txt").write_text("not an image")
    return root


def test_folder_classes_and_images_are_sorted(folder: Path) -> None:
    index = image_folder(folder)
    assert index.class_names == ("ant", "empty", "zebra")
    assert [path.relative_to(folder).as_posix() for path in index.paths] == [
        "ant/m.png",
        "ant/z.JPG",
        "zebra/a.png",
        "zebra/b.png",
    ]
    assert index.labels.tolist() == [0, 0, 2, 2]


def test_images_are_converted_to_the_requested_channels_and_size(folder: Path) -> None:
    paths = image_folder(folder).paths
    rgb = read_images(paths, (4, 6, 3)).images
    assert rgb.shape == (4, 4, 6, 3) and rgb.dtype == np.uint8
    assert (rgb[0] == (255, 0, 0)).all()  # 3x2 red PNG resized to 6x4
    assert (np.abs(rgb[1].astype(int) - 200) <= 1).all()  # grayscale JPEG as RGB
    assert (rgb[2] == (40, 50, 60)).all()  # RGBA loses its alpha
    gray = read_images(paths, (4, 6, 1)).images
    assert gray.shape == (4, 4, 6, 1)
    assert gray[0, 0, 0, 0] == round(0.299 * 255)


def test_attack_set_takes_the_first_images_by_path(folder: Path) -> None:
    chosen = attack_set(str(folder), (8, 8, 3), limit=3)
    assert chosen.images.shape == (3, 8, 8, 3)
    assert chosen.labels.tolist() == [0, 0, 2]
    assert chosen.sources == ("ant/m.png", "ant/z.JPG", "zebra/a.png")
    assert chosen.class_names == ("ant", "empty", "zebra")


def test_attack_set_of_digits_is_the_start_of_the_fixed_test_split() -> None:
    split = digits()
    chosen = attack_set("digits", (8, 8, 1), limit=5)
    np.testing.assert_array_equal(chosen.images, split.test_images[:5])
    assert chosen.labels.tolist() == split.test_labels[:5].tolist()
    assert chosen.sources[0] == "digits/test/0"
    assert len(attack_set("digits", (8, 8, 1), limit=10_000).labels) == len(split.test_labels)


def test_digits_are_scaled_to_0_255_and_stratified() -> None:
    split = digits()
    assert split.train_images.shape[1:] == (8, 8, 1)
    assert split.train_images.max() == 255
    assert len(split.test_labels) == 450
    total = np.bincount(split.train_labels) + np.bincount(split.test_labels)
    assert (np.abs(np.bincount(split.test_labels) - total / 4) <= 1).all()


def test_training_split_of_a_folder_takes_its_first_image_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for number in range(4):
            pixels = rng.integers(0, 256, size=(5, 7), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{number}.png")
    split = training_split(str(tmp_path))
    assert split.train_images.shape == (6, 5, 7, 1)
    assert split.test_images.shape == (2, 5, 7, 1)
    assert sorted(split.test_labels.tolist()) == [0, 1]


@pytest.mark.parametrize(
    ("data", "limit", "message"),
    [
        ("mnist", 1, "got data='mnist'"),
        ("digits", 0, "got limit=0"),
        ("digits", 1, r"got a model taking \(4, 4, 1\)"),
    ],
)
def test_attack_set_errors_name_the_parameter(data: str, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attack_set(data, (4, 4, 1) if "model" in message else (8, 8, 1), limit=limit)


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match="found none"):
        image_folder(tmp_path)
    with pytest.raises(ValueError, match="got dataset="):
        training_split(str(tmp_path / "missing"))


def _corrupt_files(root: Path) -> dict[str, bytes]:
    """Unreadable files under root/<class>/: garbage, empty, truncated, a text file."""
    full = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 9, dtype=np.uint8)).save(full, format="PNG")
    files = {
        "a/0_garbage.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,
        "a/1_empty.jpg": b"",
        "b/0_truncated.png": full.getvalue()[: len(full.getvalue()) // 2],
        "b/1_text.jpeg": b"just some text",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return files


def test_unreadable_images_are_skipped_and_reported(tmp_path: Path) -> None:
    corrupt = _corrupt_files(tmp_path)
    for name in ("a/g0.png", "a/g1.png", "b/g0.png", "b/g1.png"):
        Image.new("L", (8, 8), 100).save(tmp_path / name)
    chosen = attack_set(str(tmp_path), (8, 8, 1), limit=10)
    assert chosen.sources == ("a/g0.png", "a/g1.png", "b/g0.png", "b/g1.png")
    assert chosen.labels.tolist() == [0, 0, 1, 1]
    assert [file for file, _ in chosen.skipped] == sorted(corrupt)
    reasons = dict(chosen.skipped)
    assert "truncated" in reasons["b/0_truncated.png"]
    assert reasons["b/1_text.jpeg"].startswith("UnidentifiedImageError")
    # limit counts images read; files after the last one read are not looked at
    first_two = attack_set(str(tmp_path), (8, 8, 1), limit=2)
    assert first_two.sources == ("a/g0.png", "a/g1.png")
    assert [file for file, _ in first_two.skipped] == ["a/0_garbage.png", "a/1_empty.jpg"]


def test_image_bombs_are_skipped_without_decoding_them(
    tmp_path: Path, claimed_png: Callable[[int, int], bytes]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0_bomb.png").write_bytes(claimed_png(20_000, 20_000))
    Image.new("L", (8, 8), 100).save(tmp_path / "a" / "1_good.png")
    chosen = attack_set(str(tmp_path), (8, 8, 1), limit=10)
    assert chosen.sources == ("a/1_good.png",)
    assert chosen.skipped[0][1].startswith("DecompressionBombError")


def test_training_skips_unreadable_images_and_takes_the_first_readable_shape(
    tmp_path: Path,
) -> None:
    _corrupt_files(tmp_path)
    for label in ("a", "b"):
        for number in range(4):
            Image.new("L", (5, 7), 100).save(tmp_path / label / f"g{number}.png")
    split = training_split(str(tmp_path))
    assert split.train_images.shape[1:] == (7, 5, 1)
    assert len(split.train_labels) + len(split.test_labels) == 8
    assert len(split.skipped) == 4


def test_a_folder_of_unreadable_images_is_refused(tmp_path: Path) -> None:
    _corrupt_files(tmp_path)
    with pytest.raises(ValueError, match=r"readable images in data=.*got none: 4 unreadable"):
        attack_set(str(tmp_path), (8, 8, 1), limit=10)
    with pytest.raises(ValueError, match=r"readable images in dataset=.*got none: 4 unreadable"):
        training_split(str(tmp_path))


def test_mixed_sizes_and_modes_are_converted(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    Image.new("P", (5, 3), 0).save(tmp_path / "c" / "0_palette.png")
    Image.new("LA", (9, 9), (200, 0)).save(tmp_path / "c" / "1_gray_alpha.png")
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(tmp_path / "c" / "2_cmyk.jpg", quality=100)
    Image.new("1", (2, 7), 1).save(tmp_path / "c" / "3_bilevel.png")
    wide = np.full((6, 6), 40_000, dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "c" / "4_sixteen_bit.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(tmp_path / "c" / "5_rgba.png")
    for channels in (1, 3):
        chosen = attack_set(str(tmp_path), (4, 4, channels), limit=10)
        assert chosen.images.shape == (6, 4, 4, channels)
        assert not chosen.skipped
    gray = attack_set(str(tmp_path), (4, 4, 1), limit=10).images
    assert (gray[1] == 200).all()  # LA keeps its gray level
    assert (np.abs(gray[2].astype(int) - 255) <= 1).all()  # CMYK (0,0,0,0) is white
    assert (gray[3] == 255).all()  # bilevel 1 is white
    assert (gray[4] == round(40_000 / 257)).all()  # 16-bit scaled, not clipped to 255
    assert Image.open(tmp_path / "c" / "4_sixteen_bit.png").mode == "I;16"


def _banded(path: Path) -> Path:
    """A 40x20 photo: red bands 10 wide at the left and right, green between."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :10, 0] = pixels[:, 30:, 0] = 255
    pixels[:, 10:30, 1] = 255
    Image.fromarray(pixels).save(path)
    return path


def test_crop_keeps_the_centre_of_a_photo_of_another_shape(tmp_path: Path) -> None:
    """Scaled to cover 10x10 (20x10), the centre kept: only the green middle, undistorted."""
    loaded = read_images([_banded(tmp_path / "wide.png")], (10, 10, 3), resize="crop")
    assert loaded.resized == 1
    red, green = loaded.images[0, :, :, 0], loaded.images[0, :, :, 1]
    assert red.max() < 64 and np.all(red[:, 1:-1] == 0)  # no band: a resampled fringe at most
    assert green.min() > 200


def test_stretch_squeezes_the_whole_photo_in(tmp_path: Path) -> None:
    loaded = read_images([_banded(tmp_path / "wide.png")], (10, 10, 3), resize="stretch")
    assert loaded.resized == 1
    row = loaded.images[0, 5]
    assert row[0, 0] > 200 and row[-1, 0] > 200 and row[5, 1] > 200  # red, green, red


def test_refuse_names_the_photo_and_its_size(tmp_path: Path) -> None:
    path = _banded(tmp_path / "wide.png")
    with pytest.raises(
        ValueError,
        match=r"expected images of 10x10 for the model \(resize=refuse\), got .*wide.png of 40x20",
    ):
        read_images([path], (10, 10, 3), resize="refuse")
    assert read_images([path], (20, 40, 3), resize="refuse").resized == 0  # its own size
