"""The losses the search minimises: known values, zeros, float32 saturation, and the
same losses from logits and log-probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pixel_threshold.attack.losses import loss, true_probability
from pixel_threshold.runs.params import AttackParams
from pixel_threshold.steps.plan import attack_config

PROBS = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]], dtype=np.float32)
LABELS = np.array([0, 0, 2])


def test_untargeted_known_values() -> None:
    margin = loss("margin", PROBS, LABELS, None, "probabilities")
    expected = [math.log(0.5 / 0.3), math.log(0.1 / 0.6), math.log(0.5 / 0.25)]
    np.testing.assert_allclose(margin, expected, rtol=1e-6)
    assert margin.dtype == np.float64
    np.testing.assert_allclose(
        loss("probability", PROBS, LABELS, None, "probabilities"), [0.5, 0.1, 0.5]
    )


def test_targeted_known_values() -> None:
    """Targeted at class 2: the best other class's log p minus log p(target)."""
    margin = loss("margin", PROBS, LABELS, 2, "probabilities")
    expected = [math.log(0.5 / 0.2), math.log(0.6 / 0.3), math.log(0.25 / 0.5)]
    np.testing.assert_allclose(margin, expected, rtol=1e-6)
    np.testing.assert_allclose(
        loss("probability", PROBS, LABELS, 2, "probabilities"), [0.8, 0.7, 0.5], rtol=1e-6
    )


def test_a_probability_of_zero_gives_a_finite_margin() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 0])
    for target in (None, 2):
        margin = loss("margin", probs, labels, target, "probabilities")
        assert np.all(np.isfinite(margin))
    untargeted = loss("margin", probs, labels, None, "probabilities")
    assert untargeted[0] > 100 and untargeted[1] < -100  # log(1 / 1.4e-45) = 103.3
    assert (
        loss("margin", probs, labels, 2, "probabilities")[0] > 100
    )  # p(target) = 0: as far as it gets


