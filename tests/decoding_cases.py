"""What a device decoder (TensorFlow's, PyTorch's) must give back as the host decoder
does: rows of candidates as changes to their originals with their numpy decoding, and
an attack's results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Sample, make_encoding
from pixel_threshold.attack.changes import ChangedRows, Originals, joined
from pixel_threshold.attack.types import Predict
from pixel_threshold.data.datasets import digits

SHAPES = [(8, 8, 1), (6, 5, 3)]
DECODED = [("pixel", 1), ("pixel", 4), ("threshold", 3), ("threshold", 200)]
"""(attack_type, th) of the candidates a decoder is held to the numpy decoder on."""
ATTACKS = [("pixel", 3), ("pixel", -1), ("threshold", 40), ("threshold", -1)]
"""(attack_type, th) of the attacks compared decoding on the device and on the host."""
Decoder = Callable[[ChangedRows], np.ndarray]
"""A device decoder whose "model" returns the decoded pixels, one row an image."""


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


def check_decodes_as_numpy(
    decoder: Decoder, attack_type: str, th: int, shape: tuple[int, int, int]
) -> None:
    """``decoder`` (capacity 5) gives the numpy decoder's pixels bit for bit, over calls
    of more originals than it keeps (some sent again)."""
    rng = np.random.default_rng(th)
    for call in range(6):
        rows, expected = random_rows(rng, attack_type, th, shape, range(3 * call, 3 * call + 5))
        decoded = np.asarray(decoder(rows)).reshape(expected.shape)
        assert decoded.dtype == np.float32
        np.testing.assert_array_equal(decoded, expected)


def check_joins_searches(decoder: Decoder) -> None:
    """``decoder`` (capacity 8) decodes the rows of two searches in one call: th=-1's
    levels share calls, Pixel rows of different th widened, not mixed up."""
    rng = np.random.default_rng(0)
    (first, one), (second, three) = (
        random_rows(rng, "pixel", th, (8, 8, 1), range(5)) for th in (1, 3)
    )
    decoded = np.asarray(decoder(joined([first, second]))).reshape(-1, 8, 8, 1)
    np.testing.assert_array_equal(decoded, np.concatenate([one, three]))


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


def compared_config(es: int, attack_type: str, th: int) -> AttackConfig:
    """A short attack of each strategy, large enough to fool some of the 12 digits."""
    return AttackConfig(
        attack_type=attack_type,
        th=th,
        th_max=8 if attack_type == "pixel" else 64,
        es=es,
        max_iter=80 if es == 2 else 10,
        popsize=2 if es == 2 else 16,
        batch_size=32,
        seed=1,
    )


def originals_sent(
    monkeypatch: pytest.MonkeyPatch, decoding: Callable[[AttackConfig], Predict]
) -> tuple[list[int], int]:
    """The keys of the originals an attack through ``decoding(config)`` (a classifier
    that decodes on its device) sends there, in order, and how many images it attacked."""
    sent: list[int] = []
    fetch = ChangedRows.originals

    def counted(self: ChangedRows, keys: np.ndarray) -> np.ndarray:
        sent.extend(keys.tolist())
        return fetch(self, keys)

    monkeypatch.setattr(ChangedRows, "originals", counted)
    config = AttackConfig(th=1, es=1, max_iter=10, popsize=16, batch_size=64, seed=0)
    results = attack_results(config, decoding(config))
    return sent, sum(queries > 0 for _, _, queries, *_ in results)
