"""The two attack types as encodings: how a real-valued search vector becomes an
adversarial image, and everything else that differs between the Pixel (L0) and the
Threshold (L-infinity) attack.

Both encodings decode to exact integer pixel values in 0-255, so the image the
model scored is the image that gets saved. Genes are continuous; every gene
covers a half-open interval of width one per integer it can take and is decoded
with ``floor``, so each integer value is equally likely under a uniform draw
(ART's truncation makes 255 reachable only at exactly 255.0).

Besides decoding, each encoding says what a th means for it: the range of th on an
image (`check_th`, `largest_th_max`), what it allows in a report's words (`threat`),
the budget an adversarial image spends (`spent`), how the tightening of ``th=-1``
shrinks a fooling image (`shrink`), and which query-efficient random search suits its
norm (`random_search`). The attack type is looked up once, in `encoding_type`; the
rest of the core asks the encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.changes import MoveValues, SetPixels, move_dtype
from pixel_threshold.attack.random_search import SparseRandomSearch, SquareRandomSearch
from pixel_threshold.attack.results import ImageResult
from pixel_threshold.attack.shrinking import ClipDelta, RestorePixels, Shrink
from pixel_threshold.attack.types import PIXEL_LEVELS, FloatArray, IntArray

Shape = tuple[int, int, int]
PAIRWISE_BLOCKS = 4
"""Up to this many blocks a row, repeats are found by comparing pairs of columns (at
most 6 compares), above it by sorting each row."""


@dataclass(frozen=True)
class PixelEncoding:
    """L0 attack: replace at most ``th`` pixels.

    A candidate holds ``th`` blocks ``(row, col, v_1 .. v_C)``, so
    ``D = th * (2 + C)``. Values replace the pixel's values.
    """

    attack_type: ClassVar[str] = "pixel"
    title: ClassVar[str] = "Pixel attack (L0)"
    th_axis: ClassVar[str] = "th: pixels changed"

    th: int
    shape: Shape
    lower: FloatArray = field(init=False, repr=False)
    upper: FloatArray = field(init=False, repr=False)

    _largest: FloatArray = field(init=False, repr=False)
    """A block's largest integer genes: (2 + C,) row, column, values."""

    def __post_init__(self) -> None:
        self.check_th(self.th, self.shape)
        height, width, channels = self.shape
        block_upper = np.array([height, width] + [PIXEL_LEVELS] * channels, dtype=np.float64)
        object.__setattr__(self, "lower", np.zeros(self.dimension))
        object.__setattr__(self, "upper", np.tile(block_upper, self.th))
        object.__setattr__(self, "_largest", block_upper - 1)

    @property
    def dimension(self) -> int:
        return self.th * (2 + self.shape[2])

    @property
    def sigma0(self) -> float:
        """Initial CMA-ES step size (the paper's authors' 63/4 for the pixel attack)."""
        return 63 / 4

    def initial_guess(self, image: FloatArray) -> FloatArray:
        """The "no change" candidate: the first ``th`` pixels with their own values.

        Genes sit at cell centres (+0.5) so that decoding returns ``image`` exactly.
        """
        width = self.shape[1]
        positions = np.arange(self.th)
        rows, cols = positions // width, positions % width
        values = image[rows, cols, :].astype(np.float64)
        blocks = np.concatenate([rows[:, None], cols[:, None], values], axis=1)
        return (blocks + 0.5).reshape(-1)

    def decode_into(
        self, out: FloatArray, images: FloatArray, owners: IntArray, genes: FloatArray
    ) -> None:
        """Write candidates into ``out``.

        out: (M, H, W, C) float32 buffer, overwritten; images: (N, H, W, C) originals;
        owners: (M,) index into ``images`` of each candidate's image; genes: (M, D).
        """
        np.take(images, owners, axis=0, out=out)
        self.changes(genes).apply(out)

    def changes(self, genes: FloatArray) -> SetPixels:
        """The pixels candidates ``genes`` (M, D) set: ``th`` distinct positions a row
        (a repeated one moves to the next free pixel, `distinct_positions`) and their
        values, each gene floored and clipped to its range."""
        height, width, channels = self.shape
        blocks = np.floor(genes.reshape(len(genes), self.th, 2 + channels))
        np.maximum(blocks, 0, out=blocks)
        np.minimum(blocks, self._largest, out=blocks)
        flat = blocks[..., 0] * width
        flat += blocks[..., 1]
        positions = distinct_positions(flat.astype(np.intp), height * width)
        return SetPixels(positions, blocks[..., 2:].astype(np.float32))

    @staticmethod
    def check_th(th: int, shape: Shape) -> None:
        """Raise ValueError, naming ``th``, unless it is 1 to H * W pixels."""
        height, width, _ = shape
        if not 1 <= th <= height * width:
            raise ValueError(
                f"expected 1 <= th <= {height * width} (pixels in a {height}x{width} image) "
                f"for the pixel attack, got th={th}"
            )

    @staticmethod
    def largest_th_max(shape: Shape) -> int:
        """The largest th a ``th=-1`` attack walks down from: min(255, H * W)."""
        return min(PIXEL_LEVELS - 1, shape[0] * shape[1])

    @staticmethod
    def spent(result: ImageResult) -> int:
        """The th an adversarial image spends: the pixels it changes."""
        return result.l0

    @staticmethod
    def threat(th: int | str, shape: Shape) -> str:
        """What th allows on an image of ``shape``, in a report's words: ``setting at
        most 1 of its 64 pixels (8x8) to any value (its 1 channel 0-255), the others
        untouched``; ``th`` a number or a name (``"th"``)."""
        height, width, channels = shape
        values = "its 1 channel" if channels == 1 else f"each of its {channels} channels"
        return (
            f"setting at most {th} of its {height * width:,} pixels ({height}x{width}) to any "
            f"value ({values} 0-255), the others untouched"
        )

    @staticmethod
    def shrink(
        original: npt.NDArray[np.float32],
        fooling: npt.NDArray[np.float32],
        rng: np.random.Generator,
    ) -> Shrink:
        """Restore the changed pixels one at a time, in a random order drawn from
        ``rng`` (`shrinking.RestorePixels`)."""
        changed = np.flatnonzero(np.any(fooling != original, axis=-1))
        return RestorePixels(original, rng.permutation(changed))

    def random_search(self, *, capacity: int, popsize: int, max_iter: int) -> SparseRandomSearch:
        """Sparse-RS's search over ``th`` corner-coloured pixels (Croce et al., AAAI 2022)."""
        return SparseRandomSearch(
            self.th, self.shape, capacity=capacity, popsize=popsize, max_iter=max_iter
        )


