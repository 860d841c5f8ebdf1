"""Array aliases and the pixel scale shared by the attack core."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.integer[Any]]
BoolArray = npt.NDArray[np.bool_]

Predict = Callable[[npt.NDArray[np.float32]], FloatArray]
"""A classifier: float32 ``(B, H, W, C)`` raw pixels in 0-255 -> scores ``(B, K)``, of the
kind `AttackConfig.outputs` says (probabilities, logits or log-probabilities)."""

PIXEL_LEVELS = 256
"""Values a pixel channel takes: the integers 0-255."""
