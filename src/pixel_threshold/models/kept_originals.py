"""Which originals a decoder keeps on its model's device, and where: the bookkeeping every
device decoder shares (TensorFlow's `device_decoding`, PyTorch's `backends.torch_decoding`),
with no framework in it.

A decoder keeps up to ``capacity`` originals in rows of one array on its device, by their
key (`changes.ChangedRows.keys`). A call asks where its rows' originals are; an original not
kept yet is given a free row, or the row of the least recently used original the call
does not need, and the decoder sends it there once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Placement:
    """Where a call's originals are: ``rows`` (the device array's row holding each of the
    call's rows' original), and the keys to send first, ``missing``, with the rows they
    go to, ``to``."""

    rows: Rows
    missing: Rows
    to: Rows


class KeptOriginals:
    """The rows of up to ``capacity`` originals on a device, least recently used first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[int, int] = OrderedDict()
        """Each kept original's row, least recently used first."""
        self._free = list(range(capacity))
        """The rows no original holds."""

    def placed(self, row_keys: npt.NDArray[np.integer]) -> Placement:
        """Where the originals of a call's rows, by their keys ``row_keys``, are kept or are
        to be sent; raises ValueError if a call wants more originals than the device keeps."""
        keys, inverse = np.unique(row_keys, return_inverse=True)
        if len(keys) > self.capacity:
            raise ValueError(f"expected at most {self.capacity} originals a call, got {len(keys)}")
        wanted = keys.tolist()
        missing = [key for key in wanted if key not in self._rows]
        needed = set(wanted)
        for key in list(self._rows):  # make room: the least recently used not needed
            if len(self._free) >= len(missing):
                break
            if key not in needed:
                self._free.append(self._rows.pop(key))
        for key in missing:
            self._rows[key] = self._free.pop()
        for key in wanted:
            self._rows.move_to_end(key)
        return Placement(
            np.array([self._rows[key] for key in wanted], dtype=np.int64)[inverse],
            np.array(missing, dtype=np.int64),
            np.array([self._rows[key] for key in missing], dtype=np.int64),
        )
