"""The manifest's columns written into adv_testing.tar.gz and read back as results."""

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


@pytest.fixture
def originals() -> npt.NDArray[np.uint8]:
    return np.random.default_rng(0).integers(0, 256, size=(4, 5, 4, 3), dtype=np.uint8)


def test_a_smallest_th_run_s_results_read_back_with_their_min_th(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    results = _results(originals, [3, None, 1, 12])
    adv = _round_trip(tmp_path, originals, results, smallest=True)
    assert adv.manifest["min_th"] == ["3", "", "1", "12"]
    read = manifest.results(adv, originals)
    for got, written in zip(read, results, strict=True):
        np.testing.assert_array_equal(got.adversarial, written.adversarial)
    assert [_scalars(result) for result in read] == [_scalars(result) for result in results]


def test_a_fixed_th_run_s_manifest_has_no_min_th(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    adv = _round_trip(tmp_path, originals, _results(originals, [None] * 4), smallest=False)
    assert "min_th" not in adv.manifest
    assert [result.min_th for result in manifest.results(adv, originals)] == [None] * 4


def test_a_min_th_that_is_not_an_integer_is_refused(
    originals: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    adv = _round_trip(tmp_path, originals, _results(originals, [3, None, 1, 12]), smallest=True)
    adv.manifest["min_th"][1] = "2.5"
    with pytest.raises(ValueError, match=r"manifest's min_th, got '2\.5'"):
        manifest.results(adv, originals)
