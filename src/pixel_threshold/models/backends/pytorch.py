"""PyTorch models (a TorchScript ``.pt`` file, or MLflow's pytorch flavour), run under
``torch.inference_mode`` on ``device`` (cpu, cuda, cuda:1, ...); NCHW unless told. On a
device other than the CPU the attack's candidates are decoded there (`torch_decoding`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pixel_threshold.models.backends.torch_decoding import TorchDecoder
from pixel_threshold.models.conventions import InputConventions
from pixel_threshold.models.scoring import Forward
from pixel_threshold.models.sources import ModelSource

LAYOUT = "NCHW"
"""PyTorch's convention, taken when the layout is left to the model."""


class TorchForward(Forward):
    """A torch module on ``device`` as a `scoring.Classifier` that can decode the
    attack's candidates where it runs (`changes.DecodesChanges`).

    ``decode_on_device``: whether an attack hands it its candidates as changes to
    originals kept on ``device`` (`decoding`) rather than as pixels prepared on the
    host; None (the default) decodes there where the device is not the CPU, where the
    copies it saves cost most."""

    def __init__(
        self,
        module: Any,
        device: torch.device,
        conventions: InputConventions,
        *,
        batch_size: int,
        decode_on_device: bool | None = None,
    ) -> None:
        super().__init__(
            self._run_host, kind="pytorch", conventions=conventions, batch_size=batch_size
        )
        self.module = module
        self.device = device
        on_gpu = device.type != "cpu"
        self.decode_on_device = on_gpu if decode_on_device is None else decode_on_device

    def scores(self, inputs: torch.Tensor) -> npt.NDArray[np.float32]:
        """The module's outputs (m, K) on its input ``inputs``, on the device, as float32."""
        with torch.inference_mode():
            outputs: npt.NDArray[np.float32] = self.module(inputs).float().cpu().numpy()
        return outputs

    def decoding(self) -> TorchDecoder | None:
        """A decoder for one attack that keeps its originals on the device, or None where
        candidates are prepared on the host (``decode_on_device``)."""
        if not self.decode_on_device:
            return None
        return TorchDecoder(
            self.scores, self.conventions, capacity=self.batch_size, device=self.device
        )

    def _run_host(self, inputs: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        return self.scores(torch.from_numpy(inputs).to(self.device))


def load(
    source: ModelSource, conventions: InputConventions, *, batch_size: int, device: str
) -> TorchForward:
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
    return TorchForward(module, target, conventions.resolved(LAYOUT), batch_size=batch_size)
