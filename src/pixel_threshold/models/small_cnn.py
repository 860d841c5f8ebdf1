"""The small CNN ``train`` builds by default, for 8x8 to 32x32 images."""

from __future__ import annotations

from collections.abc import Sequence

import keras


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
