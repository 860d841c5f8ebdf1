"""scikit-image's sample photos as a batch of 224x224 RGB images: what the benchmarks
on ImageNet-size models attack (nothing downloaded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

SHAPE = (224, 224, 3)


def photos(count: int) -> npt.NDArray[np.uint8]:
    """Up to six of scikit-image's photos, resized to (count, 224, 224, 3) uint8."""
    from skimage import data, transform

    loaders: tuple[Callable[[], Any], ...] = (
        data.astronaut,
        data.chelsea,
        data.coffee,
        data.rocket,
        data.camera,
        data.immunohistochemistry,
    )
    resized = []
    for load in loaders[:count]:
        photo = np.asarray(load())
        rgb = np.stack([photo] * 3, axis=-1) if photo.ndim == 2 else photo[..., :3]
        resized.append(np.round(transform.resize(rgb, SHAPE[:2], anti_aliasing=True) * 255))
    return np.stack(resized).astype(np.uint8)
