"""Encodings decode to exact integer images within the attack's budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pixel_threshold.attack import PixelEncoding, ThresholdEncoding, make_encoding
from pixel_threshold.attack.encodings import PAIRWISE_BLOCKS, _repeating_rows, distinct_positions

from .conftest import decode_candidates as _decode

shapes = st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3]))


@st.composite
def pixel_cases(draw: st.DrawFn) -> tuple[PixelEncoding, np.ndarray, np.ndarray]:
    shape = draw(shapes)
    th = draw(st.integers(1, shape[0] * shape[1]))
    encoding = PixelEncoding(th, shape)
    image = draw(arrays(np.uint8, shape))
    # genes anywhere, including outside the box: decoding must still be valid
    genes = draw(
        arrays(np.float64, (3, encoding.dimension), elements=st.floats(-50, 400, allow_nan=False))
    )
    return encoding, image, genes


@st.composite
def threshold_cases(draw: st.DrawFn) -> tuple[ThresholdEncoding, np.ndarray, np.ndarray]:
    shape = draw(shapes)
    th = draw(st.integers(1, 255))
    encoding = ThresholdEncoding(th, shape)
    image = draw(arrays(np.uint8, shape))
    unit = draw(arrays(np.float64, (3, encoding.dimension), elements=st.floats(0, 1)))
    genes = encoding.lower + unit * (encoding.upper - encoding.lower)
    return encoding, image, np.minimum(genes, np.nextafter(encoding.upper, 0))


@settings(max_examples=200, deadline=None)
@given(pixel_cases())
def test_pixel_decoding_changes_at_most_th_pixels_to_integers(
    case: tuple[PixelEncoding, np.ndarray, np.ndarray],
) -> None:
    encoding, image, genes = case
    decoded = _decode(encoding, image, genes)
    assert np.array_equal(decoded, np.round(decoded))
    assert decoded.min() >= 0 and decoded.max() <= 255
    changed = np.any(decoded != image[None], axis=-1).reshape(len(genes), -1).sum(axis=1)
    assert np.all(changed <= encoding.th)


@settings(max_examples=200, deadline=None)
@given(threshold_cases())
def test_threshold_decoding_moves_every_value_at_most_th(
    case: tuple[ThresholdEncoding, np.ndarray, np.ndarray],
) -> None:
    encoding, image, genes = case
    decoded = _decode(encoding, image, genes)
    assert np.array_equal(decoded, np.round(decoded))
    assert decoded.min() >= 0 and decoded.max() <= 255
    assert np.abs(decoded - image[None].astype(np.float32)).max() <= encoding.th


@given(shapes, st.integers(1, 4), st.data())
def test_initial_guess_decodes_to_the_original(
    shape: tuple[int, int, int], th: int, data: st.DataObject
) -> None:
    image = data.draw(arrays(np.uint8, shape))
    for encoding in (
        PixelEncoding(min(th, shape[0] * shape[1]), shape),
        ThresholdEncoding(th, shape),
    ):
        guess = encoding.initial_guess(image.astype(np.float32))
        assert guess.shape == (encoding.dimension,)
        assert np.all((encoding.lower <= guess) & (guess < encoding.upper))
        assert np.array_equal(_decode(encoding, image, guess[None])[0], image)


def test_every_value_and_position_is_reachable_inside_the_box() -> None:
    encoding = PixelEncoding(1, (4, 5, 1))
    assert encoding.lower.tolist() == [0, 0, 0] and encoding.upper.tolist() == [4, 5, 256]
    image = np.zeros((4, 5, 1), dtype=np.uint8)
    top = np.nextafter(encoding.upper, 0)  # the box is half-open
    decoded = _decode(encoding, image, top[None])[0]
    assert decoded[3, 4, 0] == 255 and np.count_nonzero(decoded) == 1
    assert _decode(encoding, image, np.array([[2.0, 3.0, 254.999]]))[0, 2, 3, 0] == 254


def test_threshold_box_gives_each_delta_one_unit_cell() -> None:
    encoding = ThresholdEncoding(3, (1, 1, 1))
    image = np.full((1, 1, 1), 100, dtype=np.uint8)
    cells = np.arange(-3, 4) + 0.5
    decoded = _decode(encoding, image, cells[:, None]).ravel()
    assert decoded.tolist() == [97, 98, 99, 100, 101, 102, 103]


def test_rgb_pixel_replaces_all_channels() -> None:
    encoding = PixelEncoding(2, (3, 3, 3))
    assert encoding.dimension == 10
    image = np.zeros((3, 3, 3), dtype=np.uint8)
    genes = np.array([[0.2, 1.7, 10, 20, 30, 2.9, 2.1, 40.5, 50.5, 60.5]])
    decoded = _decode(encoding, image, genes)[0]
    assert decoded[0, 1].tolist() == [10, 20, 30]
    assert decoded[2, 2].tolist() == [40, 50, 60]


def _blocks(*blocks: tuple[float, ...]) -> np.ndarray:
    return np.array([np.concatenate(blocks)]) + 0.5


@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [(2, 3, [13, 14, 15, 16]), (4, 4, [0, 1, 2, 24])],  # the last pixel wraps to the first
)
def test_blocks_naming_one_pixel_change_th_distinct_pixels(
    row: int, col: int, expected: list[int]
) -> None:
    encoding = PixelEncoding(4, (5, 5, 1))
    decoded = _decode(encoding, np.zeros((5, 5, 1), np.uint8), _blocks(*[(row, col, 200)] * 4))
    assert np.flatnonzero(decoded[0]).tolist() == expected
    assert set(decoded[0].ravel().tolist()) == {0.0, 200.0}


def test_every_pixel_named_by_blocks_at_one_pixel() -> None:
    encoding = PixelEncoding(12, (3, 4, 3))
    decoded = _decode(encoding, np.zeros((3, 4, 3), np.uint8), _blocks(*[(1, 1, 9, 8, 7)] * 12))
    assert np.all(decoded[0] == [9, 8, 7])


def test_rows_without_repeats_are_decoded_as_named() -> None:
    encoding = PixelEncoding(3, (4, 4, 1))
    genes = np.concatenate(
        [_blocks((0, 0, 10), (3, 3, 20), (1, 2, 30)), _blocks((2, 2, 40), (2, 2, 50), (0, 1, 60))]
    )
    decoded = _decode(encoding, np.zeros((4, 4, 1), np.uint8), genes)[..., 0]
    assert (decoded[0, 0, 0], decoded[0, 3, 3], decoded[0, 1, 2]) == (10, 20, 30)
    assert np.count_nonzero(decoded[0]) == 3
    assert (decoded[1, 2, 2], decoded[1, 2, 3], decoded[1, 0, 1]) == (40, 50, 60)
    positions = np.array([[3, 0, 15, 7], [1, 2, 3, 4]])
    assert distinct_positions(positions.copy(), 16).tolist() == positions.tolist()


def test_a_block_no_other_block_names_keeps_its_pixel() -> None:
    assert distinct_positions(np.array([[5, 5, 6]]), 25).tolist() == [[5, 7, 6]]
    encoding = PixelEncoding(3, (5, 5, 1))
    genes = _blocks((1, 0, 10), (1, 0, 20), (1, 1, 30))  # flat 5, 5, 6
    decoded = _decode(encoding, np.zeros((5, 5, 1), np.uint8), genes)[0, ..., 0]
    assert decoded[1, 1] == 30


@pytest.mark.parametrize("th", [2, 3, PAIRWISE_BLOCKS, PAIRWISE_BLOCKS + 1, 9])
def test_repeats_are_found_the_same_by_pairs_or_by_sorting(th: int) -> None:
    """Few blocks compare pairs of columns, many sort: either way every row that names a
    pixel twice is moved on, and every row comes out with th distinct pixels."""
    positions = np.random.default_rng(th).integers(0, 12, (300, th))
    ordered = np.sort(positions, axis=1)
    expected = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    assert 0 < len(expected) < len(positions)
    assert _repeating_rows(positions).tolist() == expected.tolist()
    distinct = distinct_positions(positions.copy(), 12)
    assert all(len(set(row)) == th for row in distinct.tolist())
    unchanged = np.setdiff1d(np.arange(len(positions)), expected)
    assert np.array_equal(distinct[unchanged], positions[unchanged])


@pytest.mark.parametrize(
    ("attack_type", "th", "message"),
    [
        ("pixel", 0, "th=0"),
        ("pixel", 65, "th=65"),
        ("threshold", 256, "th=256"),
        ("blur", 1, "'blur'"),
    ],
)
def test_bad_budgets_are_rejected_naming_the_value(attack_type: str, th: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_encoding(attack_type, th, (8, 8, 1))
