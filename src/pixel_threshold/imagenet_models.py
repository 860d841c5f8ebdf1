"""ImageNet classifiers that take raw 0-255 RGB: Keras applications with their
``preprocess_input`` as layers in front, and EfficientNet-Lite0.

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
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras.src.applications.efficientnet import IMAGENET_STDDEV_RGB

from pixel_threshold import imagenet, lite0

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


@dataclass(frozen=True)
class Application:
    """A Keras application and the preprocessing layer it needs (None: built in)."""

    build: Callable[..., keras.Model]
    preprocessing: Callable[[], keras.layers.Layer] | None


APPLICATIONS = {
    "resnet50": Application(keras.applications.ResNet50, caffe_preprocessing),
    "vgg16": Application(keras.applications.VGG16, caffe_preprocessing),
    "mobilenet_v2": Application(keras.applications.MobileNetV2, tf_preprocessing),
    "efficientnet_b0": Application(keras.applications.EfficientNetB0, None),
}


def application(
    architecture: str,
    input_shape: Sequence[int] = imagenet.INPUT_SHAPE,
    classes: int = imagenet.CLASSES,
    *,
    weights: str = "none",
    seed: int = 0,
) -> keras.Model:
    """``architecture`` for raw 0-255 RGB (H, W, 3) returning probabilities (B, classes).

    ``weights``: none (random, seeded), imagenet (the file in Keras' cache) or a path
    to the application's .h5 weight file; with ImageNet weights the model is 224x224
    with 1000 classes.
    """
    spec = APPLICATIONS[architecture]
    path = None if weights == "none" else imagenet.keras_weights_file(architecture, weights)
    keras.utils.set_random_seed(seed)
    backbone = spec.build(weights=None, input_shape=tuple(input_shape), classes=classes)
    if path is not None:
        backbone.load_weights(path)
        if architecture == "efficientnet_b0":
            _efficientnet_imagenet_scale(backbone)
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = inputs if spec.preprocessing is None else spec.preprocessing()(inputs)
    return keras.Model(inputs, backbone(x), name=f"{architecture}_pixels")


def _efficientnet_imagenet_scale(backbone: keras.Model) -> None:
    """What ``EfficientNetB0(weights="imagenet")`` adds to its graph, folded into its
    ``Normalization`` layer: one more division by sqrt(stddev) per channel, i.e. a
    variance multiplied by the ImageNet stddev (saved with the model)."""
    layer = next(
        layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)
    )
    stddev = np.array(IMAGENET_STDDEV_RGB, dtype=np.float32)
    layer.adapt_variance.assign(np.asarray(layer.adapt_variance) * stddev)
    layer.finalize_state()


def efficientnet_lite0(
    input_shape: Sequence[int] = imagenet.INPUT_SHAPE,
    classes: int = imagenet.CLASSES,
    *,
    weights: str = "none",
    seed: int = 0,
    load: Callable[[str], keras.Model],
) -> keras.Model:
    """EfficientNet-Lite0 (see ``lite0``): random (``none``), converted from the
    ``imagenet`` extra's checkpoint (cached; ``load`` opens the cache's ``.keras``
    file safely), or converted from a legacy PyTorch ``.pth`` file."""
    if weights == "imagenet":
        return lite0.pretrained(load)
    if weights == "none":
        return lite0.efficientnet_lite0(input_shape, classes, seed=seed)
    return lite0.from_checkpoint(Path(weights))
