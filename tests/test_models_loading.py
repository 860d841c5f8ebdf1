"""Building, loading and wrapping classifiers for the entry points."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from pixel_threshold.models import (
    build_model,
    compile_classifier,
    load_model,
    parse_input_range,
    predict_labels,
)

IMAGES = np.random.default_rng(0).integers(0, 256, size=(20, 8, 8, 1)).astype(np.uint8)


def _dense(activation: str | None) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(
        4, activation=activation, kernel_initializer=keras.initializers.GlorotUniform(0)
    )(flat)
    return keras.Model(inputs, outputs)


def test_logits_are_detected_and_turned_into_probabilities() -> None:
    model = _dense(None)
    probabilities = compile_classifier(model, batch_size=8, input_range=(0, 255), probe=IMAGES)
    outputs = probabilities(IMAGES[:8].astype(np.float32))
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)
    logits = model(IMAGES[:8].astype(np.float32)).numpy()
    np.testing.assert_allclose(outputs, keras.ops.softmax(logits).numpy(), rtol=1e-5, atol=1e-7)


def test_probability_models_are_left_as_they_are() -> None:
    model = _dense("softmax")
    classifier = compile_classifier(model, batch_size=8, input_range=(0, 255), probe=IMAGES)
    np.testing.assert_allclose(
        classifier(IMAGES[:8].astype(np.float32)),
        model(IMAGES[:8].astype(np.float32)).numpy(),
        rtol=1e-5,
        atol=1e-7,
    )


def test_predict_labels_goes_batch_by_batch() -> None:
    model = _dense("softmax")
    classifier = compile_classifier(model, batch_size=7, input_range=(0, 255), probe=IMAGES)
    expected = np.argmax(model(IMAGES.astype(np.float32)).numpy(), axis=1)
    assert predict_labels(classifier, IMAGES).tolist() == expected.tolist()


def test_build_model_starts_from_a_weights_file(tmp_path: Path) -> None:
    first = build_model("small_cnn", (8, 8, 1), 10, seed=1)
    first.save_weights(tmp_path / "start.weights.h5")
    second = build_model(
        "small_cnn", (8, 8, 1), 10, seed=2, weights=str(tmp_path / "start.weights.h5")
    )
    for ours, theirs in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="got weights='imagenet'"):
        build_model("small_cnn", (8, 8, 1), 10, weights="imagenet")


def test_keras_files_load_and_other_strings_are_refused(tmp_path: Path) -> None:
    model = _dense("softmax")
    model.save(tmp_path / "m.keras")
    loaded = load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(
        loaded(IMAGES.astype(np.float32)).numpy(), model(IMAGES.astype(np.float32)).numpy()
    )
    with pytest.raises(ValueError, match=re.escape("got model='s3-bucket/m.h5'")):
        load_model("s3-bucket/m.h5")


def test_input_ranges_by_name() -> None:
    assert parse_input_range("-1,1") == (-1.0, 1.0)
    with pytest.raises(ValueError, match="got input_range='0,256'"):
        parse_input_range("0,256")
