"""Training a classifier on 0-255 images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import numpy.typing as npt


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
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> keras.callbacks.History:
    """Fit ``model`` on (N, H, W, C) 0-255 ``images`` with integer ``labels``;
    ``on_epoch_end(epoch, logs)`` is told each epoch's metrics."""
    callbacks = (
        [] if on_epoch_end is None else [keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)]
    )
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
        callbacks=callbacks,
    )
