"""How the steps ask for a model to be called (no framework imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from pixel_threshold.models.conventions import AUTO, InputConventions, conventions


@dataclass(frozen=True)
class ModelOptions:
    """How to call a model: rows a call, its input conventions as the parameters give
    them (`conventions.conventions`; an empty layout is the model's own), its device."""

    batch_size: int = 400
    input_range: str = "0,255"
    mean: str = ""
    std: str = ""
    layout: str = AUTO
    dtype: str = "float32"
    device: str = "cpu"

    def conventions(self) -> InputConventions:
        """The input conventions asked for, checked; raises ValueError naming a bad
        ``input_range``, ``mean``, ``std``, ``layout`` or ``dtype``."""
        return conventions(
            input_range=self.input_range,
            mean=self.mean,
            std=self.std,
            layout=self.layout,
            dtype=self.dtype,
        )
