"""Keras applications that take raw 0-255 RGB: preprocessing inside, weights from the
local cache or a file, never from the network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

from pixel_threshold.data import imagenet
from pixel_threshold.models import registry
from pixel_threshold.models.imagenet import applications

APPLICATIONS = [
    name
    for name, entry in registry.ARCHITECTURES.items()
    if isinstance(entry, registry.KerasApplication)
]

PREPROCESS_INPUT: dict[str, Callable[..., Any]] = {
    "resnet50": keras.applications.resnet50.preprocess_input,
    "vgg16": keras.applications.vgg16.preprocess_input,
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "efficientnet_b0": keras.applications.efficientnet.preprocess_input,
}


@pytest.fixture(scope="module")
def raw_pixels() -> np.ndarray[Any, np.dtype[np.float32]]:
    images, _, _ = imagenet.sample_photos()
    return images[:2].astype(np.float32)


def stand_in(weights: None, input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """A small backbone in place of a Keras application: what the preprocessing test
    needs is the layers in front of it and how they are wired, not the application."""
    assert weights is None  # our builder loads the weight file itself
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=8, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


@pytest.mark.parametrize("architecture", APPLICATIONS)
def test_raw_pixels_score_as_preprocess_input_does(
    architecture: str,
    raw_pixels: np.ndarray[Any, np.dtype[np.float32]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = registry.ARCHITECTURES[architecture]
    assert isinstance(entry, registry.KerasApplication)
    monkeypatch.setattr(keras.applications, entry.keras_class, stand_in)
    model = registry.build_model(architecture, (224, 224, 3), 1000, seed=0)
    backbone = model.layers[-1]
    manual = PREPROCESS_INPUT[architecture](raw_pixels.copy())
    layers_before = model.layers[1:-1]  # input, preprocessing (if any), backbone
    inside = layers_before[0](raw_pixels).numpy() if layers_before else raw_pixels
    np.testing.assert_allclose(inside, manual, rtol=1e-6, atol=1e-4)
    expected = backbone(manual).numpy()
    got = model(raw_pixels).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert np.array_equal(np.argmax(got, axis=1), np.argmax(expected, axis=1))


def test_lite0_normalises_raw_pixels_inside(
    raw_pixels: np.ndarray[Any, np.dtype[np.float32]],
) -> None:
    model = registry.build_model("efficientnet_lite0", (224, 224, 3), 1000)
    inside = keras.Model(model.input, model.get_layer("normalise").output)(raw_pixels).numpy()
    np.testing.assert_allclose(inside, (raw_pixels - 127.5) / 128.0, rtol=0, atol=1e-6)


def test_caffe_preprocessing_is_bgr_minus_the_mean() -> None:
    layer = applications.caffe_preprocessing()
    pixels = np.array([[[[10.0, 20.0, 30.0]]]], dtype=np.float32)
    bgr = layer(pixels).numpy().ravel()
    np.testing.assert_allclose(bgr, [30.0 - 103.939, 20.0 - 116.779, 10.0 - 123.68], rtol=1e-6)


def _legacy_h5(model: keras.Model, path: Path) -> Path:
    """``model``'s weights in the (legacy) .h5 format keras.applications downloads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        save_weights_to_hdf5_group(handle, model)
    return path


def test_imagenet_weights_come_from_keras_home_as_keras_would_load_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EfficientNetB0's ImageNet graph has one more rescaling than its weights=None
    graph: the model built from the cached file scores as Keras' own would."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    keras.utils.set_random_seed(3)
    source = keras.applications.EfficientNetB0(weights=None)
    normalization = next(
        layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)
    )
    normalization.adapt_mean.assign([0.485, 0.456, 0.406])
    normalization.adapt_variance.assign([0.229**2, 0.224**2, 0.225**2])
    normalization.finalize_state()
    cached = _legacy_h5(source, tmp_path / "models" / "efficientnetb0.h5")

    def no_download(file_name: str, *args: Any, **kwargs: Any) -> str:
        assert file_name == cached.name
        return str(cached)

    monkeypatch.setattr(keras.src.applications.efficientnet.file_utils, "get_file", no_download)
    reference = keras.applications.EfficientNetB0(weights="imagenet")
    ours = registry.build_model("efficientnet_b0", (224, 224, 3), 1000, weights="imagenet")
    pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(
        ours(pixels).numpy(), reference(pixels).numpy(), rtol=1e-4, atol=1e-6
    )
    # Random weights give near-uniform probabilities: compare the stem's activations too.
    stems = [
        keras.Model(model.input, model.get_layer("stem_activation").output)
        for model in (ours.layers[-1], reference)
    ]
    stem, reference_stem = (model(pixels).numpy() for model in stems)
    assert np.abs(reference_stem).max() > 1.0
    np.testing.assert_allclose(stem, reference_stem, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("architecture", APPLICATIONS)
def test_missing_weights_name_the_file_the_folder_and_the_source(
    architecture: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    source = registry.ARCHITECTURES[architecture]
    assert isinstance(source, registry.KerasApplication)
    with pytest.raises(ValueError) as raised:
        registry.check_build(architecture, "imagenet")
    message = str(raised.value)
    assert source.weights_file in message
    assert f"{tmp_path / 'keras' / 'models'}/" in message
    assert source.weights_url + source.weights_file in message


def test_a_weights_path_must_be_an_existing_h5_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"existing \.h5 file .* weights='.*missing\.h5'"):
        registry.check_build("resnet50", str(tmp_path / "missing.h5"))


def test_unknown_architectures_list_the_imagenet_ones() -> None:
    with pytest.raises(ValueError, match=r"small_cnn, resnet50, .*efficientnet_lite0\), got"):
        registry.check_build("alexnet", "none")
