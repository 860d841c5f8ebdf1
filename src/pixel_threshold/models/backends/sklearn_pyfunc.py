"""scikit-learn classifiers (MLflow's sklearn flavour: ``predict_proba`` on each image
flattened in H, W, C order) and any MLflow ``python_function`` model whose predict
returns a score per class."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pixel_threshold.models.conventions import InputConventions, layout_of
from pixel_threshold.models.scoring import Forward
from pixel_threshold.models.sources import ModelSource


def load_sklearn(source: ModelSource, conventions: InputConventions, *, batch_size: int) -> Forward:
    """The estimator's ``predict_proba``; a classifier without one is refused before any
    query, with how to log a model that has one."""
    import mlflow.sklearn

    estimator = mlflow.sklearn.load_model(source.uri)
    if not hasattr(estimator, "predict_proba"):
        raise ValueError(
            f"expected model={source.uri!r} to predict class probabilities, got a "
            f"{type(estimator).__name__} without predict_proba (it returns labels only): "
            "train a classifier that has predict_proba, e.g. MLPClassifier or "
            "LogisticRegression, and log it with mlflow.sklearn.log_model"
        )
    fitted = conventions.resolved("flat")
    return Forward(
        estimator.predict_proba, kind="sklearn", conventions=fitted, batch_size=batch_size
    )


def load_pyfunc(source: ModelSource, conventions: InputConventions, *, batch_size: int) -> Forward:
    """The model's ``predict`` on numpy batches, laid out as its signature's tensor input
    says (rank 2: flat, a (-1, C, H, W) tensor: NCHW), else NHWC."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(source.uri)
    fitted = conventions.resolved(_signature_layout(model))

    def run(inputs: npt.NDArray[Any]) -> Any:
        return np.asarray(model.predict(inputs))

    return Forward(run, kind="pyfunc", conventions=fitted, batch_size=batch_size)


def _signature_layout(model: Any) -> str:
    """The layout of the model's one tensor input (`conventions.layout_of`), NHWC when
    its signature says none."""
    schema = model.metadata.get_input_schema()
    inputs = getattr(schema, "inputs", None) or []
    shape = getattr(inputs[0], "shape", None) if len(inputs) == 1 else None
    return "NHWC" if shape is None else layout_of(shape)
