"""The manifest's columns written into adv_testing.tar.gz and read back as results, at
this version and at earlier ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pixel_threshold.artifacts import manifest
from pixel_threshold.artifacts.tarball import AdvTesting, read_adv_testing, write_adv_testing
from pixel_threshold.attack import ImageResult, distances
from pixel_threshold.attack.distances import image_distances

CLASSES = ("cat", "dog", "emu")


def _results(originals: npt.NDArray[np.uint8], min_ths: list[int | None]) -> list[ImageResult]:
    """One result per image: those with a ``min_th`` get that many pixels changed."""
    results = []
    for index, (original, min_th) in enumerate(zip(originals, min_ths, strict=True)):
        adversarial = original.copy()
        adversarial.reshape(-1, original.shape[-1])[: min_th or 0] ^= 0x40
        l0, l2, linf = distances(original, adversarial)
        results.append(
            ImageResult(
                index=index,
                label=index % len(CLASSES),
                adversarial=adversarial,
                attacked=True,
                success=min_th is not None,
                queries=100 * index + 7,
                generations=index,
                p_true_before=0.875,
                p_true_after=0.1 + index / 3,
                label_before=index % len(CLASSES),
                label_after=(index + (min_th is not None)) % len(CLASSES),
                l0=l0,
                l2=l2,
                linf=linf,
                min_th=min_th,
            )
        )
    return results


def _round_trip(
    folder: Path, originals: npt.NDArray[np.uint8], results: list[ImageResult], *, smallest: bool
) -> AdvTesting:
    adversarials = np.stack([result.adversarial for result in results])
    columns = manifest.columns(
        results,
        [f"image{result.index}.png" for result in results],
        image_distances(originals, adversarials),
        smallest=smallest,
    )
    labels = np.array([result.label for result in results])
    write_adv_testing(folder / "a.tar.gz", adversarials, labels, CLASSES, columns)
    return read_adv_testing(folder / "a.tar.gz", folder / "out")


def _scalars(result: ImageResult) -> dict[str, object]:
    """Every field of ``result`` but its image."""
    return {
        field.name: getattr(result, field.name)
        for field in dataclasses.fields(result)
        if field.name != "adversarial"
    }


def _read(adv: AdvTesting) -> manifest.Manifest:
    return manifest.read(adv.manifest, source="a.tar.gz")


@pytest.fixture
def originals() -> npt.NDArray[np.uint8]:
    return np.random.default_rng(0).integers(0, 256, size=(4, 5, 4, 3), dtype=np.uint8)


def test_a_smallest_th_run_s_results_read_back_with_their_min_th(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    results = _results(originals, [3, None, 1, 12])
    adv = _round_trip(tmp_path, originals, results, smallest=True)
    assert adv.manifest["min_th"] == ["3", "", "1", "12"]
    read = manifest.results(adv, _read(adv), originals)
    for got, written in zip(read, results, strict=True):
        np.testing.assert_array_equal(got.adversarial, written.adversarial)
    assert [_scalars(result) for result in read] == [_scalars(result) for result in results]


def test_a_fixed_th_run_s_manifest_has_no_min_th(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    adv = _round_trip(tmp_path, originals, _results(originals, [None] * 4), smallest=False)
    assert "min_th" not in adv.manifest
    assert [result.min_th for result in manifest.results(adv, _read(adv), originals)] == [None] * 4


def test_a_min_th_that_is_not_an_integer_is_refused(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    adv = _round_trip(tmp_path, originals, _results(originals, [3, None, 1, 12]), smallest=True)
    adv.manifest["min_th"][1] = "2.5"
    with pytest.raises(ValueError, match=r"min_th column of a.tar.gz's manifest, got '2\.5'"):
        _read(adv)


def test_the_manifest_says_its_version_and_a_manifest_without_one_is_version_1(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    results = _results(originals, [3, None, 1, 12])
    adv = _round_trip(tmp_path, originals, results, smallest=True)
    assert adv.manifest["manifest_version"] == [str(manifest.VERSION)] * 4
    assert _read(adv).version == manifest.VERSION == 2
    del adv.manifest["manifest_version"]
    first = _read(adv)
    assert first.version == 1
    read = manifest.results(adv, first, originals)
    assert [_scalars(result) for result in read] == [_scalars(result) for result in results]


def test_a_column_added_later_reads_as_its_earlier_meaning_in_older_manifests(
    originals: npt.NDArray[np.uint8], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a new column takes: one record in `COLUMNS`, with the version that adds it
    and what an older manifest's rows mean."""
    adv = _round_trip(tmp_path, originals, _results(originals, [3, None, 1, 12]), smallest=True)
    later = manifest.Column("restarts", int, since=manifest.VERSION + 1, before=0)
    monkeypatch.setattr(manifest, "COLUMNS", (*manifest.COLUMNS, later))
    assert _read(adv)["restarts"].tolist() == [0, 0, 0, 0]
    adv.manifest["manifest_version"] = [str(manifest.VERSION + 1)] * 4
    with pytest.raises(
        ValueError, match=r"columns \['restarts'\] in a.tar.gz's manifest \(version 3\)"
    ):
        _read(adv)
    adv.manifest["restarts"] = ["1", "0", "2", "0"]
    assert _read(adv)["restarts"].tolist() == [1, 0, 2, 0]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("success", "yes", r"bool values in the success column"),
        ("queries", "7.5", r"int values in the queries column"),
        ("manifest_version", "two", r"one integer manifest_version"),
    ],
)
def test_a_value_that_does_not_read_is_refused_naming_its_column(
    originals: npt.NDArray[np.uint8], tmp_path: Path, column: str, value: str, message: str
) -> None:
    adv = _round_trip(tmp_path, originals, _results(originals, [3, None, 1, 12]), smallest=True)
    adv.manifest[column][2] = value
    with pytest.raises(ValueError, match=message):
        _read(adv)


def test_a_manifest_missing_a_column_of_its_version_is_refused(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    adv = _round_trip(tmp_path, originals, _results(originals, [None] * 4), smallest=False)
    del adv.manifest["queries"]
    with pytest.raises(
        ValueError, match=r"columns \['queries'\] in a.tar.gz's manifest \(version 2\)"
    ):
        _read(adv)
