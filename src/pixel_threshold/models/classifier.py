"""The model contract's side of a Keras model: float32 (B, H, W, C) raw pixels in 0-255 to
class scores (B, K), through a compiled forward pass at padded batch shapes. Models from
elsewhere are adapted by ``input_range`` and a per-channel ``mean`` and ``std``."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from pixel_threshold.models.device_decoding import DeviceDecoder


class CompiledClassifier:
    """A Keras model as the attack's ``predict``: a compiled forward pass at padded shapes.

    Every call runs a graph of ``model(x, training=False)`` traced for a fixed batch
    shape. Inputs are zero-padded to the next power of two (at most ``batch_size``),
    so at most ``log2(batch_size) + 2`` graphs are traced, once each, and a short
    call (a small population, the last images of a run) never pays for a full batch.
    ``input_range`` maps 0-255 pixels to what the model expects, then ``mean`` and
    ``std`` (per channel, in that range; empty: none) normalise them, in the graph.
    The outputs are the model's own (probabilities for the models ``train`` builds).

    ``decode_on_device``: whether an attack hands this classifier its candidates as
    changes to originals kept on the model's device (`decoding`), rather than as pixels
    decoded on the host; None (the default) decodes on the device where TensorFlow has
    a GPU, where the copies it saves cost most.
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
        decode_on_device: bool | None = None,
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
        gpus = tf.config.list_logical_devices("GPU")
        self.decode_on_device = bool(gpus) if decode_on_device is None else decode_on_device
        self._device = gpus[0].name if gpus else "/CPU:0"

    @property
    def compiled_batch_shapes(self) -> list[int]:
        """The padded batch sizes traced so far."""
        return sorted(self._graphs)

    def padded_rows(self, count: int) -> int:
        """The batch shape a call with ``count`` rows runs at."""
        return min(self.batch_size, 1 << max(count - 1, 0).bit_length())

    def __call__(self, pixels: npt.NDArray[np.float32] | tf.Tensor) -> npt.NDArray[np.float32]:
        """Scores (m, K) for float32 pixels (m, H, W, C), ``m <= batch_size``: host pixels
        (padded with numpy: a TensorFlow op more a call costs more) or a tensor on the
        device (the decoder's, padded there), run at the padded batch shape."""
        count = int(pixels.shape[0])
        if count > self.batch_size:
            raise ValueError(f"expected at most {self.batch_size} images a call, got {count}")
        rows = self.padded_rows(count)
        if rows > count and isinstance(pixels, np.ndarray):
            padded = np.zeros((rows, *self.input_shape), dtype=np.float32)
            padded[:count] = pixels
            pixels = padded
        elif rows > count:
            pixels = tf.pad(pixels, [[0, rows - count], [0, 0], [0, 0], [0, 0]])
        outputs: npt.NDArray[np.float32] = self._graph(rows)(tf.convert_to_tensor(pixels)).numpy()
        return outputs[:count]

    def decoding(self) -> DeviceDecoder | None:
        """A decoder for one attack that keeps its originals on the model's device, or
        None where candidates are decoded on the host (``decode_on_device``)."""
        if not self.decode_on_device:
            return None
        return DeviceDecoder(self, capacity=self.batch_size, device=self._device)

    def _graph(self, rows: int) -> Any:
        """The graph traced for calls of ``rows`` rows (a padded batch shape)."""
        graph = self._graphs.get(rows)
        if graph is None:  # traced explicitly, once per shape: no retracing warnings
            spec = tf.TensorSpec((rows, *self.input_shape), tf.float32)
            graph = self._graphs[rows] = self._forward.get_concrete_function(spec)
        return graph
