"""PyTorch models (a TorchScript ``.pt`` file, or MLflow's pytorch flavour), run under
``torch.inference_mode`` on ``device`` (cpu, cuda, cuda:1, ...); NCHW unless told."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from pixel_threshold.models.conventions import InputConventions
from pixel_threshold.models.scoring import Forward
from pixel_threshold.models.sources import ModelSource

LAYOUT = "NCHW"
"""PyTorch's convention, taken when the layout is left to the model."""


def load(
    source: ModelSource, conventions: InputConventions, *, batch_size: int, device: str
) -> Forward:
    import torch

    try:
        target = torch.device(device)
        if source.mlflow:
            import mlflow.pytorch

            module = mlflow.pytorch.load_model(source.uri, map_location=target)
        else:
            module = torch.jit.load(source.uri, map_location=target)  # type: ignore[no-untyped-call, unused-ignore]
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"cannot load model={source.uri!r} on device={device!r}: {error}"
        ) from error
    if isinstance(module, torch.nn.Module) and not isinstance(module, torch.fx.GraphModule):
        module.eval()  # an exported program (MLflow's pt2) is already in inference form
    fitted = conventions.resolved(LAYOUT)

    def run(inputs: npt.NDArray[Any]) -> Any:
        with torch.inference_mode():
            outputs = module(torch.from_numpy(inputs).to(target))
        return outputs.float().cpu().numpy()

    return Forward(run, kind="pytorch", conventions=fitted, batch_size=batch_size)
