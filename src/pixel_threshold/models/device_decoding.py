"""Candidates decoded where a TensorFlow model runs: the originals kept on its device,
each sent once, and only the changes (`attack.changes`) sent a call.

`DeviceDecoder` is one attack's decoder (`CompiledClassifier.decoding`): its originals
live in a variable of ``capacity`` images on the device, by key (`kept_originals`); a
call gathers its rows' originals there, applies the changes (a scatter for the Pixel
attack, an add and a clip for the Threshold attack) and hands the images to the model
without a trip through the host. The integers are those of the numpy decoder (the
changes' ``apply``), bit for bit: exact small integers in float32.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from pixel_threshold.attack.changes import Change, ChangedRows, MoveValues, SetPixels
from pixel_threshold.models.kept_originals import KeptOriginals

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
        self._device = device
        self._kept = KeptOriginals(capacity)
        self._originals: tf.Variable | None = None

    def __call__(self, rows: ChangedRows) -> npt.NDArray[np.float32]:
        placement = self._kept.placed(rows.keys)
        with tf.device(self._device):
            if self._originals is None:
                shape = rows.sources[0].images.shape[1:]
                self._originals = tf.Variable(
                    tf.zeros((self._kept.capacity, *shape), tf.float32), trainable=False
                )
            if len(placement.missing):
                self._originals.scatter_update(
                    tf.IndexedSlices(
                        tf.constant(rows.originals(placement.missing)),
                        tf.constant(placement.to.astype(np.int32)),
                    )
                )
            at = tf.constant(placement.rows.astype(np.int32))
            return self._score(changed(tf.gather(self._originals, at), rows.change))


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
