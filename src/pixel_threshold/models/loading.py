"""Loading classifiers of every kind (`sources`): Keras models from an MLflow URI or a
``.keras`` file, always in Keras' safe mode, and the other kinds through their backends
(`backends`); the shape a Keras classifier takes; logging a model to MLflow."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf
from keras.src.saving.serialization_lib import SafeModeScope

from pixel_threshold.models.classifier import CompiledClassifier
from pixel_threshold.models.conventions import AUTO, InputConventions
from pixel_threshold.models.options import ModelOptions
from pixel_threshold.models.scoring import Classifier
from pixel_threshold.models.sources import (
    ModelSource,
    first_line,
    is_mlflow_model,
    is_refusal,
    model_source,
    once_more_if_cut,
)

SAFE_LOAD = {"compile": False, "safe_mode": True}
"""How every Keras model is loaded: no optimizer state, no Python code from the file."""


def load_classifier(uri: str, options: ModelOptions) -> Classifier:
    """The model ``uri`` names, of whatever kind (`sources.model_source`), as a
    `scoring.Classifier`. Raises ValueError, naming ``model`` or the parameter at fault,
    for a model it cannot load or call as asked. A load whose answer the tracking server
    cut off (`sources.answer_cut_off`) is made once more, and says so."""
    return once_more_if_cut(lambda: _load_classifier(uri, options), f"loading model={uri!r}")


def _load_classifier(uri: str, options: ModelOptions) -> Classifier:
    source = model_source(uri)
    asked = options.conventions()
    if source.kind == "keras":
        return _keras(source, asked, options.batch_size)
    return _backend(source, asked, options)


def _keras(source: ModelSource, asked: InputConventions, batch_size: int) -> Classifier:
    if asked.layout not in (AUTO, "NHWC") or asked.dtype != "float32":
        raise ValueError(
            f"expected layout NHWC and dtype float32 for the Keras model={source.uri!r}, got "
            f"layout={asked.layout!r}, dtype={asked.dtype!r}"
        )
    model = load_model(source.uri)
    image_classifier_shape(model, uri=source.uri)
    return CompiledClassifier(
        model, batch_size=batch_size, input_range=asked.input_range, mean=asked.mean, std=asked.std
    )


def _backend(source: ModelSource, asked: InputConventions, options: ModelOptions) -> Classifier:
    """The backend of ``source``'s kind; an error of its runtime while loading becomes a
    ValueError naming ``model`` and the kind."""
    try:
        return _load_backend(source, asked, options)
    except ValueError:
        raise
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(
            f"cannot load model={source.uri!r} as a {source.kind} model: "
            f"{type(error).__name__}: {reason}"
        ) from error


def _load_backend(
    source: ModelSource, asked: InputConventions, options: ModelOptions
) -> Classifier:
    batch_size = options.batch_size
    if source.kind == "onnx":
        from pixel_threshold.models.backends import onnx_runtime

        return onnx_runtime.load(source, asked, batch_size=batch_size, device=options.device)
    if source.kind == "pytorch":
        from pixel_threshold.models.backends import pytorch

        return pytorch.load(source, asked, batch_size=batch_size, device=options.device)
    if source.kind == "http":
        from pixel_threshold.models.backends import http

        return http.load(source.uri, asked, batch_size=batch_size)
    from pixel_threshold.models.backends import sklearn_pyfunc

    if source.kind == "sklearn":
        return sklearn_pyfunc.load_sklearn(source, asked, batch_size=batch_size)
    return sklearn_pyfunc.load_pyfunc(source, asked, batch_size=batch_size)


def load_model(uri: str) -> keras.Model:
    """A Keras model from ``runs:/...``, ``models:/name/version``, ``models:/name@alias``
    or a ``.keras`` file, loaded in Keras' safe mode (always: a model file that holds
    Python code, such as a ``Lambda`` layer's lambda, is refused).

    Raises ValueError, naming ``model``, for a URI that does not resolve, a run or
    version that holds no Keras model, or a file that is not a Keras model.
    """
    if is_mlflow_model(uri):
        import mlflow.keras
        from mlflow.exceptions import MlflowException

        try:
            flavors = mlflow.models.get_model_info(uri).flavors
        except (MlflowException, OSError) as error:
            if is_refusal(error):
                raise
            raise ValueError(f"cannot load model={uri!r}: {first_line(error)}") from error
        if "keras" not in flavors:
            raise ValueError(
                f"expected model={uri!r} to be a Keras model (MLflow keras flavour), "
                f"got flavours {', '.join(sorted(flavors))}"
            )
        if flavors["keras"].get("save_exported_model"):
            raise ValueError(
                f"expected model={uri!r} to be saved as a .keras file, got an exported "
                "TensorFlow SavedModel (its graph loads outside Keras' safe mode)"
            )
        return _safely(uri, lambda: mlflow.keras.load_model(uri, load_model_kwargs=SAFE_LOAD))
    path = Path(uri)
    if uri.endswith(".keras") and path.is_file():
        if not zipfile.is_zipfile(path):
            raise ValueError(f"expected model={uri!r} to be a Keras model file, got another file")
        return _safely(uri, lambda: keras.saving.load_model(path, **SAFE_LOAD))
    raise ValueError(
        "expected model to be runs:/<run_id>/<path>, models:/<name>/<version>, "
        f"models:/<name>@<alias> or an existing .keras file, got model={uri!r}"
    )


def _safely(uri: str, load: Callable[[], keras.Model]) -> keras.Model:
    """Run ``load`` in Keras' safe mode, whatever ``keras.config`` says, and turn a file
    Keras cannot read into a ValueError naming ``model``."""
    try:
        with SafeModeScope(True):
            model = load()
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        reason = first_line(error)
        if "safe_mode" in reason:  # Keras' advice to turn safe mode off does not apply here
            reason = "it holds Python code (a lambda), which Keras' safe mode refuses"
        raise ValueError(f"cannot load model={uri!r} as a Keras model: {reason}") from error
    if not isinstance(model, keras.Model):
        raise ValueError(f"expected model={uri!r} to be a Keras model, got {type(model).__name__}")
    return model


def image_classifier_shape(model: keras.Model, *, uri: str) -> tuple[tuple[int, int, int], int]:
    """The (H, W, C) images ``model`` takes and its number of classes; raises ValueError,
    naming ``model``, unless it maps (B, H, W, 1 or 3) images to (B, classes >= 2)."""
    inputs, outputs = model.input_shape, model.output_shape
    image = inputs[1:] if isinstance(inputs, tuple) else None
    if (
        image is None
        or len(image) != 3
        or not all(isinstance(size, int) for size in image)
        or image[2] not in (1, 3)
    ):
        raise ValueError(
            f"expected model={uri!r} to take (batch, height, width, 1 or 3) images of a fixed "
            f"size, got input shape {inputs}"
        )
    if not (isinstance(outputs, tuple) and len(outputs) == 2 and (outputs[1] or 0) >= 2):
        raise ValueError(
            f"expected model={uri!r} to return (batch, classes) scores with classes >= 2, "
            f"got output shape {outputs}"
        )
    return (image[0], image[1], image[2]), int(outputs[1])


def log_model(
    model: keras.Model,
    *,
    name: str,
    example: npt.NDArray[Any],
    registered_model_name: str | None = None,
) -> None:
    """Log ``model`` to the active MLflow run (Keras flavour) with the signature it has
    on ``example`` images (n, H, W, C); register it if ``registered_model_name``."""
    import mlflow.keras
    from mlflow.models import infer_signature

    pixels = example.astype(np.float32)
    mlflow.keras.log_model(
        model,
        name=name,
        signature=infer_signature(pixels, model(pixels).numpy()),
        # Given, not inferred: inference reloads the model in a subprocess (~8 s).
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        registered_model_name=registered_model_name,
    )


def keras_bytes(model: keras.Model) -> bytes:
    """``model`` as the bytes of a ``.keras`` file (what a Ray worker is sent)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def load_keras_bytes(data: bytes) -> keras.Model:
    """The model of a ``.keras`` file's bytes (`keras_bytes`), loaded in safe mode."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return load_model(str(path))
