"""Candidates decoded where a PyTorch model runs: the originals kept on its device (a
GPU; the CPU in the tests), each sent once, and only the changes (`attack.changes`)
sent a call.

`TorchDecoder` is one attack's decoder (`pytorch.TorchForward.decoding`): its originals
live in one tensor of ``capacity`` images on the device, by key (`kept_originals`); a
call gathers its rows' originals there, applies the changes (a scatter for the Pixel
attack, an add and a clamp for the Threshold attack), prepares the images as the
model's parameters say (`prepared`) and hands them to the model without a trip through
the host. The integers are those of the numpy decoder (the changes' ``apply``), and the
model's input that of `conventions.InputConventions.prepare`, bit for bit: the same
float operations in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch

from pixel_threshold.attack.changes import Change, ChangedRows, MoveValues, SetPixels
from pixel_threshold.models.conventions import InputConventions
from pixel_threshold.models.kept_originals import KeptOriginals

PIXEL_MAX = 255.0
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "uint8": torch.uint8,
}
"""Each of `conventions.DTYPES` as torch's."""


class TorchDecoder:
    """Scores of `ChangedRows` by ``score`` (the model's input, a tensor on ``device``,
    -> (m, K) scores), the rows prepared by ``conventions`` and the originals of up to
    ``capacity`` images kept on ``device``."""

    def __init__(
        self,
        score: Callable[[torch.Tensor], npt.NDArray[np.float32]],
        conventions: InputConventions,
        *,
        capacity: int,
        device: torch.device,
    ) -> None:
        self._score = score
        self._conventions = conventions
        self._device = device
        self._kept = KeptOriginals(capacity)
        self._originals: torch.Tensor | None = None

    def __call__(self, rows: ChangedRows) -> npt.NDArray[np.float32]:
        placement = self._kept.placed(rows.keys)
        with torch.inference_mode():
            if self._originals is None:
                shape = rows.sources[0].images.shape[1:]
                self._originals = torch.zeros(
                    (self._kept.capacity, *shape), dtype=torch.float32, device=self._device
                )
            if len(placement.missing):
                pixels = torch.from_numpy(rows.originals(placement.missing))
                self._originals[self._on_device(placement.to)] = pixels.to(self._device)
            at = self._on_device(placement.rows)
            images = changed(self._originals.index_select(0, at), rows.change)
            return self._score(prepared(images, self._conventions))

    def _on_device(self, array: npt.NDArray[np.generic]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self._device)


def changed(pixels: torch.Tensor, change: Change) -> torch.Tensor:
    """The originals ``pixels`` (M, H, W, C), a fresh tensor, with ``change`` applied in
    place."""
    if isinstance(change, MoveValues):
        pixels += torch.from_numpy(change.delta).to(pixels.device)
        return pixels.clamp_(0.0, PIXEL_MAX)
    assert isinstance(change, SetPixels)
    count, height, width, channels = pixels.shape
    flat = pixels.view(count, height * width, channels)
    rows = torch.arange(count, device=pixels.device)[:, None]
    positions = torch.from_numpy(change.positions.astype(np.int64)).to(pixels.device)
    flat[rows, positions] = torch.from_numpy(change.values).to(pixels.device)
    return pixels


def prepared(pixels: torch.Tensor, conventions: InputConventions) -> torch.Tensor:
    """The model's input for float32 ``pixels`` (B, H, W, C) in 0-255: what
    `InputConventions.prepare` makes of them on the host, made where they are."""
    low, high = conventions.input_range
    values = pixels.double() if conventions.dtype == "float64" else pixels
    if (low, high) != (0.0, 255.0):
        values = values * ((high - low) / 255.0) + low
    if conventions.mean:
        values = (values - values.new_tensor(conventions.mean)) / values.new_tensor(conventions.std)
    if conventions.layout == "NCHW":
        values = values.permute(0, 3, 1, 2)
    elif conventions.layout == "flat":
        values = values.reshape(len(values), -1)
    return values.to(DTYPES[conventions.dtype]).contiguous()
