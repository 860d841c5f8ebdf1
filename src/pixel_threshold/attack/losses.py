"""What the search minimises, computed from the model's probabilities: no extra queries.

``probability`` is the paper's (and ART's) objective: untargeted p(true class),
targeted 1 - p(target). On a confident model p(true) rounds to exactly 1.0 in
float32, every candidate scores the same and the search is blind. ``margin`` keeps
the ordering there: untargeted log p(true) - max over the other classes of log p
(the logit margin), targeted max over the classes other than the target of log p
minus log p(target). Both fall as the attack gets closer; a margin below zero means
the image is fooled.
"""

from __future__ import annotations

import numpy as np

from pixel_threshold.attack.types import BoolArray, FloatArray, IntArray

LOSSES = ("margin", "probability")
SMALLEST_PROBABILITY = float(np.finfo(np.float32).smallest_subnormal)
"""Probabilities are floored here before the log: a float32 softmax can underflow to 0."""


def loss(name: str, probs: FloatArray, labels: IntArray, target: int | None) -> FloatArray:
    """The loss ``name`` of each row of ``probs`` (M, K) for true ``labels`` (M,), (M,)."""
    rows = np.arange(len(probs))
    if name == "probability":
        if target is None:
            return probs[rows, labels].astype(np.float64)
        return 1.0 - probs[:, target].astype(np.float64)
    if name != "margin":
        raise ValueError(f"expected loss in {LOSSES}, got loss={name!r}")
    log_probs = np.log(np.maximum(probs.astype(np.float64), SMALLEST_PROBABILITY))
    ours = labels if target is None else np.full(len(probs), target)
    own = log_probs[rows, ours]
    log_probs[rows, ours] = -np.inf
    others = log_probs.max(axis=1)
    margin: FloatArray = own - others if target is None else others - own
    return margin


def succeeded(predicted: IntArray, labels: IntArray, target: int | None) -> BoolArray:
    """Whether each predicted label (M,) is a success: not the true label (M,), or the
    target when there is one."""
    success: BoolArray = predicted != labels if target is None else predicted == target
    return success
