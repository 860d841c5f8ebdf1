"""Keras applications that take raw 0-255 RGB, with their ``preprocess_input`` as layers
in front (built for the registry's `registry.KerasApplication` entries, which hand over
what to build as plain values: this module imports nothing of the registry).

Each application is built with ``weights=None`` and its weight file loaded here, so
no code path can reach the network. The preprocessing layers are plain Keras layers
(no ``Lambda``), so the saved models load in safe mode:

- ``resnet50``, ``vgg16`` ("caffe"): RGB to BGR and minus the ImageNet mean, as one
  fixed 1x1 convolution (a channel permutation with the negated means as its bias);
- ``mobilenet_v2`` ("tf"): x / 127.5 - 1, a ``Rescaling``;
- ``efficientnet_b0``: nothing: the application rescales and normalises itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
from keras.src.applications.efficientnet import IMAGENET_STDDEV_RGB

from pixel_threshold.data.imagenet import CLASSES, INPUT_SHAPE

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
"""The ImageNet channel means that "caffe" preprocessing subtracts, in BGR order."""


def caffe_preprocessing(name: str = "caffe_preprocess") -> keras.layers.Layer:
    """A fixed 1x1 convolution: RGB to BGR, then minus ``CAFFE_MEAN_BGR``."""
    permutation = np.zeros((1, 1, 3, 3), dtype=np.float32)
    for bgr, rgb in enumerate((2, 1, 0)):
        permutation[0, 0, rgb, bgr] = 1.0
    bias = -np.array(CAFFE_MEAN_BGR, dtype=np.float32)
    return keras.layers.Conv2D(
        3,
        1,
        name=name,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(permutation),
        bias_initializer=keras.initializers.Constant(bias),
    )


def tf_preprocessing(name: str = "tf_preprocess") -> keras.layers.Layer:
    """x / 127.5 - 1: pixels to [-1, 1]."""
    return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)


PREPROCESSING: dict[str, Callable[[], keras.layers.Layer] | None] = {
    "caffe": caffe_preprocessing,
    "tf": tf_preprocessing,
    "built-in": None,
}
"""The layer in front of an application for each kind of ``preprocess_input``."""


def application(
    name: str,
    keras_class: str,
    preprocessing: str,
    input_shape: Sequence[int] = INPUT_SHAPE,
    classes: int = CLASSES,
    *,
    weights_path: Path | None = None,
    seed: int = 0,
) -> keras.Model:
    """The application ``keras_class`` (its class in ``keras.applications``) for raw 0-255
    RGB (H, W, 3) returning probabilities (B, classes), named ``<name>_pixels``, with the
    ``preprocessing`` layer of `PREPROCESSING` in front.

    ``weights_path``: None (random, seeded) or the application's .h5 weight file (with
    ImageNet weights the model is 224x224 with 1000 classes).
    """
    keras.utils.set_random_seed(seed)
    build = getattr(keras.applications, keras_class)
    backbone = build(weights=None, input_shape=tuple(input_shape), classes=classes)
    layer = PREPROCESSING[preprocessing]
    if weights_path is not None:
        backbone.load_weights(weights_path)
        if layer is None:
            _efficientnet_imagenet_scale(backbone)
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = inputs if layer is None else layer()(inputs)
    return keras.Model(inputs, backbone(x), name=f"{name}_pixels")


def _efficientnet_imagenet_scale(backbone: keras.Model) -> None:
    """What ``EfficientNetB0(weights="imagenet")`` adds to its graph, folded into its
    ``Normalization`` layer (the "built-in" preprocessing): one more division by
    sqrt(stddev) per channel, i.e. a variance multiplied by the ImageNet stddev (saved
    with the model)."""
    layer = next(
        layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)
    )
    stddev = np.array(IMAGENET_STDDEV_RGB, dtype=np.float32)
    layer.adapt_variance.assign(np.asarray(layer.adapt_variance) * stddev)
    layer.finalize_state()
