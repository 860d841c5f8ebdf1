"""Building, loading and wrapping classifiers for the entry points."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras.src.saving.serialization_lib import SafeModeScope

from pixel_threshold.models.classifier import CompiledClassifier
from pixel_threshold.models.conventions import parse_input_range
from pixel_threshold.models.loading import image_classifier_shape, load_model
from pixel_threshold.models.registry import build_model
from pixel_threshold.models.scoring import predicted_labels, probed

IMAGES = np.random.default_rng(0).integers(0, 256, size=(20, 8, 8, 1)).astype(np.uint8)


def _dense(activation: str | None) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(
        4, activation=activation, kernel_initializer=keras.initializers.GlorotUniform(0)
    )(flat)
    return keras.Model(inputs, outputs)


def test_logits_are_detected_and_left_as_they_are() -> None:
    model = _dense(None)
    classifier = CompiledClassifier(model, batch_size=8)
    assert probed(classifier, IMAGES, uri="dense", outputs="") == ("logits", 4)
    logits = model(IMAGES[:8].astype(np.float32)).numpy()
    np.testing.assert_allclose(classifier(IMAGES[:8].astype(np.float32)), logits, rtol=1e-5)
    log_softmax = _dense("log_softmax")
    assert probed(CompiledClassifier(log_softmax, batch_size=8), IMAGES, uri="l", outputs="") == (
        "log_probabilities",
        4,
    )


def test_probability_models_are_left_as_they_are() -> None:
    model = _dense("softmax")
    classifier = CompiledClassifier(model, batch_size=8)
    assert probed(classifier, IMAGES, uri="dense", outputs="") == ("probabilities", 4)
    np.testing.assert_allclose(
        classifier(IMAGES[:8].astype(np.float32)),
        model(IMAGES[:8].astype(np.float32)).numpy(),
        rtol=1e-5,
        atol=1e-7,
    )


def test_predict_labels_goes_batch_by_batch() -> None:
    model = _dense("softmax")
    classifier = CompiledClassifier(model, batch_size=7)
    expected = np.argmax(model(IMAGES.astype(np.float32)).numpy(), axis=1)
    assert predicted_labels(classifier, IMAGES).tolist() == expected.tolist()


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


def _with_lambda() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    doubled = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    outputs = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(doubled))
    return keras.Model(inputs, outputs)


def test_models_holding_python_code_are_refused_even_if_keras_allows_them(
    tmp_path: Path,
) -> None:
    _with_lambda().save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match=r"cannot load model=.*holds Python code"):
        load_model(str(tmp_path / "lambda.keras"))
    # What keras.config.enable_unsafe_deserialization() does, undone on exit.
    with SafeModeScope(False), pytest.raises(ValueError, match="holds Python code"):
        load_model(str(tmp_path / "lambda.keras"))


def test_files_that_are_not_keras_models_are_refused(tmp_path: Path) -> None:
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(ValueError, match=r"model='.*text.keras' to be a Keras model file"):
        load_model(str(tmp_path / "text.keras"))
    with zipfile.ZipFile(tmp_path / "zip.keras", "w") as archive:
        archive.writestr("readme.txt", "a zip, but no model")
    with pytest.raises(ValueError, match=r"cannot load model='.*zip.keras' as a Keras model"):
        load_model(str(tmp_path / "zip.keras"))


def test_classifier_shape_is_checked() -> None:
    assert image_classifier_shape(_dense("softmax"), uri="m") == ((8, 8, 1), 4)
    flat = keras.Sequential([keras.Input((64,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"model='flat' to take \(batch, height, width"):
        image_classifier_shape(flat, uri="flat")
    free = keras.Sequential([keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="of a fixed size, got input shape"):
        image_classifier_shape(free, uri="free")
    four = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="1 or 3"):
        image_classifier_shape(four, uri="four")
    single = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    with pytest.raises(ValueError, match="classes >= 2, got output shape"):
        image_classifier_shape(single, uri="single")


def test_a_model_returning_nan_is_refused() -> None:
    inputs = keras.Input((8, 8, 1))
    nan = keras.layers.Lambda(lambda x: keras.ops.log(x - 1000.0))(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4)(nan))
    with pytest.raises(ValueError, match="finite outputs from the model, got NaN or inf"):
        probed(CompiledClassifier(model, batch_size=8), IMAGES, uri="nan", outputs="")
    with pytest.raises(ValueError, match="NaN or inf for 8 of 8"):
        predicted_labels(CompiledClassifier(model, batch_size=8), IMAGES)