@dataclass(frozen=True)
class ThresholdEncoding:
    """L-infinity attack: move every element by an integer in ``[-th, th]``, then clip.

    A candidate holds one delta per element, ``D = H * W * C``.
    """

    attack_type: ClassVar[str] = "threshold"
    title: ClassVar[str] = "Threshold attack (L∞)"
    th_axis: ClassVar[str] = "th: largest change of a value, 0-255"

    th: int
    shape: Shape
    lower: FloatArray = field(init=False, repr=False)
    upper: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.check_th(self.th, self.shape)
        object.__setattr__(self, "lower", np.full(self.dimension, -float(self.th)))
        object.__setattr__(self, "upper", np.full(self.dimension, self.th + 1.0))

    @property
    def dimension(self) -> int:
        height, width, channels = self.shape
        return height * width * channels

    @property
    def sigma0(self) -> float:
        """Initial CMA-ES step size (th/4, as the paper's authors)."""
        return self.th / 4

    def initial_guess(self, image: FloatArray) -> FloatArray:
        """The "no change" candidate: a zero delta at the centre of its cell."""
        return np.full(self.dimension, 0.5)

    def decode_into(
        self, out: FloatArray, images: FloatArray, owners: IntArray, genes: FloatArray
    ) -> None:
        """Write candidates into ``out`` (same arguments as `PixelEncoding.decode_into`)."""
        np.take(images, owners, axis=0, out=out)
        self.changes(genes).apply(out)

    def changes(self, genes: FloatArray) -> MoveValues:
        """The moves candidates ``genes`` (M, D) make: each gene floored and clipped to
        [-th, th], as the smallest integers that hold them."""
        floors = np.floor(genes)
        np.clip(floors, -self.th, self.th, out=floors)  # in place: into a new array is slower
        delta: IntArray = floors.astype(move_dtype(self.th))
        return MoveValues(delta.reshape(len(genes), *self.shape))

    @staticmethod
    def check_th(th: int, shape: Shape) -> None:
        """Raise ValueError, naming ``th``, unless it is 1 to 255 on the 0-255 scale."""
        if not 1 <= th <= PIXEL_LEVELS - 1:
            raise ValueError(
                f"expected 1 <= th <= {PIXEL_LEVELS - 1} for the threshold attack, got th={th}"
            )

    @staticmethod
    def largest_th_max(shape: Shape) -> int:
        """The largest th a ``th=-1`` attack walks down from: 255."""
        return PIXEL_LEVELS - 1

    @staticmethod
    def spent(result: ImageResult) -> int:
        """The th an adversarial image spends: its largest change of a value."""
        return int(result.linf)

    @staticmethod
    def threat(th: int | str, shape: Shape) -> str:
        """What th allows on an image of ``shape``, in a report's words: ``moving every
        one of its 192 values (8x8x3) by at most 4 on the 0-255 scale (1.6% of the
        range)``; ``th`` a number or a name (``"th"``)."""
        height, width, channels = shape
        share = f" ({th / (PIXEL_LEVELS - 1):.1%} of the range)" if isinstance(th, int) else ""
        return (
            f"moving every one of its {height * width * channels:,} values "
            f"({height}x{width}x{channels}) by at most {th} on the 0-255 scale{share}"
        )

    @staticmethod
    def shrink(
        original: npt.NDArray[np.float32],
        fooling: npt.NDArray[np.float32],
        rng: np.random.Generator,
    ) -> Shrink:
        """Clip the delta to the smallest bound that fools, by bisection
        (`shrinking.ClipDelta`; ``rng`` is not drawn from)."""
        return ClipDelta(original, fooling)

    def random_search(self, *, capacity: int, popsize: int, max_iter: int) -> SquareRandomSearch:
        """The Square Attack's search on the vertices of the ``th`` box (Andriushchenko
        et al., ECCV 2020)."""
        return SquareRandomSearch(
            self.th, self.shape, capacity=capacity, popsize=popsize, max_iter=max_iter
        )


