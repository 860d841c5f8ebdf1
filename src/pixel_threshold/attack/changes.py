"""Candidates as the changes they make to their originals: what a model's runtime needs to
decode them where it runs.

A candidate is one original image and a few genes; decoded on the host it is a whole
float32 image (600 KB at 224x224x3) to copy to the model's device. As changes it is
small: the Pixel attack's ``th`` positions and values (`SetPixels`), the Threshold
attack's moves as small integers (`MoveValues`, a byte a value for th <= 127). A backend
that decodes changes keeps each original on its device, sent once, by its key
(`ChangedRows.keys`), and applies the changes there (`models/device_decoding.py`); the
numpy `apply` here is the reference it must match bit for bit, and what the host
decoder runs (`encodings`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack.types import PIXEL_LEVELS, IntArray

Pixels = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SetPixels:
    """Each row sets pixels ``positions`` (M, k), flat indices ``row * W + col`` distinct
    within a row, to ``values`` (M, k, C), integers in 0-255."""

    positions: IntArray
    values: Pixels

    def apply(self, pixels: Pixels) -> None:
        """Set the pixels of ``pixels`` (M, H, W, C), the rows' originals, in place."""
        count, height, width, channels = pixels.shape
        flat = pixels.reshape(count, height * width, channels)
        flat[np.arange(count)[:, None], self.positions] = self.values

    def widened(self, width: int) -> SetPixels:
        """The same changes with ``width`` >= k blocks a row: the first block repeated,
        which sets its pixel to the same value again."""
        extra = width - self.positions.shape[1]
        if not extra:
            return self
        return SetPixels(
            np.concatenate([self.positions, np.repeat(self.positions[:, :1], extra, 1)], 1),
            np.concatenate([self.values, np.repeat(self.values[:, :1], extra, 1)], 1),
        )


@dataclass(frozen=True)
class MoveValues:
    """Each row moves every value by ``delta`` (M, H, W, C), integers in [-th, th] (int8
    for th <= 127, else int16), then clips to 0-255."""

    delta: IntArray

    def apply(self, pixels: Pixels) -> None:
        """Move the values of ``pixels`` (M, H, W, C), the rows' originals, in place."""
        np.add(pixels, self.delta, out=pixels, casting="unsafe")
        np.clip(pixels, 0, PIXEL_LEVELS - 1, out=pixels)


Change = SetPixels | MoveValues


def move_dtype(th: int) -> type[np.int8] | type[np.int16]:
    """The smallest integer type that holds moves in [-th, th]."""
    return np.int8 if th <= np.iinfo(np.int8).max else np.int16


@dataclass(frozen=True)
class Originals:
    """Where the originals of some rows are: ``images`` (N, H, W, C), float32 pixels, of
    ``keys`` (N,) (an image's key, unique among an attack's images; -1 for none)."""

    images: Pixels
    keys: IntArray


@dataclass(frozen=True)
class ChangedRows:
    """Rows of candidates: the ``keys`` (M,) of their originals, found in ``sources``, and
    the ``change`` each row makes to its original."""

    keys: IntArray
    change: Change
    sources: tuple[Originals, ...]

    def __len__(self) -> int:
        return len(self.keys)

    def originals(self, keys: IntArray) -> Pixels:
        """The pixels (len(keys), H, W, C) of the originals of ``keys``."""
        wanted = {int(key): position for position, key in enumerate(keys.tolist())}
        found: Pixels | None = None
        for source in self.sources:
            for row, key in enumerate(source.keys.tolist()):
                position = wanted.pop(key, None)
                if position is None:
                    continue
                if found is None:
                    found = np.empty((len(keys), *source.images.shape[1:]), dtype=np.float32)
                found[position] = source.images[row]
        assert found is not None and not wanted, "every row's original is in its sources"
        return found


def joined(parts: Sequence[ChangedRows]) -> ChangedRows:
    """``parts``' rows, one after another, as one `ChangedRows` (all of one kind of
    change; `SetPixels` widened to the widest)."""
    if len(parts) == 1:
        return parts[0]
    keys = np.concatenate([part.keys for part in parts])
    sources = tuple(source for part in parts for source in part.sources)
    changes = [part.change for part in parts]
    if all(isinstance(change, MoveValues) for change in changes):
        moves = [change.delta for change in changes if isinstance(change, MoveValues)]
        delta: IntArray = np.concatenate(moves)
        return ChangedRows(keys, MoveValues(delta), sources)
    sets = [change for change in changes if isinstance(change, SetPixels)]
    assert len(sets) == len(changes), "one kind of change in a run"
    width = max(change.positions.shape[1] for change in sets)
    widened = [change.widened(width) for change in sets]
    return ChangedRows(
        keys,
        SetPixels(
            np.concatenate([change.positions for change in widened]),
            np.concatenate([change.values for change in widened]),
        ),
        sources,
    )


ScoreChanges = Callable[[ChangedRows], npt.NDArray[np.floating]]
"""Scores (M, K) of rows given as changes, decoded where the model runs."""


@runtime_checkable
class DecodesChanges(Protocol):
    """A classifier that can decode candidates where its model runs."""

    def decoding(self) -> ScoreChanges | None:
        """A fresh decoder for one attack (its originals kept until it is dropped), or
        None where this classifier decodes on the host."""
