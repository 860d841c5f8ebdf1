"""The random search (es=2): distinct pixels, corner colours, box vertices, the schedule."""

from __future__ import annotations

import numpy as np
import pytest

from pixel_threshold.attack import PixelEncoding, ThresholdEncoding
from pixel_threshold.attack.random_search import (
    SparseRandomSearch,
    SquareRandomSearch,
    _Greedy,
    changed_colours,
    place,
)

from .conftest import decode_candidates as _decode


def _started(
    search: SparseRandomSearch | SquareRandomSearch, slots: int, image: np.ndarray
) -> np.ndarray:
    for slot in range(slots):
        search.start(slot, image.astype(np.float32), np.random.default_rng([9, slot]))
    return np.arange(slots)


@pytest.mark.parametrize(
    ("row", "replace", "draw", "expected"),
    [
        ([3, 4, -1], [False, False, True], 0.35, [3, 4, 5]),  # drawn 3, held: on to 5
        ([3, 4, 5], [False, False, True], 0.55, [3, 4, 6]),  # its own pixel is held too
        ([9, 0, 2], [False, False, True], 0.95, [9, 0, 1]),  # wraps past the last pixel
        ([0, 1, 2], [True, False, False], 0.05, [3, 1, 2]),  # the only pixel left
        ([7, 2, 5], [False, True, False], 0.05, [7, 0, 5]),  # a free pixel stays as drawn
    ],
)
def test_place_known_values(
    row: list[int], replace: list[bool], draw: float, expected: list[int]
) -> None:
    pixels = 10 if row != [0, 1, 2] else 4
    positions = np.array([row])
    place(positions, np.array([replace]), np.full((1, 3), draw), pixels)
    assert positions.tolist() == [expected]


def test_place_keeps_rows_distinct_and_never_picks_a_held_pixel() -> None:
    rng = np.random.default_rng(0)
    rows, blocks, pixels = 500, 6, 16
    positions = np.argsort(rng.random((rows, pixels)), axis=1)[:, :blocks]
    before = positions.copy()
    replace = rng.random((rows, blocks)) < 0.5
    place(positions, replace, rng.random((rows, blocks)), pixels)
    assert np.all((positions >= 0) & (positions < pixels))
    assert all(len(set(row)) == blocks for row in positions.tolist())
    assert np.array_equal(positions[~replace], before[~replace])
    assert not np.any(positions[replace] == before[replace])  # a swap moves its block
    kept = np.where(replace, -1, before)
    assert not (positions[:, :, None] == kept[:, None, :]).any(axis=2)[replace].any()
    # a first placement (nothing held yet, -1) fills every block with distinct pixels
    fresh = np.full((rows, blocks), -1)
    place(fresh, np.ones((rows, blocks), dtype=bool), rng.random((rows, blocks)), pixels)
    assert all(len(set(row)) == blocks and min(row) >= 0 for row in fresh.tolist())


def test_place_never_reuses_a_pixel_vacated_in_the_same_step() -> None:
    single = np.array([[2, 5, 7]])
    place(single, np.array([[True, True, False]]), np.array([[0.05, 0.25, 0.0]]), 10)
    assert single.tolist() == [[0, 3, 7]]  # block 1 draws 2, held before the step: on to 3
    rng = np.random.default_rng(0)
    rows, blocks, pixels = 500, 6, 16
    positions = np.argsort(rng.random((rows, pixels)), axis=1)[:, :blocks]
    before = positions.copy()
    replace = rng.random((rows, blocks)) < 0.5
    place(positions, replace, rng.random((rows, blocks)), pixels)
    held = (positions[:, :, None] == before[:, None, :]).any(axis=2)
    assert not held[replace].any()


def test_place_leaves_a_row_that_holds_every_pixel() -> None:
    full = np.array([[3, 0, 2, 1], [0, 1, 2, 3]])
    place(full, np.ones((2, 4), dtype=bool), np.full((2, 4), 0.5), 4)
    assert full.tolist() == [[3, 0, 2, 1], [0, 1, 2, 3]]


