"""Rules that make a fooling image smaller, one candidate at a time (the tightening of
``th=-1``, `smallest`): each attack type has its own (`encodings`)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.types import PIXEL_LEVELS, IntArray

Image = npt.NDArray[np.float32]
"""(H, W, C) float32 pixel values in 0-255."""


class Shrink(Protocol):
    """A rule that makes a fooling image smaller, one candidate at a time: `candidate`
    proposes the next smaller image, `told` hears whether it still fools, until `done`."""

    @property
    def done(self) -> bool:
        """Whether no candidate is left to try."""

    def candidate(self, current: Image) -> Image:
        """The next smaller image to try, from ``current``, the smallest that fooled so far."""

    def told(self, fooled: bool) -> None:
        """Whether the last candidate fooled."""


class ClipDelta:
    """Threshold: clip the delta from ``original`` to the smallest ``[-c, c]`` that
    still fools, by bisection on c between 0 (the original, which the model gets right)
    and the delta's L-infinity."""

    def __init__(self, original: Image, fooling: Image) -> None:
        self._original = original
        self._delta = fooling - original
        self._low, self._high = 0, int(np.abs(self._delta).max())

    @property
    def done(self) -> bool:
        return self._high - self._low <= 1

    def candidate(self, current: Image) -> Image:
        bound = float(self._middle)
        clipped: Image = self._original + np.clip(self._delta, -bound, bound)
        np.clip(clipped, 0, PIXEL_LEVELS - 1, out=clipped)
        return clipped

    def told(self, fooled: bool) -> None:
        if fooled:
            self._high = self._middle
        else:
            self._low = self._middle

    @property
    def _middle(self) -> int:
        return (self._low + self._high) // 2


class RestorePixels:
    """Pixel: restore the changed pixels to ``original`` one at a time, in ``order``
    (flat pixel indices), keeping every restoration after which the image still fools."""

    def __init__(self, original: Image, order: IntArray) -> None:
        self._original = original.reshape(-1, original.shape[-1])
        self._order = order
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next == len(self._order)

    def candidate(self, current: Image) -> Image:
        restored = current.copy()
        pixel = self._order[self._next]
        restored.reshape(self._original.shape)[pixel] = self._original[pixel]
        return restored

    def told(self, fooled: bool) -> None:
        self._next += 1
