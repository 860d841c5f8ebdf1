"""ONNX models (a ``.onnx`` file or MLflow's onnx flavour) in an ONNX Runtime session on
the CPU (CUDA's execution provider with ``device=cuda`` where it is installed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy.typing as npt

from pixel_threshold.models.conventions import InputConventions, layout_of
from pixel_threshold.models.scoring import Forward, Shape
from pixel_threshold.models.sources import ModelSource

TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
}
"""ONNX input element types and the dtype each takes."""


def load(
    source: ModelSource,
    conventions: InputConventions,
    *,
    batch_size: int,
    device: str,
    threads: int = 0,
) -> Forward:
    """The model's session; ``conventions.layout`` AUTO is read from its input's shape
    (rank 2: flat; rank 4 with 1 or 3 in its second place and not its last: NCHW; else
    NHWC), its dtype from the input's element type."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise ValueError(
                f"expected ONNX Runtime's CUDA execution provider for device={device!r}, "
                "found none: pip install onnxruntime-gpu, or device=cpu"
            )
        providers.insert(0, "CUDAExecutionProvider")
    session = onnxruntime.InferenceSession(_model_bytes(source), options, providers=providers)
    model_input = session.get_inputs()[0]
    output = _scores_output(session, source.uri)
    shape = [dim if isinstance(dim, int) else None for dim in model_input.shape]
    dtype = TYPES.get(model_input.type)
    if dtype is None:
        raise ValueError(
            f"expected model={source.uri!r} to take float or uint8 tensors, got {model_input.type}"
        )
    fitted = dataclasses.replace(conventions.resolved(layout_of(shape)), dtype=dtype)

    def run(inputs: npt.NDArray[Any]) -> Any:
        return session.run([output], {model_input.name: inputs})[0]

    return Forward(
        run,
        kind="onnx",
        conventions=fitted,
        batch_size=batch_size,
        image_shape=_image_shape(shape, fitted.layout),
    )


def _model_bytes(source: ModelSource) -> bytes:
    if source.mlflow:
        import mlflow.onnx

        proto = mlflow.onnx.load_model(source.uri)
        data: bytes = proto.SerializeToString()
        return data
    with open(source.uri, "rb") as file:
        return file.read()


def _scores_output(session: Any, uri: str) -> str:
    """The first output that is a (batch, classes) float tensor: a converted
    scikit-learn classifier's ``probabilities`` after its ``label``."""
    for output in session.get_outputs():
        if output.type in ("tensor(float)", "tensor(double)") and len(output.shape) == 2:
            return str(output.name)
    names = ", ".join(f"{output.name} {output.type}" for output in session.get_outputs())
    raise ValueError(
        f"expected model={uri!r} to output a (batch, classes) float tensor of scores, got "
        f"{names} (a scikit-learn classifier converted by skl2onnx: convert it with "
        "options={'zipmap': False})"
    )


def _image_shape(shape: list[int | None], layout: str) -> Shape | None:
    """(H, W, C) from the input's fixed dimensions; None where they are not all fixed
    or the input is flat (any image of H * W * C values fits)."""
    dims = shape[1:]
    if layout == "flat" or len(dims) != 3 or not all(isinstance(dim, int) for dim in dims):
        return None
    first, second, third = (int(dim) for dim in dims if dim is not None)
    return (second, third, first) if layout == "NCHW" else (first, second, third)
