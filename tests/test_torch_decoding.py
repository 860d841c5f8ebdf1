"""Candidates decoded where a PyTorch model runs (issue 24, item 1), run here with the CPU
as the device: the same integers as the numpy decoder, the same model input as the
host's preparation, each original sent once, and the same attack results as host
decoding. In the slow suite, which installs torch (the ``torch`` extra); torch is
imported inside the tests, so the default suite, which deselects them, collects this
file without it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pixel_threshold.attack import AttackConfig
from pixel_threshold.models.conventions import DTYPES, LAYOUTS, InputConventions

from .decoding_cases import (
    ATTACKS,
    DECODED,
    SHAPES,
    attack_results,
    check_decodes_as_numpy,
    check_joins_searches,
    compared_config,
    originals_sent,
    random_rows,
)
from .model_kinds import digits_torch_cnn
from .strategy_cases import each_strategy

pytestmark = pytest.mark.slow
DIGITS_CONVENTIONS = InputConventions((0.0, 1.0), (0.5,), (0.25,), "NCHW")
"""How `digits_torch_cnn` takes its input."""


def decoder(capacity: int) -> Any:
    """A decoder on the CPU whose "model" returns the decoded pixels, one row an image."""
    import torch

    from pixel_threshold.models.backends.torch_decoding import TorchDecoder

    def pixels_of(images: torch.Tensor) -> np.ndarray:
        return images.numpy().reshape(images.shape[0], -1)

    return TorchDecoder(
        pixels_of, InputConventions(), capacity=capacity, device=torch.device("cpu")
    )


def forward(module: Any, device: str, batch_size: int, **options: Any) -> Any:
    """``module`` on ``device`` as the pytorch backend loads it, taking the digits as
    `DIGITS_CONVENTIONS` say."""
    import torch

    from pixel_threshold.models.backends.pytorch import TorchForward

    return TorchForward(
        module, torch.device(device), DIGITS_CONVENTIONS, batch_size=batch_size, **options
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("attack_type", "th"), DECODED)
def test_the_device_decodes_the_numpy_decoders_integers_bit_for_bit(
    attack_type: str, th: int, shape: tuple[int, int, int]
) -> None:
    check_decodes_as_numpy(decoder(capacity=5), attack_type, th, shape)


def test_rows_of_several_searches_are_joined_into_one_call() -> None:
    check_joins_searches(decoder(capacity=8))


def test_too_many_originals_for_a_call_is_an_error() -> None:
    rows, _ = random_rows(np.random.default_rng(0), "threshold", 2, (8, 8, 1), range(12))
    with pytest.raises(ValueError, match="at most 3 originals a call"):
        decoder(capacity=3)(rows)


SCALINGS = [
    ((0.0, 255.0), (), ()),
    ((0.0, 1.0), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ((-1.0, 1.0), (), ()),
    ((0.0, 255.0), (120.5,), (60.25,)),
]
"""input_range, mean and std: torchvision's normalisation among them."""


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("input_range", "mean", "std", "dtype"),
    [  # uint8 holds 0-255 integers only: conventions refuses it with any other scaling
        (*scaling, dtype)
        for scaling in SCALINGS
        for dtype in DTYPES
        if dtype != "uint8" or scaling == SCALINGS[0]
    ],
)
def test_the_model_input_is_the_hosts_preparation_bit_for_bit(
    input_range: tuple[float, float],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dtype: str,
    layout: str,
) -> None:
    import torch

    from pixel_threshold.models.backends.torch_decoding import prepared

    conventions = InputConventions(input_range, mean, std, layout, dtype)
    pixels = np.random.default_rng(1).integers(0, 256, (4, 6, 5, 3)).astype(np.float32)
    on_host = conventions.prepare(pixels)
    on_device = prepared(torch.from_numpy(pixels.copy()), conventions).numpy()
    assert on_device.dtype == on_host.dtype
    assert on_device.shape == on_host.shape
    assert on_device.tobytes() == on_host.tobytes()


@pytest.fixture(scope="module")
def torch_cnn() -> Any:
    return digits_torch_cnn()


def torch_attack(module: Any, config: AttackConfig, *, on_device: bool) -> list[tuple[Any, ...]]:
    predict = forward(module, "cpu", config.batch_size, decode_on_device=on_device)
    return attack_results(config, predict)


@pytest.mark.parametrize("es", each_strategy())
@pytest.mark.parametrize(("attack_type", "th"), ATTACKS)
def test_an_attack_decoding_on_the_device_gives_the_host_decodings_results(
    torch_cnn: Any, es: int, attack_type: str, th: int
) -> None:
    config = compared_config(es, attack_type, th)
    on_host = torch_attack(torch_cnn, config, on_device=False)
    assert torch_attack(torch_cnn, config, on_device=True) == on_host
    assert any(success for _, success, *_ in on_host)


def test_each_original_is_sent_to_the_device_once(
    torch_cnn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent, attacked = originals_sent(
        monkeypatch,
        lambda config: forward(torch_cnn, "cpu", config.batch_size, decode_on_device=True),
    )
    assert len(sent) == len(set(sent)) == attacked


def test_decoding_on_the_device_is_the_default_off_the_cpu(torch_cnn: Any) -> None:
    assert forward(torch_cnn, "cpu", 8).decoding() is None
    assert forward(torch_cnn, "cuda", 8).decode_on_device  # the flag only: no GPU is touched
    assert forward(torch_cnn, "cpu", 8, decode_on_device=True).decoding() is not None