def test_the_margin_keeps_the_order_where_p_true_rounds_to_one() -> None:
    logits = np.array([[30.0, 0.0, -5.0], [30.0, 5.0, 0.0], [30.0, 10.0, 10.0]], np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    assert probs.dtype == np.float32 and np.all(probs[:, 0] == 1.0)
    labels = np.zeros(3, dtype=np.intp)
    flat = loss("probability", probs, labels, None, "probabilities")
    assert flat.tolist() == [1.0, 1.0, 1.0]  # the paper's objective is blind here
    margin = loss("margin", probs, labels, None, "probabilities")
    np.testing.assert_allclose(margin, [30.0, 25.0, 20.0], rtol=1e-5)  # the logit margins
    targeted = loss("margin", probs, labels, 1, "probabilities")
    np.testing.assert_allclose(targeted, [30.0, 25.0, 20.0], rtol=1e-5)


@given(
    arrays(np.float32, (6, 4), elements=st.floats(0.001953125, 1.0, width=32)),
    st.lists(st.integers(0, 3), min_size=6, max_size=6),
)
def test_a_negative_margin_means_fooled(scores: np.ndarray, labels: list[int]) -> None:
    probs = scores / scores.sum(axis=1, keepdims=True)
    true = np.array(labels)
    margin = loss("margin", probs, true, None, "probabilities")
    top = probs.max(axis=1)
    clear = np.sum(probs == top[:, None], axis=1) == 1  # ties say nothing
    fooled = np.argmax(probs, axis=1) != true
    assert np.array_equal((margin < 0)[clear], fooled[clear])
    targeted = loss("margin", probs, true, 2, "probabilities")
    assert np.array_equal((targeted < 0)[clear], (np.argmax(probs, axis=1) == 2)[clear])


def test_unknown_loss_is_rejected_naming_it() -> None:
    with pytest.raises(ValueError, match="'hinge'"):
        loss("hinge", PROBS, LABELS, None, "probabilities")


def test_from_logits_the_margin_is_exact_where_float32_probabilities_saturate() -> None:
    """A logit margin of 200 nats: float32 probabilities flush p(other) to 0, so their
    margin stops at log(1 / 1.4e-45) = 103.3; from the logits it is 200 exactly."""
    logits = np.array([[200.0, 0.0, -1.0], [250.0, 50.0, 0.0]], dtype=np.float32)
    labels = np.zeros(2, dtype=np.intp)
    exp = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    probs = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    saturated = loss("margin", probs, labels, None, "probabilities")
    assert saturated.tolist() == [saturated[0]] * 2 and saturated[0] < 104
    assert loss("margin", logits, labels, None, "logits").tolist() == [200.0, 200.0]
    log_probs = logits - np.log(np.exp(logits.astype(np.float64)).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss("margin", log_probs, labels, None, "log_probabilities"), 200)
    np.testing.assert_allclose(loss("margin", logits, labels, 2, "logits"), [201.0, 250.0])


def test_probabilities_from_logits_are_their_float64_softmax() -> None:
    logits = np.log(PROBS.astype(np.float64)) + 7.0  # any shift: the same softmax
    labels = np.array([0, 1, 2])
    np.testing.assert_allclose(true_probability(logits, labels, "logits"), [0.5, 0.6, 0.5])
    np.testing.assert_allclose(
        loss("probability", logits, LABELS, None, "logits"), [0.5, 0.1, 0.5], rtol=1e-6
    )
    assert true_probability(PROBS, labels, "probabilities").tolist() == [
        float(np.float32(0.5)),
        float(np.float32(0.6)),
        float(np.float32(0.5)),
    ]


def test_from_logits_the_margin_orders_candidates_whose_runner_up_underflows() -> None:
    """Logits 100 to 150 nats apart: in float32 the runner-up's probability is 0 (below
    the smallest subnormal, 1.4e-45 = e^-103), so a margin from probabilities is stuck at
    its floor for all three; from the logits it is exact and keeps their order."""
    logits = np.array([[150.0, 0.0, -5.0], [120.0, 0.0, 1.0], [110.0, 3.0, 0.0]], np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    assert np.all(probs[:, 1:] == 0.0)  # underflowed
    labels = np.zeros(3, dtype=np.intp)
    floored = loss("margin", probs, labels, None, "probabilities")
    assert len(set(floored.tolist())) == 1  # blind: every candidate looks the same
    exact = loss("margin", logits, labels, None, "logits")
    np.testing.assert_allclose(exact, [150.0, 119.0, 107.0])
    assert np.argsort(exact).tolist() == [2, 1, 0]
    log_probs = (
        logits.astype(np.float64) - np.log(np.exp(logits.astype(np.float64)).sum(1))[:, None]
    )
    np.testing.assert_allclose(loss("margin", log_probs, labels, None, "log_probabilities"), exact)


@pytest.mark.parametrize("outputs", ["probabilities", "logits", "log_probabilities"])
def test_cross_entropy_known_values_from_every_kind_of_output(outputs: str) -> None:
    """The papers' targeted loss: -log p(target); untargeted log p(true)."""
    logits = np.log(PROBS.astype(np.float64)) + 3.0  # any shift: the same softmax
    scores = {
        "probabilities": PROBS,
        "logits": logits,
        "log_probabilities": np.log(PROBS.astype(np.float64)),
    }[outputs]
    targeted = loss("cross_entropy", scores, LABELS, 2, outputs)
    np.testing.assert_allclose(targeted, -np.log([0.2, 0.3, 0.5]), rtol=1e-6)
    untargeted = loss("cross_entropy", scores, LABELS, None, outputs)
    np.testing.assert_allclose(untargeted, np.log([0.5, 0.1, 0.5]), rtol=1e-6)


@pytest.mark.parametrize(
    ("target", "given", "resolved"),
    [
        (-1, "", "margin"),
        (3, "", "cross_entropy"),
        (3, "margin", "margin"),
        (-1, "probability", "probability"),
    ],
)
def test_a_run_without_a_loss_gets_the_margin_or_targeted_cross_entropy(
    target: int, given: str, resolved: str
) -> None:
    """The papers' targeted loss when a targeted run names none (docs/benchmarks.md:
    10 of 12 ImageNet photos against the margin's 4); a loss given is kept."""
    assert attack_config(AttackParams(target=target, loss=given)).loss == resolved
