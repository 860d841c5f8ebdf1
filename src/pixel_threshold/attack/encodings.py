"""Candidate encodings: how a real-valued search vector becomes an adversarial image.

Both encodings decode to exact integer pixel values in 0-255, so the image the
model scored is the image that gets saved. Genes are continuous; every gene
covers a half-open interval of width one per integer it can take and is decoded
with ``floor``, so each integer value is equally likely under a uniform draw
(ART's truncation makes 255 reachable only at exactly 255.0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pixel_threshold.attack.types import FloatArray, IntArray

PIXEL_LEVELS = 256


@dataclass(frozen=True)
class PixelEncoding:
    """L0 attack: replace at most ``th`` pixels.

    A candidate holds ``th`` blocks ``(row, col, v_1 .. v_C)``, so
    ``D = th * (2 + C)``. Values replace the pixel's values.
    """

    th: int
    shape: tuple[int, int, int]
    lower: FloatArray = field(init=False, repr=False)
    upper: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_th("pixel", self.th, self.shape)
        height, width, channels = self.shape
        block_upper = np.array([height, width] + [PIXEL_LEVELS] * channels, dtype=np.float64)
        object.__setattr__(self, "lower", np.zeros(self.dimension))
        object.__setattr__(self, "upper", np.tile(block_upper, self.th))

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
        height, width, channels = self.shape
        count = len(genes)
        np.take(images, owners, axis=0, out=out)
        blocks = np.floor(genes.reshape(count, self.th, 2 + channels))
        rows = np.clip(blocks[..., 0], 0, height - 1).astype(np.intp)
        cols = np.clip(blocks[..., 1], 0, width - 1).astype(np.intp)
        positions = distinct_positions(rows * width + cols, height * width)
        values = np.clip(blocks[..., 2:], 0, PIXEL_LEVELS - 1)
        pixels = out.reshape(count, height * width, channels)
        pixels[np.arange(count)[:, None], positions, :] = values


@dataclass(frozen=True)
class ThresholdEncoding:
    """L-infinity attack: move every element by an integer in ``[-th, th]``, then clip.

    A candidate holds one delta per element, ``D = H * W * C``.
    """

    th: int
    shape: tuple[int, int, int]
    lower: FloatArray = field(init=False, repr=False)
    upper: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_th("threshold", self.th, self.shape)
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
        count = len(genes)
        np.take(images, owners, axis=0, out=out)
        delta = np.clip(np.floor(genes), -self.th, self.th).reshape(count, *self.shape)
        np.add(out, delta, out=out, casting="unsafe")
        np.clip(out, 0, PIXEL_LEVELS - 1, out=out)


Encoding = PixelEncoding | ThresholdEncoding


def check_th(attack_type: str, th: int, shape: tuple[int, int, int]) -> None:
    """Raise ValueError, naming ``th``, unless ``attack_type`` can spend it on (H, W, C)
    images: 1 to H * W pixels, or 1 to 255 on the 0-255 scale."""
    height, width, _ = shape
    if attack_type == "pixel" and not 1 <= th <= height * width:
        raise ValueError(
            f"expected 1 <= th <= {height * width} (pixels in a {height}x{width} image) "
            f"for the pixel attack, got th={th}"
        )
    if attack_type == "threshold" and not 1 <= th <= PIXEL_LEVELS - 1:
        raise ValueError(
            f"expected 1 <= th <= {PIXEL_LEVELS - 1} for the threshold attack, got th={th}"
        )


def distinct_positions(positions: IntArray, pixels: int) -> IntArray:
    """Make each row's flat pixel positions distinct, in place, and return them.

    positions: (M, th) in ``[0, pixels)``, ``th <= pixels``. A block that names a pixel
    an earlier block of its row already holds moves to the next pixel no block holds, in
    raster order (wrapping), so a candidate always changes ``th`` pixels, never fewer.
    Rows without repeats (every random-search candidate) are left as they are.
    """
    ordered = np.sort(positions, axis=1)
    repeating = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if not len(repeating):
        return positions
    rows = positions[repeating]
    held = np.zeros((len(rows), pixels), dtype=np.uint8)  # blocks on each pixel (<= 255)
    np.add.at(held, (np.arange(len(rows))[:, None], rows), 1)
    pixel = np.arange(pixels)
    for block in range(1, rows.shape[1]):
        moving = np.flatnonzero((rows[:, :block] == rows[:, block, None]).any(axis=1))
        if not len(moving):
            continue
        old = rows[moving, block]
        held[moving, old] -= 1
        free = held[moving] == 0
        after = free & (pixel > old[:, None])
        new = np.where(after.any(axis=1), np.argmax(after, axis=1), np.argmax(free, axis=1))
        held[moving, new] += 1
        rows[moving, block] = new
    positions[repeating] = rows
    return positions


def make_encoding(attack_type: str, th: int, shape: tuple[int, int, int]) -> Encoding:
    """The encoding for ``attack_type`` ("pixel" or "threshold") on images of ``shape``."""
    if attack_type == "pixel":
        return PixelEncoding(th, shape)
    if attack_type == "threshold":
        return ThresholdEncoding(th, shape)
    raise ValueError(f"expected attack_type 'pixel' or 'threshold', got {attack_type!r}")
