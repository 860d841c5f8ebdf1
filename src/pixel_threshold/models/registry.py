"""The architectures ``train`` builds, in one registry.

Each entry says how it is built, which ``weights`` it takes, and whether weights make
it ImageNet's pretrained model (224x224 RGB, 1000 classes). Looking a name up and
checking its weights imports no Keras (an entry imports its builder when it builds), so
a bad ``architecture`` or ``weights`` is refused before TensorFlow loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from pixel_threshold.data.imagenet import CLASSES, INPUT_SHAPE
from pixel_threshold.models import weights as weight_files

if TYPE_CHECKING:
    import keras

KERAS_URL = "https://storage.googleapis.com/"


class Architecture(Protocol):
    imagenet: ClassVar[bool]
    """Whether weights other than none make it ImageNet's pretrained model."""

    def check_weights(self, weights: str) -> None:
        """Raise ValueError, naming ``weights``, for weights it cannot use."""

    def build(
        self, input_shape: Sequence[int], classes: int, *, weights: str, seed: int
    ) -> keras.Model:
        """A new model for (H, W, C) 0-255 images, from ``weights`` (checked)."""


@dataclass(frozen=True)
class SmallCnn:
    """The small CNN (``small_cnn``); weights: none or a ``.weights.h5`` file."""

    imagenet: ClassVar[bool] = False

    def check_weights(self, weights: str) -> None:
        if weights != "none" and not (weights.endswith(".weights.h5") and Path(weights).is_file()):
            raise ValueError(
                f"expected weights to be none or a .weights.h5 file, got weights={weights!r}"
            )

    def build(
        self, input_shape: Sequence[int], classes: int, *, weights: str, seed: int
    ) -> keras.Model:
        from pixel_threshold.models.small_cnn import small_cnn

        model = small_cnn(input_shape, classes, seed=seed)
        if weights != "none":
            model.load_weights(weights)
        return model


@dataclass(frozen=True)
class KerasApplication:
    """A ``keras.applications`` model taking raw 0-255 RGB, with the preprocessing it
    needs as layers in front (`imagenet.applications`); weights: none, imagenet (the
    file Keras' ``weights="imagenet"`` caches) or a path to that ``.h5`` file."""

    name: str
    keras_class: str
    """Its class in ``keras.applications``."""
    preprocessing: str
    """caffe (RGB to BGR, minus the ImageNet mean), tf (to [-1, 1]) or built-in."""
    weights_file: str
    weights_url: str
    imagenet: ClassVar[bool] = True

    def check_weights(self, weights: str) -> None:
        if weights != "none":
            self.weights_path(weights)

    def weights_path(self, weights: str) -> Path:
        """The .h5 file ``weights`` names: ``imagenet`` (Keras' cache) or a path. Raises
        ValueError, naming the file, the folder to put it in and where it comes from, if
        it does not exist."""
        if weights != "imagenet":
            return weight_files.weights_file(
                weights, ".h5", architecture=self.name, described="an existing .h5 file"
            )
        path = weight_files.keras_models_dir() / self.weights_file
        if not path.is_file():
            raise ValueError(
                f"expected the ImageNet weights of architecture={self.name!r} in {path}, found "
                f"none (nothing is downloaded at run time): put {self.weights_file} in "
                f"{path.parent}/ (from {self.weights_url}{self.weights_file}), or pass "
                "weights=<path to the .h5 file>"
            )
        return path

    def build(
        self, input_shape: Sequence[int], classes: int, *, weights: str, seed: int
    ) -> keras.Model:
        from pixel_threshold.models.imagenet.applications import application

        return application(
            self.name,
            self.keras_class,
            self.preprocessing,
            input_shape,
            classes,
            weights_path=None if weights == "none" else self.weights_path(weights),
            seed=seed,
        )


@dataclass(frozen=True)
class Lite0:
    """EfficientNet-Lite0 (`imagenet.lite0`); weights: none, imagenet (the ``imagenet``
    extra's checkpoint, converted once and cached) or a legacy PyTorch ``.pth`` file."""

    name: ClassVar[str] = "efficientnet_lite0"
    imagenet: ClassVar[bool] = True

    def check_weights(self, weights: str) -> None:
        if weights == "imagenet":
            weight_files.lite0_checkpoint()
        elif weights != "none":
            weight_files.weights_file(
                weights, ".pth", architecture=self.name, described="a legacy PyTorch .pth file"
            )

    def build(
        self, input_shape: Sequence[int], classes: int, *, weights: str, seed: int
    ) -> keras.Model:
        from pixel_threshold.models.imagenet import lite0

        if weights == "imagenet":
            return lite0.pretrained()
        if weights == "none":
            return lite0.efficientnet_lite0(input_shape, classes, seed=seed)
        return lite0.from_checkpoint(Path(weights))


ARCHITECTURES: dict[str, Architecture] = {
    "small_cnn": SmallCnn(),
    "resnet50": KerasApplication(
        "resnet50",
        "ResNet50",
        "caffe",
        "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        f"{KERAS_URL}tensorflow/keras-applications/resnet/",
    ),
    "vgg16": KerasApplication(
        "vgg16",
        "VGG16",
        "caffe",
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        f"{KERAS_URL}tensorflow/keras-applications/vgg16/",
    ),
    "mobilenet_v2": KerasApplication(
        "mobilenet_v2",
        "MobileNetV2",
        "tf",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        f"{KERAS_URL}tensorflow/keras-applications/mobilenet_v2/",
    ),
    "efficientnet_b0": KerasApplication(
        "efficientnet_b0",
        "EfficientNetB0",
        "built-in",
        "efficientnetb0.h5",
        f"{KERAS_URL}keras-applications/",
    ),
    "efficientnet_lite0": Lite0(),
}


def architecture(name: str) -> Architecture:
    """The registry's entry for ``name``; raises ValueError naming ``architecture``."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"expected architecture in ({', '.join(ARCHITECTURES)}), got architecture={name!r}"
        )
    return ARCHITECTURES[name]


def check_build(name: str, weights: str) -> None:
    """Raise ValueError, naming the parameter, for an unknown architecture or ``weights``
    it cannot use (for ImageNet weights that are not there: the file to get and where to
    put it), before anything is built."""
    architecture(name).check_weights(weights)


def build_model(
    name: str,
    input_shape: Sequence[int],
    classes: int,
    *,
    weights: str = "none",
    seed: int = 0,
) -> keras.Model:
    """A new ``name`` model for (H, W, C) 0-255 images, from ``weights`` (checked)."""
    entry = architecture(name)
    entry.check_weights(weights)
    return entry.build(input_shape, classes, weights=weights, seed=seed)


def pretrained_input(name: str, weights: str) -> tuple[tuple[int, int, int], int] | None:
    """The (H, W, C) input and classes of a pretrained ImageNet model; None for a model
    whose shape and classes come from the data."""
    if architecture(name).imagenet and weights != "none":
        return INPUT_SHAPE, CLASSES
    return None
