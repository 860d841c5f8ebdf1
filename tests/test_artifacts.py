"""The adv_testing.tar.gz writer and its safe reader; CSV tables."""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_threshold.artifacts import read_adv_testing, write_adv_testing, write_table


def _images(count: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 5, 4, channels), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_is_lossless(tmp_path: Path, channels: int) -> None:
    images = _images(6, channels)
    labels = np.array([2, 0, 1, 2, 2, 0])
    columns = {"index": list(range(6)), "success": [True, False] * 3}
    write_adv_testing(tmp_path / "a.tar.gz", images, labels, ("cat", "dog", "emu"), columns)
    read = read_adv_testing(tmp_path / "a.tar.gz", tmp_path / "out")
    np.testing.assert_array_equal(read.images, images)
    assert read.labels.tolist() == labels.tolist()
    assert read.manifest["label_name"] == ["emu", "cat", "dog", "emu", "emu", "cat"]
    assert read.manifest["success"] == ["True", "False"] * 3
    assert read.column("index").tolist() == list(range(6))


def test_layout_is_one_top_folder_with_a_folder_per_class(tmp_path: Path) -> None:
    names = ("cat", "dog", "emu")
    write_adv_testing(
        tmp_path / "a.tar.gz", _images(3, 3), np.array([1, 1, 0]), names, {"index": [0, 1, 2]}
    )
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = {member.name: member for member in tar.getmembers()}
        manifest = tar.extractfile("adv_testing/manifest.csv")
        assert manifest is not None
        rows = list(csv.DictReader(io.TextIOWrapper(manifest)))
        png = tar.extractfile("adv_testing/dog/00000.png")
        assert png is not None
        assert Image.open(png).format == "PNG"
    assert {name.split("/")[0] for name in members} == {"adv_testing"}
    assert {name for name, member in members.items() if member.isdir()} == {
        "adv_testing",
        "adv_testing/cat",
        "adv_testing/dog",
        "adv_testing/emu",
    }
    assert [row["file"] for row in rows] == [
        "adv_testing/dog/00000.png",
        "adv_testing/dog/00001.png",
        "adv_testing/cat/00002.png",
    ]
    assert list(rows[0]) == ["file", "label", "label_name", "index"]


def test_labels_come_from_the_manifest_not_folder_order(tmp_path: Path) -> None:
    # Dioptra read class folders back in lexicographic order: "10" before "2".
    names = tuple(str(number) for number in range(12))
    labels = np.array([10, 2, 11, 1])
    write_adv_testing(tmp_path / "a.tar.gz", _images(4, 1), labels, names, {"index": [0, 1, 2, 3]})
    read = read_adv_testing(tmp_path / "a.tar.gz", tmp_path / "out")
    assert read.labels.tolist() == [10, 2, 11, 1]
    assert read.manifest["file"][0] == "adv_testing/10/00000.png"


@pytest.mark.parametrize("name", ["", "..", "a/b"])
def test_class_names_must_be_folder_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="folder names"):
        write_adv_testing(tmp_path / "a.tar.gz", _images(1, 1), np.array([0]), (name,), {})


def test_columns_must_have_one_value_per_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="column 'index'"):
        write_adv_testing(
            tmp_path / "a.tar.gz", _images(2, 1), np.array([0, 0]), ("a",), {"index": [0]}
        )


def _tarball(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_reader_refuses_members_outside_the_folder(tmp_path: Path) -> None:
    _tarball(tmp_path / "evil.tar.gz", {"../escaped.txt": b"x"})
    with pytest.raises(tarfile.OutsideDestinationError):
        read_adv_testing(tmp_path / "evil.tar.gz", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_reader_refuses_manifest_files_outside_adv_testing(tmp_path: Path) -> None:
    secret = tmp_path / "out" / "secret.png"
    secret.parent.mkdir()
    Image.fromarray(np.zeros((2, 2), dtype=np.uint8)).save(secret)
    manifest = b"file,label,label_name\nadv_testing/../secret.png,0,a\n"
    _tarball(tmp_path / "evil.tar.gz", {"adv_testing/manifest.csv": manifest})
    with pytest.raises(ValueError, match="inside adv_testing"):
        read_adv_testing(tmp_path / "evil.tar.gz", tmp_path / "out")


def test_write_table_gzips_by_suffix(tmp_path: Path) -> None:
    table = {"index": [0, 1], "l_2_norm": [0.5, 1.25]}
    write_table(tmp_path / "t.csv.gz", table)
    write_table(tmp_path / "t.csv", table)
    expected = "index,l_2_norm\n0,0.5\n1,1.25\n"
    with gzip.open(tmp_path / "t.csv.gz", "rt") as handle:
        assert handle.read() == expected
    assert (tmp_path / "t.csv").read_text() == expected
