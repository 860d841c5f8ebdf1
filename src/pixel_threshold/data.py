"""Datasets as (N, H, W, C) uint8 images in 0-255 with integer labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Split:
    """A train/test split with its class names."""

    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.int64]
    test_images: npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]


def digits(*, seed: int = 0, test_fraction: float = 0.25) -> Split:
    """scikit-learn's 1,797 handwritten digits, 8x8x1, scaled from 0-16 to 0-255.

    The split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return Split(train_x, train_y, test_x, test_y, tuple(str(name) for name in bunch.target_names))
