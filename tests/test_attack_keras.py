"""The attack against a real Keras CNN trained on scikit-learn's digits."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from pixel_threshold.attack import AttackConfig, PixelThresholdAttack, Sample
from pixel_threshold.data.datasets import Split, digits
from pixel_threshold.models.classifier import CompiledClassifier
from pixel_threshold.models.registry import build_model
from pixel_threshold.models.scoring import probed

from .strategy_cases import each_strategy


@pytest.fixture(scope="module")
def split() -> Split:
    return digits(seed=0)


@pytest.fixture(scope="module")
def model(digits_weights: Path) -> keras.Model:
    return build_model("small_cnn", (8, 8, 1), 10, weights=str(digits_weights))


def attack(model: keras.Model, split: Split, config: AttackConfig, count: int):
    samples = [Sample(i, split.test_images[i], int(split.test_labels[i])) for i in range(count)]
    predict = CompiledClassifier(model, batch_size=config.batch_size)
    return list(PixelThresholdAttack(config).run(samples, predict))


@pytest.mark.parametrize(
    ("es", "max_iter", "popsize", "least"),
    [(1, 30, 100, 0.5), (0, 30, 100, 0.25), (2, 300, 10, 0.5)],  # 3,000 queries an image
)
def test_three_pixels_fool_most_digits_the_model_gets_right(
    model: keras.Model, split: Split, es: int, max_iter: int, popsize: int, least: float
) -> None:
    config = AttackConfig(th=3, es=es, max_iter=max_iter, popsize=popsize, batch_size=400, seed=0)
    results = attack(model, split, config, 40)
    attacked = [r for r in results if r.attacked]
    clean_accuracy = len(attacked) / len(results)
    assert clean_accuracy >= 0.85
    success_rate = np.mean([r.success for r in attacked])
    assert success_rate >= least
    adversarial_accuracy = np.mean([r.label_after == r.label for r in results])
    assert adversarial_accuracy <= clean_accuracy * (1 - least)
    assert all(r.l0 <= 3 for r in results)


def test_adversarial_images_fool_the_model_when_scored_again(
    model: keras.Model, split: Split
) -> None:
    config = AttackConfig(th=1, es=1, max_iter=20, popsize=100, batch_size=200, seed=0)
    results = [r for r in attack(model, split, config, 20) if r.success]
    assert results
    again = model(np.stack([r.adversarial for r in results]).astype(np.float32)).numpy()
    assert np.argmax(again, axis=1).tolist() == [r.label_after for r in results]
    assert all(r.l0 == 1 for r in results)


def test_compiled_classifier_pads_short_batches(model: keras.Model, split: Split) -> None:
    predict = CompiledClassifier(model, batch_size=24)
    assert [predict.padded_rows(n) for n in (1, 2, 3, 5, 16, 17, 24)] == [1, 2, 4, 8, 16, 24, 24]
    pixels = split.test_images[:24].astype(np.float32)
    full = predict(pixels)
    short = predict(pixels[:5])
    assert short.shape == (5, 10)
    np.testing.assert_allclose(short, full[:5], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full, model(pixels).numpy(), rtol=1e-5, atol=1e-6)
    for count in (1, 3, 7, 20):
        predict(pixels[:count])
    assert predict.compiled_batch_shapes == [1, 4, 8, 24]  # 7 and 20 reuse 8 and 24
    with pytest.raises(ValueError, match="at most 24"):
        predict(np.zeros((25, 8, 8, 1), dtype=np.float32))


def test_input_range_adapts_foreign_models_and_their_logits_are_detected(
    model: keras.Model, split: Split
) -> None:
    """A model that expects 0-1 inputs and returns logits, adapted to the contract."""
    inner = keras.Sequential([keras.Input((8, 8, 1)), *model.layers[2:-1]])
    head = model.layers[-1]
    logits = keras.layers.Dense(10, name="logits")
    foreign = keras.Sequential([inner, logits])
    logits.set_weights(head.get_weights())
    adapted = CompiledClassifier(foreign, batch_size=8, input_range=(0.0, 1.0))
    pixels = split.test_images[:8].astype(np.float32)
    assert probed(adapted, split.test_images, uri="foreign", outputs="") == ("logits", 10)
    softmax = keras.ops.softmax(adapted(pixels)).numpy()
    np.testing.assert_allclose(softmax, model(pixels).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("es", each_strategy())
def test_same_seed_same_result_whatever_the_batch_on_a_real_model(
    model: keras.Model, split: Split, es: int
) -> None:
    """Padded shapes change the kernels TensorFlow runs; the results must not change."""

    def outcome(batch_size: int) -> list[tuple[bool, int, bytes]]:
        config = AttackConfig(th=1, es=es, max_iter=10, popsize=30, batch_size=batch_size)
        results = sorted(attack(model, split, config, 12), key=lambda r: r.index)
        return [(r.success, r.queries, r.adversarial.tobytes()) for r in results]

    reference = outcome(400)
    assert outcome(45) == reference
    assert outcome(7) == reference
