"""The benchmark's models and images: a digits CNN, a 224x224 ImageNet-sized model with
random weights, and EfficientNet-Lite0 with its ImageNet weights on real photos."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import numpy.typing as npt

from pixel_threshold.data.datasets import digits, imagenet_sample
from pixel_threshold.models.classifier import CompiledClassifier
from pixel_threshold.models.registry import build_model
from pixel_threshold.models.small_cnn import small_cnn
from pixel_threshold.models.training import train_classifier


@dataclass(frozen=True)
class Case:
    """A model and the images it classifies correctly, attacked by every tool."""

    name: str
    model: keras.Model
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    classes: int


def digits_case(images: int) -> Case:
    """The small CNN trained on scikit-learn's digits; the first correct test images."""
    split = digits(seed=0)
    model = small_cnn((8, 8, 1), 10, seed=0)
    train_classifier(model, split.train_images, split.train_labels, epochs=8, seed=0)
    return _correct(Case("digits_cnn", model, split.test_images, split.test_labels, 10), images)


def imagenet_sized_case(images: int) -> Case:
    """MobileNetV2 at 224x224 with random weights (speed only) on scikit-image's photos.

    Labels are the model's own predictions, so every image counts as correct.
    """
    from skimage import data, transform

    photos = [
        data.astronaut(),
        data.chelsea(),
        data.coffee(),
        data.rocket(),
        data.immunohistochemistry(),
        data.colorwheel(),
    ]
    resized = np.stack(
        [
            np.round(transform.resize(photo[..., :3], (224, 224), anti_aliasing=True) * 255)
            for photo in photos
        ]
    ).astype(np.uint8)[:images]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((224, 224, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    model = keras.Model(inputs, backbone(scaled), name="mobilenet_v2_random")
    labels = np.argmax(
        CompiledClassifier(model, batch_size=len(resized))(resized.astype(np.float32)), axis=1
    )
    return Case("mobilenet_v2_224", model, resized, labels.astype(np.int64), 1000)


def lite0_case(images: int) -> Case:
    """EfficientNet-Lite0 with its ImageNet weights (the ``imagenet`` extra; converted
    once, then cached) on the imagenet-sample photos it classifies correctly."""
    split = imagenet_sample()
    model = build_model("efficientnet_lite0", (224, 224, 3), 1000, weights="imagenet")
    case = Case("lite0_imagenet", model, split.test_images, split.test_labels, 1000)
    return _correct(case, images)


def _correct(case: Case, count: int) -> Case:
    predicted = np.argmax(case.model(case.images.astype(np.float32)).numpy(), axis=1)
    keep = np.flatnonzero(predicted == case.labels)[:count]
    return Case(case.name, case.model, case.images[keep], case.labels[keep], case.classes)
