"""The model contract's side of a Keras model: float32 (B, H, W, C) raw pixels in 0-255 to
class scores (B, K), through a compiled forward pass at padded batch shapes. Models from
elsewhere are adapted by ``input_range`` and a per-channel ``mean`` and ``std``."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf


class CompiledClassifier:
    """A Keras model as the attack's ``predict``: a compiled forward pass at padded shapes.

    Every call runs a graph of ``model(x, training=False)`` traced for a fixed batch
    shape. Inputs are zero-padded to the next power of two (at most ``batch_size``),
    so at most ``log2(batch_size) + 2`` graphs are traced, once each, and a short
    call (a small population, the last images of a run) never pays for a full batch.
    ``input_range`` maps 0-255 pixels to what the model expects, then ``mean`` and
    ``std`` (per channel, in that range; empty: none) normalise them, in the graph.
    The outputs are the model's own (probabilities for the models ``train`` builds).
    """

    kind = "keras"

    def __init__(
        self,
        model: keras.Model,
        *,
        batch_size: int,
        input_range: tuple[float, float] = (0.0, 255.0),
        mean: tuple[float, ...] = (),
        std: tuple[float, ...] = (),
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got batch_size={batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.input_range = input_range
        self.mean, self.std = mean, std
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])
        height, width, channels = self.input_shape
        self.image_shape: tuple[int, int, int] | None = (height, width, channels)
        low, high = input_range
        scale = (high - low) / 255.0
        offset = tf.constant(mean or (0.0,), tf.float32)
        spread = tf.constant(std or (1.0,), tf.float32)

        @tf.function  # type: ignore[untyped-decorator]
        def forward(pixels: tf.Tensor) -> tf.Tensor:
            inputs = pixels * scale + low
            if mean:
                inputs = (inputs - offset) / spread
            return model(inputs, training=False)

        self._forward = forward
        self._graphs: dict[int, Any] = {}

    @property
    def compiled_batch_shapes(self) -> list[int]:
        """The padded batch sizes traced so far."""
        return sorted(self._graphs)

    def padded_rows(self, count: int) -> int:
        """The batch shape a call with ``count`` rows runs at."""
        return min(self.batch_size, 1 << max(count - 1, 0).bit_length())

    def __call__(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Scores (m, K) for float32 pixels (m, H, W, C), ``m <= batch_size``."""
        count = len(pixels)
        if count > self.batch_size:
            raise ValueError(f"expected at most {self.batch_size} images a call, got {count}")
        rows = self.padded_rows(count)
        if rows > count:
            padded = np.zeros((rows, *self.input_shape), dtype=np.float32)
            padded[:count] = pixels
            pixels = padded
        graph = self._graphs.get(rows)
        if graph is None:  # traced explicitly, once per shape: no retracing warnings
            spec = tf.TensorSpec((rows, *self.input_shape), tf.float32)
            graph = self._graphs[rows] = self._forward.get_concrete_function(spec)
        outputs: npt.NDArray[np.float32] = graph(tf.constant(pixels)).numpy()
        return outputs[:count]
