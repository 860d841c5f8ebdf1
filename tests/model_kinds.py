"""Real models of every kind, trained on the built-in digits in seconds: a scikit-learn
MLP (logged with MLflow's sklearn flavour, converted to ONNX as a file and as MLflow's
onnx flavour), a custom pyfunc and a small PyTorch CNN (TorchScript and MLflow's pytorch
flavour)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import mlflow.onnx
import mlflow.pyfunc
import mlflow.pytorch
import mlflow.sklearn
import numpy as np

from pixel_threshold.data.datasets import digits

MLP_TRUSTED = ["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"]


def digits_keras_cnn() -> Any:
    """The small CNN ``train`` builds, trained on the digits (3 epochs, seed 0)."""
    from pixel_threshold.models import registry, training

    split = digits()
    model = registry.build_model("small_cnn", (8, 8, 1), 10, seed=0)
    training.train_classifier(model, split.train_images, split.train_labels, epochs=3, seed=0)
    return model


def digits_mlp() -> Any:
    """An MLP on the digits' 64 values scaled to 0-1 (``input_range=0,1``, flat)."""
    from sklearn.neural_network import MLPClassifier

    split = digits()
    features = split.train_images.reshape(len(split.train_images), -1) / 255.0
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    return mlp.fit(features.astype(np.float32), split.train_labels)


def log_sklearn(mlp: Any) -> str:
    """``mlp`` logged with the sklearn flavour in a run of its own; its model URI."""
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            mlp, name="model", skops_trusted_types=MLP_TRUSTED, pyfunc_predict_fn="predict_proba"
        )
    uri: str = info.model_uri
    return uri


def mlp_onnx(mlp: Any) -> Any:
    """``mlp`` in ONNX: float inputs of 64 values, probabilities as a tensor (no ZipMap)."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, 64), dtype=np.float32)
    return to_onnx(mlp, sample, options={id(mlp): {"zipmap": False}}, target_opset=17)


def save_onnx(mlp: Any, folder: Path) -> str:
    path = folder / "digits_mlp.onnx"
    path.write_bytes(mlp_onnx(mlp).SerializeToString())
    return str(path)


def log_onnx(mlp: Any) -> str:
    with mlflow.start_run():
        info = mlflow.onnx.log_model(mlp_onnx(mlp), name="model")
    uri: str = info.model_uri
    return uri


class MeanBrightness(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """A custom pyfunc over NHWC images: logits from a fixed linear map of the pixels."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def predict(self, context: Any, model_input: Any, params: Any = None) -> np.ndarray:
        pixels = np.asarray(model_input, dtype=np.float64).reshape(len(model_input), -1)
        logits: np.ndarray = pixels @ self.weights
        return logits


def log_pyfunc(mlp: Any) -> str:
    """A pyfunc whose logits are the MLP's first layer through its output layer, on
    0-1 NHWC images: a model only its own code can run."""
    weights = mlp.coefs_[0] @ mlp.coefs_[1]
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=MeanBrightness(weights))
    uri: str = info.model_uri
    return uri


def digits_torch_cnn() -> Any:
    """A small PyTorch CNN on the digits as torchvision models are: NCHW, 0-1 values
    normalised by mean 0.5 and std 0.25, logits out (a few seconds on 2 cores)."""
    import torch

    torch.manual_seed(0)
    split = digits()
    inputs = (split.train_images.transpose(0, 3, 1, 2) / 255.0 - 0.5) / 0.25
    features = torch.tensor(inputs, dtype=torch.float32)
    labels = torch.tensor(split.train_labels, dtype=torch.long)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        for start in range(0, len(features), 128):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(features[start : start + 128]), labels[start : start + 128]
            )
            loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
            optimizer.step()
    return model.eval()


def save_torchscript(model: Any, folder: Path) -> str:
    import torch

    path = folder / "digits_cnn.pt"
    torch.jit.script(model).save(str(path))
    return str(path)


def log_pytorch(model: Any) -> str:
    """``model`` with MLflow's pytorch flavour in its default format (a torch.export
    program, batch size left free by an example of two images)."""
    example = np.zeros((2, 1, 8, 8), dtype=np.float32)
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(model, name="model", input_example=example)
    uri: str = info.model_uri
    return uri
