"""Query-efficient random search (``es=2``), batched over every image in flight.

Both searches keep one current candidate per image and, each step, score ``popsize``
random changes of it, keeping the best if its loss is no worse (ties move, so the
search drifts across the plateaus of a saturated objective). How much each step
changes falls on a schedule keyed to the share of the image's budget spent: large
moves first, small ones at the end.

- `SparseRandomSearch` (Pixel, L0), after Sparse-RS (Croce et al., AAAI 2022): ``th``
  distinct pixels, each set to a corner of the colour cube (every channel 0 or 255)
  other than the pixel's own colour, so that every block changes its pixel; a step
  swaps ``max(1, floor(p * th))`` of them for pixels the candidate does not hold, with
  fresh corner colours, or, on grey images once 2% of the budget is spent, half the
  proposals give as many of them new levels anywhere in 0-255 where they are (again
  never the pixel's own level).
- `SquareRandomSearch` (Threshold, L-infinity), after the Square Attack
  (Andriushchenko et al., ECCV 2020): every value moved by exactly +th or -th (a
  vertex of the box), starting from vertical stripes; a step redraws the sign of
  each channel in one random square window of side ``sqrt(p * H * W)``, the share p
  falling from 10% of the image.

State is kept as arrays indexed by slot (an image's place among those in flight), so
a step costs a few numpy calls whatever the number of images. Each image draws its
random numbers from its own generator, in blocks of fixed size, so its search does
not depend on the other images or on the batch size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.types import PIXEL_LEVELS, BoolArray, FloatArray, IntArray

BUDGET_BREAKS = np.array([10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]) / 10_000
"""Shares of the budget at which the size of a step falls (both papers' schedule,
given there for 10,000 queries)."""
SPARSE_ALPHA = 0.3
"""Sparse-RS's untargeted share of the ``th`` pixels swapped: p starts at alpha / 2."""
SPARSE_DIVISORS = np.array([2, 2, 4, 5, 6, 8, 10, 12, 15, 20])
SPARSE_RECOLOUR_SHARE = 0.5
"""On grey images, the share of proposals (from `SPARSE_RECOLOUR_FROM` on) that keep
their pixels and give the blocks a swap would have moved new levels, uniform in 0-255.
A grey image's colour cube has two corners, black and white, and a digit's background
is already one of them, so corners alone search too little there; colour images keep
Sparse-RS's eight corners, where recolouring halves the search over pixels
(docs/benchmarks.md, "Why the core is as it is")."""
SPARSE_RECOLOUR_FROM = 3
"""The break of the schedule from which grey images recolour (the third: 2% of the
budget). Before it every proposal swaps pixels to corners, which fools most images
soonest; recolouring then reaches those that corners miss (docs/benchmarks.md, "Why
the core is as it is")."""
Signs = npt.NDArray[np.int8]
"""Threshold candidates on the vertices of the box: -1 or +1 per value, times th."""
SQUARE_P_INIT = 0.1
"""The window's first share of the image; it halves at every break. The Square Attack
starts ImageNet at 5%; 10% fools at least as many photos within a small budget here
(docs/benchmarks.md, "Why the core is as it is")."""


