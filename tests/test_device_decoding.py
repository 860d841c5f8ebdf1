"""Candidates decoded where the model runs (issue 24, item 1), run here with the CPU as
the device: the same integers as the numpy decoder, each original sent once, and the
same attack results as host decoding."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixel_threshold.attack import AttackConfig
from pixel_threshold.models.classifier import CompiledClassifier
from pixel_threshold.models.device_decoding import DeviceDecoder

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
from .strategy_cases import each_strategy


def pixels_of(images: tf.Tensor) -> np.ndarray:
    """A "model" whose scores are the decoded pixels themselves, one row an image."""
    return images.numpy().reshape(images.shape[0], -1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("attack_type", "th"), DECODED)
def test_the_device_decodes_the_numpy_decoders_integers_bit_for_bit(
    attack_type: str, th: int, shape: tuple[int, int, int]
) -> None:
    check_decodes_as_numpy(
        DeviceDecoder(pixels_of, capacity=5, device="/CPU:0"), attack_type, th, shape
    )


def test_rows_of_several_searches_are_joined_into_one_call() -> None:
    check_joins_searches(DeviceDecoder(pixels_of, capacity=8, device="/CPU:0"))


def test_too_many_originals_for_a_call_is_an_error() -> None:
    rows, _ = random_rows(np.random.default_rng(0), "threshold", 2, (8, 8, 1), range(12))
    decoder = DeviceDecoder(pixels_of, capacity=3, device="/CPU:0")
    with pytest.raises(ValueError, match="at most 3 originals a call"):
        decoder(rows)


def attack(model: keras.Model, config: AttackConfig, *, on_device: bool) -> list[tuple[Any, ...]]:
    predict = CompiledClassifier(model, batch_size=config.batch_size, decode_on_device=on_device)
    return attack_results(config, predict)


@pytest.mark.parametrize("es", each_strategy())
@pytest.mark.parametrize(("attack_type", "th"), ATTACKS)
def test_an_attack_decoding_on_the_device_gives_the_host_decodings_results(
    digits_cnn: keras.Model, es: int, attack_type: str, th: int
) -> None:
    config = compared_config(es, attack_type, th)
    on_host = attack(digits_cnn, config, on_device=False)
    assert attack(digits_cnn, config, on_device=True) == on_host
    assert any(success for _, success, *_ in on_host)


def test_each_original_is_sent_to_the_device_once(
    digits_cnn: keras.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent, attacked = originals_sent(
        monkeypatch,
        lambda config: CompiledClassifier(
            digits_cnn, batch_size=config.batch_size, decode_on_device=True
        ),
    )
    assert len(sent) == len(set(sent)) == attacked


def test_decoding_on_the_device_is_the_default_only_with_a_gpu(digits_cnn: keras.Model) -> None:
    gpus = tf.config.list_logical_devices("GPU")
    assert CompiledClassifier(digits_cnn, batch_size=8).decode_on_device == bool(gpus)
    host = CompiledClassifier(digits_cnn, batch_size=8, decode_on_device=False)
    assert host.decoding() is None
    device = CompiledClassifier(digits_cnn, batch_size=8, decode_on_device=True)
    assert device.decoding() is not None
