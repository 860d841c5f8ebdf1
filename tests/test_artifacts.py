"""The adv_testing.tar.gz writer and its safe reader; CSV tables."""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_threshold.artifacts.tarball import (
    LIMITS,
    Limits,
    read_adv_testing,
    write_adv_testing,
    write_table,
)


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


def _tarball(path: Path, files: dict[str, bytes], *, extra: tarfile.TarInfo | None = None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        if extra is not None:
            tar.addfile(extra)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _png_bytes(shape: tuple[int, ...] = (5, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros(shape, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _valid(files: int = 1) -> dict[str, bytes]:
    """A minimal valid adversarial set of ``files`` 5x4 grayscale images of class "a"."""
    rows = "".join(f"adv_testing/a/{row:05d}.png,0,a,{row}\n" for row in range(files))
    return {
        **{f"adv_testing/a/{row:05d}.png": _png_bytes() for row in range(files)},
        "adv_testing/manifest.csv": f"file,label,label_name,index\n{rows}".encode(),
    }


def test_valid_crafted_tarball_reads(tmp_path: Path) -> None:
    _tarball(tmp_path / "ok.tar.gz", _valid(2))
    read = read_adv_testing(tmp_path / "ok.tar.gz", tmp_path / "out", shape=(5, 4, 1))
    assert read.images.shape == (2, 5, 4, 1)


@pytest.mark.parametrize(
    "name", ["../escaped.txt", "adv_testing/../../escaped.txt", "/tmp/escaped.txt", "other.txt"]
)
def test_reader_refuses_members_outside_the_folder(tmp_path: Path, name: str) -> None:
    _tarball(tmp_path / "evil.tar.gz", {name: b"x", **_valid()})
    with pytest.raises(ValueError, match="to hold only adv_testing"):
        read_adv_testing(tmp_path / "evil.tar.gz", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "other.txt").exists()


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (tarfile.SYMTYPE, "/etc/passwd"),
        (tarfile.SYMTYPE, "manifest.csv"),  # even a link inside the folder
        (tarfile.LNKTYPE, "adv_testing/manifest.csv"),
        (tarfile.CHRTYPE, ""),
        (tarfile.BLKTYPE, ""),
        (tarfile.FIFOTYPE, ""),
    ],
)
def test_reader_refuses_links_and_devices(tmp_path: Path, kind: bytes, target: str) -> None:
    special = tarfile.TarInfo("adv_testing/a/special")
    special.type, special.linkname = kind, target
    _tarball(tmp_path / "evil.tar.gz", _valid(), extra=special)
    with pytest.raises(ValueError, match="link, device or other special file"):
        read_adv_testing(tmp_path / "evil.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out" / "adv_testing" / "a" / "special").exists()


def test_reader_refuses_an_oversized_member_before_reading_it(tmp_path: Path) -> None:
    # A header that declares 300 MiB (above the default limit) with no data behind it:
    # refused from the header alone.
    huge = tarfile.TarInfo("adv_testing/a/huge.png")
    huge.size = 300 * 2**20
    with tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as tar:
        tar.addfile(huge)
    with pytest.raises(ValueError, match="at most 268435456 bytes"):
        read_adv_testing(tmp_path / "evil.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out" / "adv_testing" / "a" / "huge.png").exists()
    assert LIMITS.member_bytes == 256 * 2**20


def test_reader_stops_a_decompression_bomb_at_the_total_limit(tmp_path: Path) -> None:
    # 40 members of 1 MiB of zeros: 40 MiB that gzip packs into ~40 KB.
    zeros = bytes(2**20)
    files = {f"adv_testing/a/{row:05d}.png": zeros for row in range(40)}
    _tarball(tmp_path / "bomb.tar.gz", files)
    assert (tmp_path / "bomb.tar.gz").stat().st_size < 200_000
    limits = Limits(member_bytes=2**20, members=1000, total_bytes=10 * 2**20)
    with pytest.raises(ValueError, match="decompression bomb"):
        read_adv_testing(tmp_path / "bomb.tar.gz", tmp_path / "out", limits=limits)
    written = list((tmp_path / "out" / "adv_testing" / "a").iterdir())
    assert len(written) == 10  # it stopped at the limit, before the 11th member


def test_reader_limits_the_number_of_members(tmp_path: Path) -> None:
    _tarball(tmp_path / "many.tar.gz", {f"adv_testing/{n}": b"" for n in range(20)})
    limits = Limits(member_bytes=2**20, members=10, total_bytes=2**30)
    with pytest.raises(ValueError, match="at most 10 members"):
        read_adv_testing(tmp_path / "many.tar.gz", tmp_path / "out", limits=limits)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"adv_testing/a/00000.png": _png_bytes()}, "expected adv_testing/manifest.csv"),
        ({"adv_testing/manifest.csv": b"file,label\n"}, "at least one image"),
        ({"adv_testing/manifest.csv": b"name\nx\n"}, r"columns \['file', 'label'\]"),
        (
            {"adv_testing/manifest.csv": b"file,label\nadv_testing/a/gone.png,0\n"},
            "cannot read adv_testing/a/gone.png",
        ),
        (
            {
                "adv_testing/a/00000.png": b"GIF89a not a png",
                "adv_testing/manifest.csv": b"file,label\nadv_testing/a/00000.png,0\n",
            },
            "cannot read adv_testing/a/00000.png",
        ),
        (
            {
                "adv_testing/a/00000.png": _png_bytes((6, 4)),
                "adv_testing/manifest.csv": b"file,label\nadv_testing/a/00000.png,0\n",
            },
            r"shape \(5, 4, 1\), got \(6, 4, 1\)",
        ),
    ],
)
def test_broken_sets_give_clear_errors(
    tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    _tarball(tmp_path / "broken.tar.gz", files)
    with pytest.raises(ValueError, match=message):
        read_adv_testing(tmp_path / "broken.tar.gz", tmp_path / "out", shape=(5, 4, 1))


@pytest.mark.parametrize(
    ("size", "shape", "message"),
    [
        (20_000, None, "could be decompression bomb"),  # above Pillow's own limit
        (12_000, (5, 4, 1), r"shape \(5, 4, 1\), got \(12000, 12000, 3\)"),  # below it
    ],
)
def test_image_bombs_in_the_set_are_not_decoded(
    tmp_path: Path,
    claimed_png: Callable[[int, int], bytes],
    size: int,
    shape: tuple[int, ...] | None,
    message: str,
) -> None:
    files = _valid()
    files["adv_testing/a/00000.png"] = claimed_png(size, size)
    _tarball(tmp_path / "bomb.tar.gz", files)
    with pytest.raises(ValueError, match=message):
        read_adv_testing(tmp_path / "bomb.tar.gz", tmp_path / "out", shape=shape)


@pytest.mark.parametrize(
    "data",
    [b"", b"not a tarball", gzip.compress(b"not a tarball" * 100, mtime=0)],
    ids=["empty", "text", "gzipped-text"],  # a gzip header holds a time: never in an id
)
def test_files_that_are_not_tarballs_give_clear_errors(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "bad.tar.gz").write_bytes(data)
    with pytest.raises(ValueError, match=r"cannot read bad.tar.gz as a .tar.gz archive"):
        read_adv_testing(tmp_path / "bad.tar.gz", tmp_path / "out")


def test_integer_columns_must_hold_integers(tmp_path: Path) -> None:
    files = _valid()
    files["adv_testing/manifest.csv"] = b"file,label\nadv_testing/a/00000.png,cat\n"
    _tarball(tmp_path / "a.tar.gz", files)
    read = read_adv_testing(tmp_path / "a.tar.gz", tmp_path / "out")
    with pytest.raises(ValueError, match=r"integers in adv_testing/manifest\.csv's 'label'"):
        read.labels  # noqa: B018
    with pytest.raises(ValueError, match="expected column 'index' in"):
        read.column("index")


def test_write_table_gzips_by_suffix(tmp_path: Path) -> None:
    table = {"index": [0, 1], "l_2_norm": [0.5, 1.25]}
    write_table(tmp_path / "t.csv.gz", table)
    write_table(tmp_path / "t.csv", table)
    expected = "index,l_2_norm\n0,0.5\n1,1.25\n"
    with gzip.open(tmp_path / "t.csv.gz", "rt") as handle:
        assert handle.read() == expected
    assert (tmp_path / "t.csv").read_text() == expected