class _Draws:
    """Each slot's uniform random numbers from its image's own generator, ``per_step``
    numbers a step, drawn a block of steps at a time."""

    def __init__(self, capacity: int, per_step: int) -> None:
        self._block = max(1, min(64, 65_536 // per_step))
        self._buffer = np.empty((capacity * self._block, per_step))
        """Slot s's block in rows ``s * block`` on."""
        self._next = np.arange(capacity) * self._block + self._block
        """Each slot's next row; its block's end when the block is spent."""
        self._rngs: list[np.random.Generator | None] = [None] * capacity

    def start(self, slot: int, rng: np.random.Generator) -> None:
        self._rngs[slot] = rng
        self._next[slot] = (slot + 1) * self._block

    def take(self, slots: IntArray) -> FloatArray:
        """The next step's numbers of each slot, (L, per_step)."""
        rows = self._next[slots]
        spent = rows % self._block == 0
        if spent.any():
            for slot in slots[spent].tolist():
                rng = self._rngs[slot]
                assert rng is not None, "a slot draws only after start()"
                start = slot * self._block
                rng.random(out=self._buffer[start : start + self._block])
            rows[spent] -= self._block
        self._next[slots] = rows + 1
        numbers: FloatArray = self._buffer[rows]
        return numbers


class _Greedy:
    """The accept rule both searches share: per slot, the current loss and steps done,
    and where each step falls on the schedule."""

    def __init__(self, capacity: int, popsize: int, max_iter: int) -> None:
        self.popsize = popsize
        self.max_iter = max_iter
        self.loss = np.full(capacity, np.inf)
        self.steps = np.zeros(capacity, dtype=np.intp)
        self._breaks_passed = np.searchsorted(  # a byte a step: a large budget stays small
            BUDGET_BREAKS, np.arange(max_iter + 1) / max_iter, side="right"
        ).astype(np.int8)

    def restart(self, slot: int) -> None:
        self.loss[slot] = np.inf
        self.steps[slot] = 0

    def schedule(self, slots: IntArray) -> IntArray:
        """How many breaks of the schedule each slot's image has passed (L,)."""
        passed: IntArray = self._breaks_passed[self.steps[slots]]
        return passed

    def select(self, slots: IntArray, fitness: FloatArray) -> tuple[IntArray, IntArray]:
        """Per slot, the best of its ``popsize`` proposals (L,), and the positions among
        ``slots`` whose best is no worse than their current candidate."""
        if self.popsize == 1:
            best = np.zeros(len(slots), dtype=np.intp)
            best_loss = np.asarray(fitness, dtype=np.float64)
        else:
            scores = np.asarray(fitness, dtype=np.float64).reshape(len(slots), self.popsize)
            best = scores.argmin(axis=1)
            best_loss = scores[np.arange(len(slots)), best]
        accepted = (best_loss <= self.loss[slots]).nonzero()[0]
        self.loss[slots[accepted]] = best_loss[accepted]
        self.steps[slots] += 1
        return best, accepted


def place(positions: IntArray, replace: BoolArray, draws: FloatArray, pixels: int) -> None:
    """Give the ``replace`` blocks of each row new pixels that the row neither held
    before nor holds now, in place, so that a row's pixels stay distinct and every swap
    moves to a pixel the candidate did not have.

    positions: (M, k) flat pixel indices, -1 for none yet; replace: (M, k); draws:
    (M, k) uniforms in [0, 1). A new pixel is drawn uniformly; a taken one moves on to
    the next free pixel in raster order (rare on a large image: the bias it adds is a
    pixel's chance twice over just after a taken one). A block with no free pixel left
    keeps its position.
    """
    before = positions.copy()  # pixels held before the swap stay taken during it
    crowded = 2 * positions.shape[1] >= pixels  # else a row always has a free pixel
    for block in np.flatnonzero(replace.any(axis=0)).tolist():
        rows = replace[:, block].nonzero()[0]
        # taken: what the row held before, and the blocks placed before this one
        held = before[rows]
        if block:
            held = np.concatenate([held, positions[rows, :block]], axis=1)
        if crowded:
            ordered = np.sort(held, axis=1)
            distinct = (ordered >= 0) & np.diff(ordered, axis=1, prepend=-1).astype(bool)
            movable = np.count_nonzero(distinct, axis=1) < pixels
            rows, held = rows[movable], held[movable]
        pick = (draws[rows, block] * pixels).astype(np.intp)  # the floor of a non-negative
        clash = (held == pick[:, None]).any(axis=1).nonzero()[0]
        while len(clash):
            pick[clash] = (pick[clash] + 1) % pixels
            clash = clash[(held[clash] == pick[clash, None]).any(axis=1)]
        positions[rows, block] = pick


def changed_colours(draws: FloatArray, original: FloatArray, recolour: BoolArray) -> FloatArray:
    """New colours (M, k, C) for blocks on pixels of ``original`` values (M, k, C), each
    differing from its pixel's own, so that every block changes its pixel: a corner of
    the colour cube (a channel 0 where its draw is below one half, else 255) or, for the
    rows that ``recolour`` (M,), a level uniform over the 255 values other than the
    pixel's (one channel). A corner equal to the pixel's own colour has the channel
    whose draw was nearest one half (the least decided) flipped. ``draws`` (M, k, C)
    are uniform in [0, 1)."""
    corners = np.where(draws < 0.5, 0.0, PIXEL_LEVELS - 1.0)
    same = corners == original
    if draws.shape[2] == 1:  # one channel: it is the least decided
        flip = same
    else:
        least_decided = np.abs(draws - 0.5).argmin(axis=2)[..., None]
        flip = same.all(axis=2, keepdims=True) & (np.arange(draws.shape[2]) == least_decided)
    corners[flip] = PIXEL_LEVELS - 1.0 - corners[flip]
    if not recolour.any():
        return corners
    levels = np.floor(draws * (PIXEL_LEVELS - 1))
    levels += levels >= original  # skip the pixel's own value
    return np.where(recolour[:, None, None], levels, corners)


class SparseRandomSearch:
    """Sparse-RS-style search of the Pixel attack over ``th`` distinct corner-coloured
    pixels, for up to ``capacity`` images at once (see the module's docstring)."""

    def __init__(
        self,
        th: int,
        shape: tuple[int, int, int],
        *,
        capacity: int,
        popsize: int,
        max_iter: int,
    ) -> None:
        self._th = th
        self._shape = shape
        height, width, channels = shape
        self._pixels = height * width
        self._greedy = _Greedy(capacity, popsize, max_iter)
        self._swapped = np.maximum(1, np.floor(SPARSE_ALPHA / SPARSE_DIVISORS * th)).astype(np.intp)
        """Blocks a step swaps, by the breaks of the schedule passed."""
        self._recolour = channels == 1
        # per proposal: (grey images) the kind of move, then per block a removal key, a
        # placement and a colour draw per channel
        self._draws = _Draws(capacity, popsize * (self._recolour + th * (2 + channels)))
        self._positions = np.full((capacity, th), -1, dtype=np.intp)
        self._colours = np.zeros((capacity, th, channels))
        self._originals = np.zeros((capacity, self._pixels, channels))
        self._proposals: tuple[IntArray, FloatArray] | None = None

    def start(
        self,
        slot: int,
        image: FloatArray,
        rng: np.random.Generator,
        *,
        near: FloatArray | None = None,
    ) -> None:
        """Open ``slot`` for a new image (its first step draws ``popsize`` random starts;
        ``near`` is not used)."""
        self._greedy.restart(slot)
        self._draws.start(slot, rng)
        self._positions[slot] = -1
        self._originals[slot] = image.reshape(self._pixels, -1)

    def ask(self, slots: IntArray) -> FloatArray:
        """Genes (L * popsize, D) of the slots' proposals, slot by slot."""
        popsize, th = self._greedy.popsize, self._th
        channels = self._shape[2]
        owners = np.repeat(slots, popsize) if popsize > 1 else slots
        count = len(owners)
        draws = self._draws.take(slots).reshape(count, -1)
        blocks = draws[:, -th * (2 + channels) :].reshape(count, th, 2 + channels)
        positions = self._positions[owners]
        colours: FloatArray = self._colours[owners]
        schedule = self._greedy.schedule(owners)
        first = positions[:, 0] < 0  # a first step places every pixel
        if th == 1:  # its one block swaps
            replace = np.ones((count, 1), dtype=bool)
        else:  # the blocks with the smallest keys swap
            keys = blocks[..., 0]
            cutoff = np.sort(keys, axis=1)[np.arange(count), self._swapped[schedule] - 1]
            replace = keys <= cutoff[:, None]
            replace[first] = True
        if self._recolour:  # a recoloured block keeps its pixel
            recolour = (draws[:, 0] < SPARSE_RECOLOUR_SHARE) & (schedule >= SPARSE_RECOLOUR_FROM)
            recolour &= ~first
            swapping = replace & ~recolour[:, None]
        else:
            recolour = np.zeros(count, dtype=bool)
            swapping = replace
        place(positions, swapping, blocks[..., 1], self._pixels)
        original = self._originals[owners[:, None], positions]  # (count, th, C)
        fresh = changed_colours(blocks[..., 2:], original, recolour)
        if th == 1:
            colours = fresh
        else:
            colours[replace] = fresh[replace]
        self._proposals = (positions, colours)
        width = self._shape[1]
        genes = np.empty((count, th, 2 + channels))
        np.divmod(positions, width, out=(genes[..., 0], genes[..., 1]))
        genes[..., 2:] = colours
        genes += 0.5
        return genes.reshape(count, -1)

    def tell(self, slots: IntArray, fitness: FloatArray) -> None:
        """Losses (L * popsize,) of the last `ask`'s proposals; lower is better."""
        assert self._proposals is not None, "tell() follows ask()"
        positions, colours = self._proposals
        best, accepted = self._greedy.select(slots, fitness)
        chosen = accepted * self._greedy.popsize + best[accepted]
        self._positions[slots[accepted]] = positions[chosen]
        self._colours[slots[accepted]] = colours[chosen]


class SquareRandomSearch:
    """Square-Attack-style search of the Threshold attack on the vertices of the
    ``th`` box, for up to ``capacity`` images at once (see the module's docstring)."""

    def __init__(
        self,
        th: int,
        shape: tuple[int, int, int],
        *,
        capacity: int,
        popsize: int,
        max_iter: int,
    ) -> None:
        self._th = th
        self._shape = shape
        height, width, channels = shape
        self._greedy = _Greedy(capacity, popsize, max_iter)
        shares = SQUARE_P_INIT / 2.0 ** np.arange(len(BUDGET_BREAKS) + 1)
        sides = np.clip(np.round(np.sqrt(shares * height * width)), 1, min(height, width))
        self._sides = sides.astype(np.intp)
        """A window's side by the breaks of the schedule passed."""
        # per proposal: the window's row and column, a sign per channel, a channel to flip
        self._draws = _Draws(capacity, popsize * (3 + channels))
        self._signs = np.zeros((capacity, *shape), dtype=np.int8)
        self._starts: dict[int, Signs] = {}
        self._proposals: Signs | None = None

    def start(
        self,
        slot: int,
        image: FloatArray,
        rng: np.random.Generator,
        *,
        near: FloatArray | None = None,
    ) -> None:
        """Open ``slot`` for a new image: ``popsize`` random vertical-stripe starts (a
        sign per column and channel). With ``near``, the first start takes the sign of
        each value's change towards it instead (a stripe's where it has none): the
        direction that fooled at a larger th, on the vertices of this one."""
        _, width, channels = self._shape
        self._greedy.restart(slot)
        stripes = rng.random((self._greedy.popsize, 1, width, channels)) < 0.5
        starts = np.broadcast_to(
            np.where(stripes, -1, 1).astype(np.int8), (self._greedy.popsize, *self._shape)
        )
        if near is not None:
            starts = starts.copy()
            toward = np.sign(np.asarray(near, dtype=np.float32) - image).astype(np.int8)
            starts[0] = np.where(toward != 0, toward, starts[0])
        self._starts[slot] = starts
        self._draws.start(slot, rng)

    def ask(self, slots: IntArray) -> FloatArray:
        """Genes (L * popsize, H * W * C) of the slots' proposals, slot by slot."""
        popsize = self._greedy.popsize
        proposals = self._signs[slots]  # a copy
        if popsize > 1:
            proposals = np.repeat(proposals, popsize, axis=0)
        fresh = self._greedy.steps[slots] == 0
        if not fresh.any():
            moving = np.arange(len(proposals))
            schedule = self._greedy.schedule(slots)
            draws = self._draws.take(slots)
        else:
            for position in fresh.nonzero()[0].tolist():
                rows = slice(position * popsize, (position + 1) * popsize)
                proposals[rows] = self._starts.pop(int(slots[position]))
            moving = np.repeat(~fresh, popsize).nonzero()[0]
            stepping = slots[~fresh]
            schedule = self._greedy.schedule(stepping)
            draws = self._draws.take(stepping)
        if len(moving):
            schedule = np.repeat(schedule, popsize) if popsize > 1 else schedule
            self._move(proposals, moving, schedule, draws.reshape(-1, 3 + self._shape[2]))
        self._proposals = proposals
        genes = proposals.reshape(len(proposals), -1).astype(np.float32)
        genes *= self._th
        genes += 0.5
        return genes

    def tell(self, slots: IntArray, fitness: FloatArray) -> None:
        """Losses (L * popsize,) of the last `ask`'s proposals; lower is better."""
        assert self._proposals is not None, "tell() follows ask()"
        best, accepted = self._greedy.select(slots, fitness)
        chosen = accepted * self._greedy.popsize + best[accepted]
        self._signs[slots[accepted]] = self._proposals[chosen]

    def _move(self, signs: Signs, rows: IntArray, schedule: IntArray, draws: FloatArray) -> None:
        """Re-sign one square window of each of ``signs[rows]`` (signs: (M, H, W, C)), in
        place; ``schedule`` (R,), the breaks passed, and ``draws`` (R, 3 + C) per row
        moved. Only the windows are touched: a step costs the window, not the image."""
        height, width, channels = self._shape
        side = self._sides[schedule]
        # floors of non-negative numbers
        top = (draws[:, 0] * (height - side + 1)).astype(np.intp)
        left = (draws[:, 1] * (width - side + 1)).astype(np.intp)
        new = np.where(draws[:, 2 : 2 + channels] < 0.5, -1, 1).astype(np.int8)
        flip = (draws[:, -1] * channels).astype(np.intp)
        sizes = np.bincount(side).nonzero()[0].tolist()
        for size in sizes:  # the rows whose windows have it, together
            moves = (side == size).nonzero()[0] if len(sizes) > 1 else np.arange(len(side))
            span = np.arange(size)
            at = (
                rows[moves, None, None],
                (top[moves, None] + span)[:, :, None],
                (left[moves, None] + span)[:, None, :],
            )
            signed = new[moves, None, None, :]
            # a window that already holds the new signs: rather than spend a query on the
            # current candidate, flip one channel's sign
            again = moves[(signs[at] == signed).all(axis=(1, 2, 3))]
            new[again, flip[again]] *= -1
            signs[at] = new[moves, None, None, :]
