"""Candidates decoded where a TensorFlow model runs: the originals kept on its device,
each sent once, and only the changes (`attack.changes`) sent a call.

`DeviceDecoder` is one attack's decoder (`CompiledClassifier.decoding`): its originals
live in a variable of ``capacity`` images on the device, by key, the least recently used
making room; a call gathers its rows' originals there, applies the changes (a scatter
for the Pixel attack, an add and a clip for the Threshold attack) and hands the images
to the model without a trip through the host. The integers are those of the numpy
decoder (the changes' ``apply``), bit for bit: exact small integers in float32.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from pixel_threshold.attack.changes import Change, ChangedRows, MoveValues, SetPixels

PIXEL_MAX = 255.0


class DeviceDecoder:
    """Scores of `ChangedRows` by ``score`` (a float32 (m, H, W, C) tensor of pixels on
    the device -> (m, K) scores), the originals of up to ``capacity`` images kept on
    ``device`` (a TensorFlow device name)."""

    def __init__(
        self,
        score: Callable[[tf.Tensor], npt.NDArray[np.float32]],
        *,
        capacity: int,
        device: str,
    ) -> None:
        self._score = score
        self._capacity = capacity
        self._device = device
        self._originals: tf.Variable | None = None
        self._places: OrderedDict[int, int] = OrderedDict()
        """Each kept original's row in the variable, least recently used first."""
        self._free = list(range(capacity))
        """The variable's rows no original holds."""

    def __call__(self, rows: ChangedRows) -> npt.NDArray[np.float32]:
        keys, inverse = np.unique(rows.keys, return_inverse=True)
        if len(keys) > self._capacity:
            raise ValueError(f"expected at most {self._capacity} originals a call, got {len(keys)}")
        places = self._placed(keys, rows)
        with tf.device(self._device):
            assert self._originals is not None, "placed() made the variable"
            pixels = tf.gather(self._originals, tf.constant(places[inverse], tf.int32))
            return self._score(changed(pixels, rows.change))

    def _placed(self, keys: npt.NDArray[np.integer], rows: ChangedRows) -> npt.NDArray[np.int32]:
        """The variable's row of each of ``keys``, sending the originals it lacks."""
        if self._originals is None:
            shape = rows.sources[0].images.shape[1:]
            with tf.device(self._device):
                self._originals = tf.Variable(
                    tf.zeros((self._capacity, *shape), tf.float32), trainable=False
                )
        wanted = set(keys.tolist())
        missing = [key for key in keys.tolist() if key not in self._places]
        for key in list(self._places):  # make room: the least recently used not wanted
            if len(self._free) >= len(missing):
                break
            if key not in wanted:
                self._free.append(self._places.pop(key))
        for key in missing:
            self._places[key] = self._free.pop()
        if missing:
            at = np.array([self._places[key] for key in missing], dtype=np.int32)
            pixels = rows.originals(np.array(missing))
            with tf.device(self._device):
                self._originals.scatter_update(
                    tf.IndexedSlices(tf.constant(pixels), tf.constant(at))
                )
        for key in keys.tolist():
            self._places.move_to_end(key)
        return np.array([self._places[key] for key in keys.tolist()], dtype=np.int32)


def changed(pixels: tf.Tensor, change: Change) -> tf.Tensor:
    """The originals ``pixels`` (M, H, W, C) with ``change`` applied, on their device."""
    if isinstance(change, MoveValues):
        moved = pixels + tf.cast(tf.constant(change.delta), tf.float32)
        return tf.clip_by_value(moved, 0.0, PIXEL_MAX)
    assert isinstance(change, SetPixels)
    count, height, width, channels = pixels.shape
    blocks = change.positions.shape[1]
    rows = np.repeat(np.arange(count, dtype=np.int32), blocks)
    at = np.stack([rows, change.positions.reshape(-1).astype(np.int32)], axis=1)
    flat = tf.reshape(pixels, (count, height * width, channels))
    flat = tf.tensor_scatter_nd_update(
        flat, tf.constant(at), tf.constant(change.values.reshape(-1, channels))
    )
    return tf.reshape(flat, (count, height, width, channels))
