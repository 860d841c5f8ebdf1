"""Classifiers: build, train and wrap Keras models (the one module that imports TensorFlow).

The model contract: a classifier maps float32 (B, H, W, C) raw pixels in 0-255 to
class probabilities (B, K). Models built here carry their preprocessing inside
the graph; models from elsewhere are adapted by ``input_range`` and ``logits``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf
from keras.src.saving.serialization_lib import SafeModeScope

from pixel_threshold import imagenet, imagenet_models, lite0

SAFE_LOAD = {"compile": False, "safe_mode": True}
"""How every Keras model is loaded: no optimizer state, no Python code from the file."""


def small_cnn(input_shape: Sequence[int], classes: int, *, seed: int = 0) -> keras.Model:
    """A small CNN for 8x8 to 32x32 images that takes raw 0-255 pixels."""
    init = keras.initializers.GlorotUniform
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(
        32, 3, padding="same", activation="relu", kernel_initializer=init(seed)
    )(x)
    x = keras.layers.Conv2D(
        64, 3, padding="same", activation="relu", kernel_initializer=init(seed + 1)
    )(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu", kernel_initializer=init(seed + 2))(x)
    x = keras.layers.Dropout(0.25, seed=seed)(x)
    outputs = keras.layers.Dense(
        classes, activation="softmax", name="probabilities", kernel_initializer=init(seed + 3)
    )(x)
    return keras.Model(inputs, outputs, name="small_cnn")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"small_cnn": small_cnn}
IMAGENET_ARCHITECTURES = (*imagenet_models.APPLICATIONS, "efficientnet_lite0")
"""ImageNet classifiers (``imagenet_models``): ``weights`` none, imagenet or a file."""


def build_model(
    architecture: str,
    input_shape: Sequence[int],
    classes: int,
    *,
    weights: str = "none",
    seed: int = 0,
) -> keras.Model:
    """A new ``architecture`` for (H, W, C) 0-255 images, from ``weights``: none, a
    .weights.h5 file (small_cnn), imagenet or a weight file (ImageNet architectures,
    whose pretrained models take (224, 224, 3) and have 1000 classes)."""
    check_build(architecture, weights)
    if architecture in imagenet_models.APPLICATIONS:
        return imagenet_models.application(
            architecture, input_shape, classes, weights=weights, seed=seed
        )
    if architecture == "efficientnet_lite0":
        return imagenet_models.efficientnet_lite0(
            input_shape, classes, weights=weights, seed=seed, load=load_model
        )
    model = ARCHITECTURES[architecture](input_shape, classes, seed=seed)
    if weights != "none":
        model.load_weights(weights)
    return model


def check_build(architecture: str, weights: str) -> None:
    """Raise ValueError, naming the parameter, for an unknown ``architecture`` or
    ``weights`` it cannot use: for small_cnn anything but none or a .weights.h5 file;
    for an ImageNet architecture, weights that are not there (naming the file to get
    and where to put it), before anything is built."""
    if architecture in imagenet_models.APPLICATIONS:
        if weights != "none":
            imagenet.keras_weights_file(architecture, weights)
        return
    if architecture == "efficientnet_lite0":
        if weights == "imagenet":
            lite0.checkpoint_path()
        elif weights != "none" and not (weights.endswith(".pth") and Path(weights).is_file()):
            raise ValueError(
                "expected weights to be none, imagenet or a legacy PyTorch .pth file for "
                f"architecture='efficientnet_lite0', got weights={weights!r}"
            )
        return
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"expected architecture in ({', '.join((*ARCHITECTURES, *IMAGENET_ARCHITECTURES))}), "
            f"got architecture={architecture!r}"
        )
    if weights != "none" and not (weights.endswith(".weights.h5") and Path(weights).is_file()):
        raise ValueError(
            f"expected weights to be none or a .weights.h5 file, got weights={weights!r}"
        )


def pretrained_input(architecture: str, weights: str) -> tuple[tuple[int, int, int], int] | None:
    """The (H, W, C) input and classes a pretrained ImageNet model has; None for a model
    whose shape and classes come from the data."""
    if architecture in IMAGENET_ARCHITECTURES and weights != "none":
        return imagenet.INPUT_SHAPE, imagenet.CLASSES
    return None


def load_model(uri: str) -> keras.Model:
    """A Keras model from ``runs:/...``, ``models:/name/version``, ``models:/name@alias``
    or a ``.keras`` file, loaded in Keras' safe mode (always: a model file that holds
    Python code, such as a ``Lambda`` layer's lambda, is refused).

    Raises ValueError, naming ``model``, for a URI that does not resolve, a run or
    version that holds no Keras model, or a file that is not a Keras model.
    """
    if uri.startswith(("runs:/", "models:/")):
        import mlflow.keras
        from mlflow.exceptions import MlflowException

        try:
            flavors = mlflow.models.get_model_info(uri).flavors
        except (MlflowException, OSError) as error:
            raise ValueError(f"cannot load model={uri!r}: {_reason(error)}") from error
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
        reason = _reason(error)
        if "safe_mode" in reason:  # Keras' advice to turn safe mode off does not apply here
            reason = "it holds Python code (a lambda), which Keras' safe mode refuses"
        raise ValueError(f"cannot load model={uri!r} as a Keras model: {reason}") from error
    if not isinstance(model, keras.Model):
        raise ValueError(f"expected model={uri!r} to be a Keras model, got {type(model).__name__}")
    return model


def _reason(error: Exception) -> str:
    message = getattr(error, "message", None)
    return str(message if message is not None else error).strip().splitlines()[0]


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


def train_classifier(
    model: keras.Model,
    images: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    *,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    validation: tuple[npt.NDArray[Any], npt.NDArray[Any]] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> keras.callbacks.History:
    """Fit ``model`` on (N, H, W, C) 0-255 ``images`` with integer ``labels``."""
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model.fit(
        images.astype(np.float32),
        labels,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=None
        if validation is None
        else (validation[0].astype(np.float32), validation[1]),
        shuffle=True,
        verbose=0,
        callbacks=list(callbacks),
    )


class CompiledClassifier:
    """A Keras model as the attack's ``predict``: a compiled forward pass at padded shapes.

    Every call runs a graph of ``model(x, training=False)`` traced for a fixed batch
    shape. Inputs are zero-padded to the next power of two (at most ``batch_size``),
    so at most ``log2(batch_size) + 2`` graphs are traced, once each, and a short
    call (a small population, the last images of a run) never pays for a full batch.
    ``input_range`` maps 0-255 pixels to what the model expects; ``logits=True``
    applies a softmax to the outputs.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        batch_size: int,
        input_range: tuple[float, float] = (0.0, 255.0),
        logits: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got batch_size={batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.logits = logits
        self.input_shape = tuple(int(d) for d in model.input_shape[1:])
        low, high = input_range
        scale = (high - low) / 255.0

        @tf.function  # type: ignore[untyped-decorator]
        def forward(pixels: tf.Tensor) -> tf.Tensor:
            outputs = model(pixels * scale + low, training=False)
            return tf.nn.softmax(outputs) if logits else outputs

        self._forward = forward
        self._graphs: dict[int, Any] = {}

    @property
    def compiled_batch_shapes(self) -> list[int]:
        """The padded batch sizes traced so far."""
        return sorted(self._graphs)

    def padded_rows(self, count: int) -> int:
        """The batch shape a call with ``count`` rows runs at."""
        return min(self.batch_size, 1 << max(count - 1, 0).bit_length())

    def __call__(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities (m, K) for float32 pixels (m, H, W, C), ``m <= batch_size``."""
        count = len(pixels)
        if count > self.batch_size:
            raise ValueError(f"expected at most {self.batch_size} images a call, got {count}")
        rows = self.padded_rows(count)
        if rows > count:
            padded = np.zeros((rows, *self.input_shape), dtype=np.float32)
            padded[:count] = pixels
            pixels = padded
        graph = self._graphs.get(rows)
        if graph is None:  # traced explicitly, once per shape: no retracing warnings
            spec = tf.TensorSpec((rows, *self.input_shape), tf.float32)
            graph = self._graphs[rows] = self._forward.get_concrete_function(spec)
        outputs: npt.NDArray[np.float32] = graph(tf.constant(pixels)).numpy()
        return outputs[:count]


def compile_classifier(
    model: keras.Model,
    *,
    batch_size: int,
    input_range: tuple[float, float],
    probe: npt.NDArray[Any],
) -> CompiledClassifier:
    """``model`` as a probability classifier, treating its outputs as logits when they
    are not probabilities on the ``probe`` images (N, H, W, C) in 0-255."""
    classifier = CompiledClassifier(model, batch_size=batch_size, input_range=input_range)
    outputs = classifier(probe[:batch_size].astype(np.float32))
    _check_finite(outputs)
    sums = outputs.sum(axis=1)
    if np.all((outputs >= 0) & (outputs <= 1)) and np.allclose(sums, 1.0, atol=1e-3):
        return classifier
    return CompiledClassifier(model, batch_size=batch_size, input_range=input_range, logits=True)


def predict_probabilities(
    classifier: CompiledClassifier, images: npt.NDArray[Any]
) -> npt.NDArray[np.float32]:
    """Probabilities (N, K) of (N, H, W, C) 0-255 images, ``batch_size`` images a call;
    raises ValueError if any is NaN or infinite."""
    chunks = [
        _check_finite(classifier(images[start : start + classifier.batch_size].astype(np.float32)))
        for start in range(0, len(images), classifier.batch_size)
    ]
    return np.concatenate(chunks)


def predict_labels(
    classifier: CompiledClassifier, images: npt.NDArray[Any]
) -> npt.NDArray[np.int64]:
    """Predicted classes (N,) of (N, H, W, C) 0-255 images, ``batch_size`` images a call.

    Deterministic for given images, order and ``batch_size``: the attack and
    ``evaluate`` both score adversarial images this way, so they agree exactly.
    """
    labels: npt.NDArray[np.int64] = np.argmax(predict_probabilities(classifier, images), axis=1)
    return labels


def _check_finite(outputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    bad = int(np.count_nonzero(~np.isfinite(outputs).all(axis=1)))
    if bad:
        raise ValueError(
            f"expected finite outputs from the model, got NaN or inf for {bad} of "
            f"{len(outputs)} images"
        )
    return outputs
