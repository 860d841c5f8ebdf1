"""What a model expects of its input, set by parameters: no wrapper code.

The attack works on float32 (B, H, W, C) pixels in 0-255. `InputConventions` turns
them into what a model takes: scaled to its value range (``input_range``), normalised
per channel (``mean``, ``std``, given in that range, as torchvision's
``Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))`` is for 0-1),
laid out NHWC, NCHW or flat (each image's values in H, W, C order, as scikit-learn
models take them), as ``dtype``. Nothing here imports a framework, so the steps check
these parameters before one loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

INPUT_RANGES: dict[str, tuple[float, float]] = {
    "0,255": (0.0, 255.0),
    "0,1": (0.0, 1.0),
    "-1,1": (-1.0, 1.0),
}
LAYOUTS = ("NHWC", "NCHW", "flat")
DTYPES = ("float32", "float64", "float16", "uint8")
AUTO = ""
"""A parameter left empty: the model's own (its signature or its kind's convention)."""


@dataclass(frozen=True)
class InputConventions:
    """How 0-255 NHWC pixels become a model's input: value range, per-channel mean and
    std in that range (empty: none), layout and dtype."""

    input_range: tuple[float, float] = (0.0, 255.0)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    layout: str = "NHWC"
    dtype: str = "float32"

    def resolved(self, layout: str) -> InputConventions:
        """These conventions with an empty layout (the model's own) read as ``layout``,
        what the backend found in the model or its kind's convention."""
        return self if self.layout != AUTO else dataclasses.replace(self, layout=layout)

    def prepare(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.generic]:
        """The model's input for pixels (B, H, W, C) in 0-255 (no copy where nothing
        changes them)."""
        low, high = self.input_range
        values: npt.NDArray[np.floating[Any]] = np.asarray(
            pixels, dtype=np.float64 if self.dtype == "float64" else np.float32
        )
        if (low, high) != (0.0, 255.0):
            values = values * ((high - low) / 255.0) + low
        if self.mean:
            values = (values - np.asarray(self.mean, values.dtype)) / np.asarray(
                self.std, values.dtype
            )
        if self.layout == "NCHW":
            values = values.transpose(0, 3, 1, 2)
        elif self.layout == "flat":
            values = values.reshape(len(values), -1)
        return np.ascontiguousarray(values, dtype=self.dtype)

    def model_shape(self, shape: tuple[int, int, int]) -> tuple[int, ...]:
        """The shape of one image of (H, W, C) ``shape`` as the model takes it."""
        height, width, channels = shape
        if self.layout == "NCHW":
            return (channels, height, width)
        if self.layout == "flat":
            return (height * width * channels,)
        return shape


def parse_input_range(input_range: str) -> tuple[float, float]:
    """The pixel range a model expects, from its name (``0,255``, ``0,1`` or ``-1,1``)."""
    if input_range not in INPUT_RANGES:
        raise ValueError(
            f"expected input_range in ({' / '.join(INPUT_RANGES)}), got input_range={input_range!r}"
        )
    return INPUT_RANGES[input_range]


def parse_channels(name: str, text: str) -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` -> one value per channel (1 or 3); empty -> none.
    Raises ValueError naming the parameter ``name``."""
    if not text:
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"expected 1 or 3 comma-separated numbers in {name}, got {name}={text!r}"
        ) from None
    if len(values) not in (1, 3) or not all(np.isfinite(values)):
        raise ValueError(f"expected 1 or 3 finite numbers in {name}, got {name}={text!r}")
    return values


def conventions(
    *, input_range: str, mean: str, std: str, layout: str, dtype: str
) -> InputConventions:
    """Checked `InputConventions` from the parameters (an empty ``layout``: the model's
    own, for its backend to resolve). Raises ValueError naming a bad one."""
    means, stds = parse_channels("mean", mean), parse_channels("std", std)
    if len(means) != len(stds):
        raise ValueError(
            f"expected mean and std to be given together, one per channel, got mean={mean!r} "
            f"and std={std!r}"
        )
    if any(value <= 0 for value in stds):
        raise ValueError(f"expected std > 0, got std={std!r}")
    check_layout(layout)
    if dtype not in DTYPES:
        raise ValueError(f"expected dtype in {DTYPES}, got dtype={dtype!r}")
    limits = parse_input_range(input_range)
    if dtype == "uint8" and (limits != (0.0, 255.0) or means):
        raise ValueError(
            "expected dtype=uint8 only with input_range=0,255 and no mean or std (it holds "
            f"integers 0-255), got input_range={input_range!r}, mean={mean!r}"
        )
    return InputConventions(limits, means, stds, layout, dtype)


def layout_of(shape: Sequence[int | None]) -> str:
    """The layout of a model input of ``shape`` (batch first): rank 2 is flat; rank 4
    with 1 or 3 in second place and not last is NCHW; anything else NHWC."""
    if len(shape) == 2:
        return "flat"
    if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    return "NHWC"


def check_layout(layout: str) -> None:
    if layout not in (AUTO, *LAYOUTS):
        raise ValueError(
            f"expected layout in {LAYOUTS} or '' (the model's own), got layout={layout!r}"
        )
