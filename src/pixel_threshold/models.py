"""Classifiers: build, train and wrap Keras models (the one module that imports TensorFlow).

The model contract: a classifier maps float32 (B, H, W, C) raw pixels in 0-255 to
class probabilities (B, K). Models built here carry their preprocessing inside
the graph; models from elsewhere are adapted by ``input_range`` and ``logits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

INPUT_RANGES: dict[str, tuple[float, float]] = {
    "0,255": (0.0, 255.0),
    "0,1": (0.0, 1.0),
    "-1,1": (-1.0, 1.0),
}


def small_cnn(input_shape: Sequence[int], classes: int, *, seed: int = 0) -> keras.Model:
    """A small CNN for 8x8 to 32x32 images that takes raw 0-255 pixels."""
    init = keras.initializers.GlorotUniform
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(
        32, 3, padding="same", activation="relu", kernel_initializer=init(seed)
    )(x)
    x = keras.layers.Conv2D(
        64, 3, padding="same", activation="relu", kernel_initializer=init(seed + 1)
    )(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu", kernel_initializer=init(seed + 2))(x)
    x = keras.layers.Dropout(0.25, seed=seed)(x)
    outputs = keras.layers.Dense(
        classes, activation="softmax", name="probabilities", kernel_initializer=init(seed + 3)
    )(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def train_classifier(
    model: keras.Model,
    images: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    *,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    validation: tuple[npt.NDArray[Any], npt.NDArray[Any]] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> keras.callbacks.History:
    """Fit ``model`` on (N, H, W, C) 0-255 ``images`` with integer ``labels``."""
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model.fit(
        images.astype(np.float32),
        labels,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=None
        if validation is None
        else (validation[0].astype(np.float32), validation[1]),
        shuffle=True,
        verbose=0,
        callbacks=list(callbacks),
    )


class CompiledClassifier:
    """A Keras model as the attack's ``predict``: one compiled forward pass, fixed batch.

    Every call runs a ``tf.function`` of ``model(x, training=False)`` at the fixed
    shape (batch_size, H, W, C); shorter inputs are zero-padded, so the graph is
    traced once. ``input_range`` maps 0-255 pixels to what the model expects;
    ``logits=True`` applies a softmax to the outputs.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        batch_size: int,
        input_range: tuple[float, float] = (0.0, 255.0),
        logits: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got batch_size={batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])
        low, high = input_range
        scale = (high - low) / 255.0
        spec = tf.TensorSpec((batch_size, *self.input_shape), tf.float32)

        @tf.function(input_signature=[spec], reduce_retracing=True)  # type: ignore[untyped-decorator]
        def forward(pixels: tf.Tensor) -> tf.Tensor:
            outputs = model(pixels * scale + low, training=False)
            return tf.nn.softmax(outputs) if logits else outputs

        self._forward = forward

    def __call__(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities (m, K) for float32 pixels (m, H, W, C), ``m <= batch_size``."""
        count = len(pixels)
        if count > self.batch_size:
            raise ValueError(f"expected at most {self.batch_size} images a call, got {count}")
        if count < self.batch_size:
            padded = np.zeros((self.batch_size, *self.input_shape), dtype=np.float32)
            padded[:count] = pixels
            pixels = padded
        outputs: npt.NDArray[np.float32] = self._forward(pixels).numpy()
        return outputs[:count]
