"""What a device decoder (TensorFlow's, PyTorch's) must give back as the host decoder
does: rows of candidates as changes to their originals with their numpy decoding, and
an attack's results."""

from __future__ import annotations

from typing import Any

import numpy as np

from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Sample, make_encoding
from pixel_threshold.attack.changes import ChangedRows, Originals
from pixel_threshold.attack.types import Predict
from pixel_threshold.data.datasets import digits

SHAPES = [(8, 8, 1), (6, 5, 3)]


def random_rows(
    rng: np.random.Generator, attack_type: str, th: int, shape: tuple[int, int, int], keys: range
) -> tuple[ChangedRows, np.ndarray]:
    """Rows of candidates of the originals of ``keys`` (a key's original is the same in
    every call), with genes anywhere (out of range too, and Pixel positions that
    repeat), and their numpy decoding."""
    encoding = make_encoding(attack_type, th, shape)
    images = np.stack([np.random.default_rng(key).integers(0, 256, shape) for key in keys]).astype(
        np.float32
    )
    originals = Originals(images, np.array(keys))
    owners = rng.integers(0, len(keys), 12)
    genes = rng.uniform(encoding.lower - 3, encoding.upper + 3, (12, encoding.dimension))
    if attack_type == "pixel" and th > 1:
        genes[:4, 2 + shape[2] : 4 + shape[2]] = genes[:4, :2]  # blocks on one pixel
    expected = np.empty((12, *shape), dtype=np.float32)
    encoding.decode_into(expected, images, owners, genes)
    rows = ChangedRows(originals.keys[owners], encoding.changes(genes), (originals,))
    return rows, expected


def attack_results(config: AttackConfig, predict: Predict) -> list[tuple[Any, ...]]:
    """Each result of an attack on 12 digits, as comparable tuples, by image."""
    split = digits(seed=0)
    samples = [Sample(i, split.test_images[i], int(split.test_labels[i])) for i in range(12)]
    return sorted(
        (
            r.index,
            r.success,
            r.queries,
            r.generations,
            r.label_after,
            r.adversarial.tobytes(),
        )
        for r in PixelThresholdAttack(config).run(samples, predict)
    )
