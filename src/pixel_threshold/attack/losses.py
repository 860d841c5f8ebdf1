"""What the search minimises, computed from the model's outputs: no extra queries.

A model's outputs are ``probabilities``, ``logits`` or ``log_probabilities``
(`OUTPUTS`); the loss is computed from the best of them.

``probability`` is the paper's (and ART's) objective: untargeted p(true class),
targeted 1 - p(target). On a confident model p(true) rounds to exactly 1.0 in
float32, every candidate scores the same and the search is blind. ``margin`` keeps
the ordering there: untargeted log p(true) - max over the other classes of log p
(the logit margin), targeted max over the classes other than the target of log p
minus log p(target). From logits or log-probabilities the margin is the difference of
two outputs, exact, with no softmax in between; from float32 probabilities it takes
their logarithm, which saturates once p(true) rounds to 1. Both losses fall as the
attack gets closer; a margin below zero means the image is fooled.

``cross_entropy`` is the targeted loss of Sparse-RS and of the Square Attack
(Croce et al., AAAI 2022; Andriushchenko et al., ECCV 2020): targeted -log p(target),
untargeted log p(true), from the same log-probabilities as the margin. Unlike the
margin it keeps falling after the image is fooled, which a search that stops at its
first success never sees.
"""

from __future__ import annotations

import numpy as np

from pixel_threshold.attack.types import BoolArray, FloatArray, IntArray

LOSSES = ("margin", "probability", "cross_entropy")
OUTPUTS = ("probabilities", "logits", "log_probabilities")
"""What a model's outputs (B, K) are: probabilities (each row sums to 1), logits (any
reals, their softmax the probabilities) or log-probabilities."""
SMALLEST_PROBABILITY = float(np.finfo(np.float32).smallest_subnormal)
"""Probabilities are floored here before the log: a float32 softmax can underflow to 0."""


def default_loss(target: int | None) -> str:
    """The loss a run gets when it names none: the margin, or for a targeted run
    cross-entropy, as Sparse-RS and the Square Attack attack targeted (it fooled 10 of
    12 ImageNet photos towards a class where the margin fooled 4: docs/benchmarks.md)."""
    return "margin" if target is None else "cross_entropy"


def loss(
    name: str, scores: FloatArray, labels: IntArray, target: int | None, outputs: str
) -> FloatArray:
    """The loss ``name`` of each row of the model's ``scores`` (M, K), of the kind
    ``outputs``, for true ``labels`` (M,), (M,)."""
    rows = np.arange(len(scores))
    ours = labels if target is None else np.full(len(scores), target)
    if name == "probability":
        probability = true_probability(scores, ours, outputs)
        return probability if target is None else 1.0 - probability
    if name not in LOSSES:
        raise ValueError(f"expected loss in {LOSSES}, got loss={name!r}")
    log_scores = scores.astype(np.float64)  # logits or log-probabilities: margins as they are
    if outputs == "probabilities":
        log_scores = np.log(np.maximum(log_scores, SMALLEST_PROBABILITY))
    if name == "cross_entropy":
        if outputs == "logits":  # log-softmax, shifted by the row's largest logit
            shifted = log_scores - log_scores.max(axis=1, keepdims=True)
            log_scores = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        own_log_probability: FloatArray = log_scores[rows, ours]
        return own_log_probability if target is None else -own_log_probability
    own = log_scores[rows, ours]
    log_scores[rows, ours] = -np.inf
    others = log_scores.max(axis=1)
    margin: FloatArray = own - others if target is None else others - own
    return margin


def true_probability(scores: FloatArray, labels: IntArray, outputs: str) -> FloatArray:
    """Each row's probability (M,) of its class in ``labels`` (M,), from ``scores``
    (M, K) of the kind ``outputs``: as given for probabilities, else the float64
    softmax."""
    rows = np.arange(len(scores))
    if outputs == "probabilities":
        return scores[rows, labels].astype(np.float64)
    values = scores.astype(np.float64)
    values -= values.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(values).sum(axis=1))
    probability: FloatArray = np.exp(values[rows, labels] - log_sum)
    return probability


def succeeded(predicted: IntArray, labels: IntArray, target: int | None) -> BoolArray:
    """Whether each predicted label (M,) is a success: not the true label (M,), or the
    target when there is one."""
    success: BoolArray = predicted != labels if target is None else predicted == target
    return success
