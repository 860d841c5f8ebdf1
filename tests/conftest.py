"""Shared test fixtures: small exact models that need no TensorFlow, the session's one
trained digits CNN, and an outbox of the session's own."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from pixel_threshold.runs import outbox


@pytest.fixture(scope="session", autouse=True)
def session_outbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Parcels of results (`outbox`) go to a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(outbox.OUTBOX_VARIABLE, str(tmp_path_factory.mktemp("outbox")))
        yield


class LinearSoftmax:
    """A softmax-linear classifier on 0-255 pixels, exact per row.

    The per-row reduction never depends on the batch around it (no BLAS blocking),
    so scores are bit-identical whatever batch an image lands in. ``calls`` records
    the batch size of every call.
    """

    def __init__(
        self, shape: tuple[int, int, int], classes: int, *, seed: int = 0, temperature: float = 3.0
    ) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(classes, int(np.prod(shape)))).astype(np.float32)
        self.temperature = temperature
        self.calls: list[int] = []

    def __call__(self, pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        self.calls.append(len(pixels))
        flat = pixels.reshape(len(pixels), 1, -1).astype(np.float64) / 255.0
        logits = (flat * self.weights[None]).sum(axis=-1) * self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def labels(self, images: npt.NDArray[np.generic]) -> npt.NDArray[np.intp]:
        return np.argmax(self(images.astype(np.float32)), axis=1)


@pytest.fixture
def gray_images() -> npt.NDArray[np.uint8]:
    return np.random.default_rng(1).integers(0, 256, size=(24, 8, 8, 1), dtype=np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture
def claimed_png() -> Callable[[int, int], bytes]:
    """PNGs of about 70 bytes whose header claims ``width`` x ``height`` RGB pixels."""

    def png(width: int, height: int) -> bytes:
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b"")
        )

    return png


def decode_candidates(encoding: Any, image: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """``genes`` (M, D) of one (H, W, C) ``image`` decoded by ``encoding``: (M, H, W, C)."""
    out = np.empty((len(genes), *image.shape), dtype=np.float32)
    encoding.decode_into(
        out, image[None].astype(np.float32), np.zeros(len(genes), dtype=np.intp), genes
    )
    return out


@pytest.fixture(scope="session")
def digits_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small CNN trained on digits as ``train`` trains it (3 epochs, seed 0), as a
    ``.weights.h5`` file: trained once a session; a module that needs a trained model
    builds it from this file, or wraps it in a train run (``epochs=0``)."""
    from pixel_threshold.data.datasets import digits
    from pixel_threshold.models import registry, training

    split = digits()
    model = registry.build_model("small_cnn", (8, 8, 1), len(split.class_names), seed=0)
    training.train_classifier(
        model,
        split.train_images,
        split.train_labels,
        epochs=3,
        seed=0,
        validation=(split.test_images, split.test_labels),
    )
    path = tmp_path_factory.mktemp("digits") / "small_cnn.weights.h5"
    model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def digits_cnn(digits_weights: Path) -> Any:
    """The trained digits CNN (a Keras model), built from ``digits_weights``."""
    from pixel_threshold.models.registry import build_model

    return build_model("small_cnn", (8, 8, 1), 10, weights=str(digits_weights))


@pytest.fixture(scope="session")
def lite0_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``XDG_CACHE_HOME`` holding EfficientNet-Lite0 with its ImageNet weights,
    converted once a session (skipped without the ``imagenet`` extra): a test that builds
    it points ``XDG_CACHE_HOME`` here."""
    from pixel_threshold.models.imagenet import lite0

    pytest.importorskip(lite0.PACKAGE, reason="the imagenet extra is not installed")
    folder = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        lite0.pretrained()
    return folder