@pytest.mark.parametrize(
    ("shape", "th", "popsize"),
    [((8, 8, 1), 5, 1), ((8, 8, 3), 12, 3), ((4, 4, 3), 16, 2)],  # the last holds every pixel
)
def test_sparse_proposals_either_move_pixels_to_corner_colours_or_recolour_them(
    shape: tuple[int, int, int], th: int, popsize: int
) -> None:
    """A first step places th distinct corner-coloured pixels. Every later proposal keeps
    th distinct pixels and either moves some to pixels the candidate does not hold, with
    corner colours, the others unchanged, or (grey images only) keeps every pixel and
    recolours some."""
    encoding = PixelEncoding(th, shape)
    height, width, channels = shape
    image = np.full(shape, 128, dtype=np.uint8)
    search = SparseRandomSearch(th, shape, capacity=3, popsize=popsize, max_iter=40)
    slots = _started(search, 3, image)
    first = np.floor(search.ask(slots)).reshape(3, popsize, th, 2 + channels)
    assert np.all(np.isin(first[..., 2:], [0, 255]))
    search.tell(slots, np.tile([0.0] + [1.0] * (popsize - 1), 3))  # each slot keeps its first
    current = first[:, 0]
    kinds = {"moved": 0, "recoloured": 0}
    for _ in range(40):
        genes = search.ask(slots)
        assert np.all((encoding.lower <= genes) & (genes < encoding.upper))
        blocks = np.floor(genes).reshape(3, popsize, th, 2 + channels)
        pixels = blocks[..., 0] * width + blocks[..., 1]
        assert all(len(set(row)) == th for row in pixels.reshape(-1, th).tolist())
        held = current[:, None, :, 0] * width + current[:, None, :, 1]
        kept = pixels == held  # (3, popsize, th): the blocks still on their pixel
        same_colour = np.all(blocks[..., 2:] == current[:, None, :, 2:], axis=-1)
        for slot, proposal in np.ndindex(3, popsize):
            if kept[slot, proposal].all():
                kinds["recoloured"] += 1  # (or, holding every pixel, moved nowhere)
                assert not same_colour[slot, proposal].all() or th == height * width
            else:
                kinds["moved"] += 1
                moved = ~kept[slot, proposal]
                assert not np.isin(pixels[slot, proposal][moved], held[slot, 0]).any()
                assert np.all(np.isin(blocks[slot, proposal][moved][:, 2:], [0, 255]))
                assert same_colour[slot, proposal][~moved].all()
        search.tell(slots, np.full(3 * popsize, np.inf))  # nothing better: current stays
    if th == height * width:  # nowhere to move: every proposal keeps its pixels
        assert kinds["moved"] == 0
    else:
        assert kinds["moved"] > 0 and (kinds["recoloured"] > 0) == (channels == 1)


@pytest.mark.parametrize(("shape", "th"), [((8, 8, 1), 1), ((8, 8, 3), 12), ((5, 7, 3), 100)])
def test_square_proposals_move_every_value_by_exactly_th(
    shape: tuple[int, int, int], th: int
) -> None:
    encoding = ThresholdEncoding(th, shape)
    popsize = 3
    search = SquareRandomSearch(th, shape, capacity=2, popsize=popsize, max_iter=40)
    slots = _started(search, 2, np.full(shape, 128, dtype=np.uint8))
    fitness_rng = np.random.default_rng(1)
    for _ in range(40):
        genes = search.ask(slots)
        assert genes.shape == (2 * popsize, encoding.dimension)
        assert np.all((encoding.lower <= genes) & (genes < encoding.upper))
        assert set(np.unique(np.floor(genes))) == {-th, th}  # before any clipping
        moved = _decode(encoding, np.full(shape, 128, np.uint8), genes) - 128
        assert np.all(np.abs(moved) == th)  # th <= 127: nothing clips around 128
        search.tell(slots, fitness_rng.random(len(genes)))


def test_the_schedule_passes_a_break_at_each_share_of_the_budget() -> None:
    steps = np.array([0, 9, 10, 49, 50, 199, 200, 499, 500, 999, 1000, 7999, 8000, 9999])
    assert _schedule(steps, 10_000).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 8, 9, 9]
    assert _schedule(np.array([0, 1, 10, 99]), 100).tolist() == [0, 2, 5, 9]


def _schedule(steps: np.ndarray, max_iter: int) -> np.ndarray:
    """The breaks passed by slots that have done ``steps``, of ``max_iter``."""
    greedy = _Greedy(len(steps), popsize=1, max_iter=max_iter)
    greedy.steps[:] = steps
    return greedy.schedule(np.arange(len(steps)))


def test_sparse_swaps_fewer_pixels_as_the_budget_is_spent() -> None:
    """Sparse-RS's schedule for th = 200, 100 steps: 0.3 / 4 * 200 = 15 pixels swapped
    (or recoloured) at step 1 (two breaks passed), 0.3 / 20 * 200 = 3 in the last tenth."""
    th, shape = 200, (32, 32, 3)
    search = SparseRandomSearch(th, shape, capacity=1, popsize=1, max_iter=100)
    slots = _started(search, 1, np.zeros(shape))
    current = np.floor(search.ask(slots)).reshape(th, 5)
    search.tell(slots, np.zeros(1))  # accept the start, then nothing more
    swapped = []
    for _ in range(99):
        proposal = np.floor(search.ask(slots)).reshape(th, 5)
        swapped.append(int(np.any(proposal != current, axis=1).sum()))
        search.tell(slots, np.full(1, np.inf))
    assert (swapped[0], swapped[-1]) == (15, 3)
    assert swapped == sorted(swapped, reverse=True)
    assert len(set(swapped)) > 3  # it falls in steps, not at once


