"""``examples.png``: clean vs adversarial images, the changed pixels marked, with captions.

The grid is composed pixel by pixel with PIL at an integer scale, so its geometry is
exact and known (``Layout``): every example is a card of three panels side by side,

- *clean*: the clean image, each pixel a ``scale`` x ``scale`` block (nearest neighbour);
- *adversarial*: the adversarial image; if at most ``MAX_RINGS`` pixels changed, each
  is ringed in ``MARK``: at ``scale >= 3`` the border of its own block, below that a
  square outline ``RING_GAP`` pixels around it;
- *changed*: ``MARK`` exactly where a pixel changed (any channel), elsewhere the clean
  image in dim grey (R = G = B, so never ``MARK``); below ``scale`` 3, where one pixel
  is hard to see, few changed pixels are also ringed in ``HALO``.

with three caption lines below: the outcome, the model's class before -> after, and
the true class's probability before -> after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from pixel_threshold.attack.distances import changed_pixels

MARK = (230, 0, 120)
"""The marker colour (not a grey, so never a pixel of a grey image or of the change map)."""
SHOWN = 12
CELL = 96
"""Images smaller than this are upscaled by the largest integer factor that fits."""
MAX_RINGS = 32
"""More changed pixels than this (the Threshold attack changes most) are shown by the
change map only: rings around all of them would hide the image."""
MAX_WIDTH = 1400
"""Cards per row: as many as fit this width (at most 3, at least 1)."""
HALO = (255, 190, 0)
"""The change map's rings at small scales (neither grey nor ``MARK``)."""
RING_GAP = 3
"""At ``scale < 3``, a ring is a square outline 2 pixels thick whose inner edge is
this many pixels outside the pixel."""
PANELS = ("clean", "adversarial", "changed")
MARGIN, GAP, LINE = 8, 4, 14
HEADER = LINE + 4
CAPTION_LINES = 3
BACKGROUND, TEXT = (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True)
class Example:
    """One card: ``original`` and ``adversarial`` (H, W, C) uint8, C 1 or 3, and its
    caption lines."""

    original: npt.NDArray[np.uint8]
    adversarial: npt.NDArray[np.uint8]
    caption: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """Where everything is in the grid of ``count`` examples of ``height`` x ``width``
    images, each pixel a ``scale`` x ``scale`` block."""

    height: int
    width: int
    count: int
    scale: int
    columns: int

    @property
    def panel_size(self) -> tuple[int, int]:
        """(width, height) of one panel in grid pixels."""
        return self.width * self.scale, self.height * self.scale

    @property
    def card_size(self) -> tuple[int, int]:
        """(width, height) of one card: three panels and the caption below them."""
        panel_width, panel_height = self.panel_size
        return len(PANELS) * panel_width + (len(PANELS) - 1) * GAP, panel_height + (
            CAPTION_LINES * LINE + GAP
        )

    @property
    def rows(self) -> int:
        return -(-self.count // self.columns)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole grid."""
        card_width, card_height = self.card_size
        return (
            MARGIN + self.columns * (card_width + MARGIN),
            HEADER + MARGIN + self.rows * (card_height + MARGIN),
        )

    def card_origin(self, example: int) -> tuple[int, int]:
        """(x, y) of the top-left corner of example ``example``'s card (row-major)."""
        card_width, card_height = self.card_size
        row, column = divmod(example, self.columns)
        return MARGIN + column * (card_width + MARGIN), HEADER + MARGIN + row * (
            card_height + MARGIN
        )

    def panel_origin(self, example: int, panel: str) -> tuple[int, int]:
        """(x, y) of the top-left corner of one panel (``PANELS``) of an example."""
        x, y = self.card_origin(example)
        return x + PANELS.index(panel) * (self.panel_size[0] + GAP), y


def layout(shape: Sequence[int], count: int) -> Layout:
    """The layout of ``count`` examples of images of ``shape`` (H, W, C)."""
    height, width = int(shape[0]), int(shape[1])
    scale = max(1, CELL // max(height, width))
    one_column = Layout(height=height, width=width, count=count, scale=scale, columns=1)
    fitting = (MAX_WIDTH - MARGIN) // (one_column.card_size[0] + MARGIN)
    return dataclasses.replace(one_column, columns=max(1, min(3, count, fitting)))


def pick(success: Sequence[bool], count: int = SHOWN) -> list[int]:
    """Rows to show: successes first, each group in row order, at most ``count``."""
    order = sorted(range(len(success)), key=lambda row: not success[row])
    return order[:count]


def caption(
    *,
    attacked: bool,
    success: bool,
    queries: int,
    names: tuple[str, str],
    p_true: tuple[float, float],
) -> tuple[str, str, str]:
    """Caption lines: outcome, the model's class ``names`` before -> after, and the true
    class's probability ``p_true`` before -> after."""
    if not attacked:
        outcome = "misclassified already: not attacked"
    elif success:
        outcome = f"fooled in {queries:,} queries"
    else:
        outcome = f"not fooled in {queries:,} queries"
    return (
        outcome,
        f"class {names[0]} -> {names[1]}",
        f"p(true) {p_true[0]:.3f} -> {p_true[1]:.3f}",
    )


def render(examples: Sequence[Example]) -> Image.Image:
    """The grid of ``examples`` (all images of one shape) as an RGB image of
    ``layout(shape, len(examples)).size``."""
    if not examples:
        raise ValueError("expected at least one example to show, got none")
    shapes = {example.original.shape for example in examples} | {
        example.adversarial.shape for example in examples
    }
    if len(shapes) != 1:
        raise ValueError(f"expected examples of one image shape, got {sorted(shapes)}")
    grid = layout(examples[0].original.shape, len(examples))
    canvas = Image.new("RGB", grid.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=11)
    card_width = grid.card_size[0]
    for column in range(min(grid.columns, len(examples))):
        for panel in PANELS:
            x, _ = grid.panel_origin(column, panel)
            draw.text((x, MARGIN // 2), panel, fill=TEXT, font=font)
    for number, example in enumerate(examples):
        changed = changed_pixels(example.original, example.adversarial)
        adversarial = _upscale(_rgb(example.adversarial), grid.scale)
        change_map = _upscale(_dimmed(example.original), grid.scale)
        if changed.sum() <= MAX_RINGS:
            _ring(adversarial, changed, grid.scale, MARK)
            if grid.scale < 3:
                _ring(change_map, changed, grid.scale, HALO)
        change_map[_upscale(changed, grid.scale)] = MARK
        panels = {
            "clean": _upscale(_rgb(example.original), grid.scale),
            "adversarial": adversarial,
            "changed": change_map,
        }
        for panel, pixels in panels.items():
            canvas.paste(Image.fromarray(pixels), grid.panel_origin(number, panel))
        x, y = grid.card_origin(number)
        for line, text in enumerate(example.caption[:CAPTION_LINES]):
            draw.text(
                (x, y + grid.panel_size[1] + GAP // 2 + line * LINE),
                _fit(draw, font, text, card_width),
                fill=TEXT,
                font=font,
            )
    return canvas


def save(path: Path, examples: Sequence[Example]) -> None:
    """Render ``examples`` and save the grid as a PNG at ``path``."""
    render(examples).save(path, format="PNG")


def _rgb(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(H, W, 3) from (H, W, 1) or (H, W, 3)."""
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image.copy()


def _upscale(image: npt.NDArray[Any], scale: int) -> npt.NDArray[Any]:
    """(H*scale, W*scale, ...): each pixel of (H, W, ...) a block (nearest neighbour)."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _dimmed(original: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(H, W, 3) grey: the luma of (H, W, C) ``original`` dimmed to 64-127."""
    luma = original.astype(np.float64).mean(axis=-1)
    return np.repeat((64 + luma // 4).astype(np.uint8)[..., None], 3, axis=-1)


def _ring(
    image: npt.NDArray[np.uint8],
    changed: npt.NDArray[np.bool_],
    scale: int,
    colour: tuple[int, int, int],
) -> None:
    """Ring each ``changed`` (H, W) pixel of the upscaled (H*scale, W*scale, 3) ``image``
    in ``colour``, in place: at ``scale >= 3`` the border of its block (``scale // 6``
    thick, at least 1), below that a square outline 2 pixels thick, ``RING_GAP``
    pixels outside it."""
    outset = 0 if scale >= 3 else RING_GAP + 2
    thickness = max(1, scale // 6) if scale >= 3 else 2
    side = scale + 2 * outset
    ring = np.ones((side, side), dtype=bool)
    ring[thickness:-thickness, thickness:-thickness] = False
    height, width = image.shape[:2]
    for row, column in zip(*np.nonzero(changed), strict=True):
        top, left = int(row) * scale - outset, int(column) * scale - outset
        rows = slice(max(top, 0), min(top + side, height))
        columns = slice(max(left, 0), min(left + side, width))
        block = image[rows, columns]
        clipped = ring[rows.start - top :, columns.start - left :]
        block[clipped[: block.shape[0], : block.shape[1]]] = colour


def _fit(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    text: str,
    width: int,
) -> str:
    """``text``, cut with '...' to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