Encoding = PixelEncoding | ThresholdEncoding
ENCODINGS: dict[str, type[Encoding]] = {
    encoding.attack_type: encoding for encoding in (PixelEncoding, ThresholdEncoding)
}
"""The attack types, by ``attack_type``: the one place the name becomes behaviour."""
ATTACK_TYPES = tuple(ENCODINGS)


def encoding_type(attack_type: str) -> type[Encoding]:
    """The encoding of ``attack_type``; raises ValueError naming it if there is none."""
    if attack_type not in ENCODINGS:
        raise ValueError(f"expected attack_type in {ATTACK_TYPES}, got {attack_type!r}")
    return ENCODINGS[attack_type]


def make_encoding(attack_type: str, th: int, shape: Shape) -> Encoding:
    """The encoding for ``attack_type`` ("pixel" or "threshold") at ``th`` on images of
    ``shape``."""
    return encoding_type(attack_type)(th, shape)


def distinct_positions(positions: IntArray, pixels: int) -> IntArray:
    """Make each row's flat pixel positions distinct, in place, and return them.

    positions: (M, th) in ``[0, pixels)``, ``th <= pixels``. A block that names a pixel
    an earlier block of its row already holds moves to the next pixel no block holds, in
    raster order (wrapping), so a candidate always changes ``th`` pixels, never fewer.
    Rows without repeats (every random-search candidate) are left as they are. A moving
    block steps on one pixel at a time past those its row's other blocks hold: at most
    ``th`` steps, with no array of the image's size.
    """
    repeating = _repeating_rows(positions)
    if not len(repeating):
        return positions
    rows = positions[repeating]
    blocks = np.arange(rows.shape[1])
    for block in range(1, rows.shape[1]):
        moving = (rows[:, :block] == rows[:, block, None]).any(axis=1).nonzero()[0]
        if not len(moving):
            continue
        others = rows[moving][:, blocks != block]
        new = rows[moving, block]
        stepping = np.arange(len(moving))
        while len(stepping):
            new[stepping] = (new[stepping] + 1) % pixels
            stepping = stepping[(others[stepping] == new[stepping, None]).any(axis=1)]
        rows[moving, block] = new
    positions[repeating] = rows
    return positions


def _repeating_rows(positions: IntArray) -> IntArray:
    """The rows of ``positions`` (M, th) that name a pixel twice: for a few blocks, each
    pair of columns compared (a handful of vector compares); for more, each row sorted."""
    blocks = positions.shape[1]
    if blocks > PAIRWISE_BLOCKS:
        ordered = np.sort(positions, axis=1)
        return np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    columns = positions.T
    repeats = np.zeros(len(positions), dtype=bool)
    for block in range(1, blocks):
        for earlier in range(block):
            repeats |= columns[block] == columns[earlier]
    return repeats.nonzero()[0]