def test_square_windows_shrink_as_the_budget_is_spent() -> None:
    """The Square Attack's schedule on a 64x64 image, 300 steps: a window of 10% / 2 of
    4,096 pixels (side round(sqrt(204.8)) = 14) at step 1, one pixel at the end."""
    shape = (64, 64, 3)
    search = SquareRandomSearch(4, shape, capacity=1, popsize=1, max_iter=300)
    slots = _started(search, 1, np.zeros(shape))
    stripes = search.ask(slots).reshape(shape)
    assert np.array_equal(stripes, np.broadcast_to(stripes[:1], shape))  # vertical stripes
    search.tell(slots, np.zeros(1))  # accept the stripes, then nothing more
    sides = []
    for _ in range(299):
        proposal = search.ask(slots).reshape(shape)
        changed_rows = np.flatnonzero(np.any(proposal != stripes, axis=(1, 2)))
        changed_cols = np.flatnonzero(np.any(proposal != stripes, axis=(0, 2)))
        # stripes are constant down a column, so a window changes every one of its rows
        side = int(changed_rows[-1] - changed_rows[0] + 1)
        assert len(changed_rows) == side and changed_cols[-1] - changed_cols[0] < side
        sides.append(side)
        search.tell(slots, np.full(1, np.inf))
    assert (sides[0], sides[-1]) == (14, 1)
    assert sides == sorted(sides, reverse=True)


@pytest.mark.parametrize(("channels", "th", "popsize"), [(1, 3, 1), (1, 7, 4), (3, 5, 2)])
def test_every_sparse_proposal_changes_exactly_th_pixels_of_a_saturated_image(
    channels: int, th: int, popsize: int
) -> None:
    """On an image of black and white pixels (and, in colour, each channel 0 or 255),
    a corner drawn without looking would often be the pixel's own colour and change
    nothing; every block must change its pixel, so L0 is th at every step."""
    shape = (6, 6, channels)
    rng = np.random.default_rng(4)
    image = np.where(rng.random(shape) < 0.5, 0, 255).astype(np.uint8)
    encoding = PixelEncoding(th, shape)
    search = SparseRandomSearch(th, shape, capacity=2, popsize=popsize, max_iter=60)
    slots = _started(search, 2, image)
    for step in range(60):
        candidates = _decode(encoding, image, search.ask(slots))
        changed = np.any(candidates != image, axis=-1).reshape(len(candidates), -1)
        assert changed.sum(axis=1).tolist() == [th] * len(candidates), f"step {step}"
        search.tell(slots, rng.random(2 * popsize))  # accept at random: every path is tried


def test_changed_colours_never_give_a_pixel_its_own_colour() -> None:
    draws = np.array([[[0.1, 0.45, 0.9], [0.2, 0.7, 0.6]]])  # (1 row, 2 blocks, 3 channels)
    original = np.array([[[0.0, 0.0, 255.0], [0.0, 0.0, 0.0]]])
    colours = changed_colours(draws, original, np.array([False]))
    # the first block's corner (0, 0, 255) is its pixel's own: the least decided
    # channel (0.45) flips; the second block's corner (0, 255, 255) already differs
    assert colours.tolist() == [[[0.0, 255.0, 255.0], [0.0, 255.0, 255.0]]]
    grey = changed_colours(
        np.array([[[0.0], [0.5], [0.999]]]), np.array([[[0.0], [127.0], [255.0]]]), np.array([True])
    )
    assert grey.tolist() == [[[1.0], [128.0], [254.0]]]  # any level but the pixel's own


def test_a_square_search_near_a_fooling_image_starts_on_its_signs() -> None:
    """The first start takes the sign of each value's change towards ``near`` (a
    stripe's sign where it has none); the other starts and every random draw are those
    of a start without it."""
    shape, popsize = (5, 6, 3), 3
    image = np.full(shape, 100.0, dtype=np.float32)
    near = image.copy()
    near[:2] += 7  # moved up
    near[3:] -= 7  # moved down; row 2 unchanged
    plain = SquareRandomSearch(4, shape, capacity=1, popsize=popsize, max_iter=50)
    warm = SquareRandomSearch(4, shape, capacity=1, popsize=popsize, max_iter=50)
    plain.start(0, image, np.random.default_rng(5))
    warm.start(0, image, np.random.default_rng(5), near=near)
    slots = np.array([0])
    before, after = (
        np.floor(search.ask(slots)).reshape(popsize, *shape) for search in (plain, warm)
    )
    assert (after[0, :2] == 4).all() and (after[0, 3:] == -4).all()
    assert np.array_equal(after[0, 2], before[0, 2])  # no change: the stripe's sign
    assert np.array_equal(after[1:], before[1:])  # the stripes drawn as without it


def test_grey_images_recolour_only_after_a_fiftieth_of_the_budget() -> None:
    """Corners only for the first 2% of the budget (200 of 10,000 steps), then half the
    proposals give their pixels levels anywhere in 0-255."""
    shape = (8, 8, 1)
    image = np.full(shape, 128, dtype=np.uint8)
    search = SparseRandomSearch(3, shape, capacity=1, popsize=2, max_iter=10_000)
    slots = _started(search, 1, image)
    levels = []
    for _ in range(400):
        blocks = np.floor(search.ask(slots)).reshape(2, 3, 3)
        levels.append(not np.isin(blocks[..., 2], [0, 255]).all())
        search.tell(slots, np.array([0.0, 1.0]))  # the first proposal moves on
    assert not any(levels[:200]) and sum(levels[200:]) > 50
