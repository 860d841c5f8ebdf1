"""The model contract every backend keeps: float32 (B, H, W, C) raw pixels in 0-255 in,
class scores (B, K) out, with what kind of scores they are.

`Classifier` is what the steps and the core see of any model; `Forward` wraps a
runtime's own forward pass (an ONNX Runtime session, a torch module, a scikit-learn
estimator, a pyfunc, an HTTP endpoint) with the input conventions of its parameters
(`conventions.InputConventions`). `outputs_of` tells probabilities, logits and
log-probabilities apart from what a model returns on real images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from pixel_threshold.models.conventions import InputConventions

Shape = tuple[int, int, int]
Scores = npt.NDArray[np.floating[Any]]


class Classifier(Protocol):
    """A model as the attack calls it."""

    kind: str
    """keras, pytorch, onnx, sklearn, pyfunc or http."""
    batch_size: int
    """The most rows a call takes."""
    image_shape: Shape | None
    """The (H, W, C) images it says it takes; None if it does not say."""

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Scores:
        """Scores (m, K) for float32 pixels (m, H, W, C) in 0-255, ``m <= batch_size``."""


class Forward:
    """A runtime's forward pass ``run`` (the model's input -> (m, K) scores) as a
    `Classifier`: pixels prepared by ``conventions``, at most ``batch_size`` rows a
    call. Its outputs are checked where they are read (`probed`, `predicted_scores`,
    and the attack core's calls), not a second time here."""

    def __init__(
        self,
        run: Callable[[npt.NDArray[Any]], Any],
        *,
        kind: str,
        conventions: InputConventions,
        batch_size: int,
        image_shape: Shape | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got batch_size={batch_size}")
        self.run = run
        self.kind = kind
        self.conventions = conventions
        self.batch_size = batch_size
        self.image_shape = image_shape

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Scores:
        if len(pixels) > self.batch_size:
            raise ValueError(f"expected at most {self.batch_size} images a call, got {len(pixels)}")
        scores: Scores = np.asarray(self.run(self.conventions.prepare(pixels)))
        return scores


def checked_scores(scores: npt.NDArray[Any], rows: int, kind: str) -> Scores:
    """``scores`` if they are (rows, K >= 2) numbers; raises ValueError saying what a
    model that returns labels, or the wrong rows, must do instead."""
    if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        raise ValueError(
            f"expected the {kind} model to return a score per class, (batch, classes), got "
            f"labels only, shape {scores.shape}: log it so that it predicts class "
            "probabilities (scikit-learn: mlflow.sklearn.log_model(..., "
            "pyfunc_predict_fn='predict_proba'); a pyfunc: return predict_proba's array)"
        )
    if scores.ndim != 2 or len(scores) != rows or not np.issubdtype(scores.dtype, np.number):
        raise ValueError(
            f"expected the {kind} model to return ({rows}, classes) scores, got shape "
            f"{scores.shape} of {scores.dtype}"
        )
    bad = int(np.count_nonzero(~np.isfinite(scores).all(axis=1)))
    if bad:
        raise ValueError(
            f"expected finite outputs from the model, got NaN or inf for {bad} of {rows} images"
        )
    return scores.astype(np.float64) if scores.dtype.kind != "f" else scores


def outputs_of(scores: Scores) -> str:
    """What a model's ``scores`` (m, K) on real images are: ``probabilities`` when every
    row lies in [0, 1] and sums to 1, ``log_probabilities`` when every row is <= 0 and
    its exponentials sum to 1, else ``logits``."""
    values = scores.astype(np.float64)
    if np.all((values >= 0) & (values <= 1)) and np.allclose(values.sum(axis=1), 1, atol=1e-3):
        return "probabilities"
    if np.all(values <= 0) and np.allclose(np.exp(values).sum(axis=1), 1, atol=1e-3):
        return "log_probabilities"
    return "logits"


def predicted_scores(classifier: Classifier, images: npt.NDArray[Any]) -> Scores:
    """Scores (N, K) of (N, H, W, C) 0-255 images, ``batch_size`` images a call, each
    call's checked (`checked_scores`)."""
    parts = []
    for start in range(0, len(images), classifier.batch_size):
        batch = images[start : start + classifier.batch_size].astype(np.float32)
        parts.append(checked_scores(np.asarray(classifier(batch)), len(batch), classifier.kind))
    return np.concatenate(parts)


def predicted_labels(classifier: Classifier, images: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Predicted classes (N,) of (N, H, W, C) 0-255 images, ``batch_size`` images a call.

    Deterministic for given images, order and ``batch_size``: the attack and
    ``evaluate`` both score adversarial images this way, so they agree exactly.
    """
    labels: npt.NDArray[np.int64] = np.argmax(predicted_scores(classifier, images), axis=1)
    return labels


def probed(
    classifier: Classifier, images: npt.NDArray[Any], *, uri: str, outputs: str
) -> tuple[str, int]:
    """What ``classifier`` returns on the first of ``images`` (N, H, W, C), 0-255: the
    kind of its outputs (``outputs``, or `outputs_of` them when empty) and its number of
    classes. Raises ValueError, naming ``model``, the images and the parameters that
    shape its input, if the model cannot score them."""
    first = images[: classifier.batch_size].astype(np.float32)
    try:
        scores = checked_scores(np.asarray(classifier(first)), len(first), classifier.kind)
    except ValueError:
        raise
    except Exception as error:
        conventions = getattr(classifier, "conventions", None)
        asked = f" laid out {conventions.layout} as {conventions.dtype}" if conventions else ""
        raise ValueError(
            f"expected model={uri!r} to score {first.shape[1:]} (H, W, C) images{asked}, but "
            f"it failed: {type(error).__name__}: {str(error).strip()[:300]} (check the data's "
            "image size and channels, layout, dtype and input_range)"
        ) from error
    return outputs or outputs_of(scores), int(scores.shape[1])
