"""An attack run's metrics: summaries of the distances (`attack.distances`), success
statistics, and a ``th=-1`` run's statistics of each image's smallest fooling th."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pixel_threshold.attack import ImageResult
from pixel_threshold.attack.distances import DISTANCES, FloatArray

SUMMARIES = ("mean", "median", "stdev", "iqr", "min", "max")
Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975: a two-sided 95% interval."""
ROBUST_ACCURACY = "robust_accuracy"
"""A ``th=-1`` run's metric of `robust_accuracy`, logged with ``step = th`` for
th = 0..th_max."""


def summarize(name: str, values: npt.NDArray[Any]) -> dict[str, float]:
    """``{name}_{mean,median,stdev,iqr,min,max}`` of ``values`` (n,); NaN when n = 0.

    ``stdev`` is the population standard deviation (0 for a single value).
    """
    if len(values) == 0:
        return {f"{name}_{summary}": math.nan for summary in SUMMARIES}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        f"{name}_mean": float(np.mean(values)),
        f"{name}_median": float(median),
        f"{name}_stdev": float(np.std(values)),
        f"{name}_iqr": float(q3 - q1),
        f"{name}_min": float(np.min(values)),
        f"{name}_max": float(np.max(values)),
    }


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if not 0 <= successes <= trials:
        raise ValueError(f"expected 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def attack_metrics(
    results: Sequence[ImageResult],
    adversarial_labels: npt.NDArray[np.integer[Any]],
    distances: Mapping[str, FloatArray],
    seconds: float,
) -> dict[str, float]:
    """The attack run's metrics (DESIGN.md's definitions) for results in attacked-set order.

    ``adversarial_labels`` (N,) are the model's classes for the adversarial images as
    saved, scored the way ``evaluate`` scores them; ``distances`` holds each distance
    (N,) per image, summarised over the successful adversarial images only. Rates
    over no images are NaN.
    """
    labels = np.array([r.label for r in results])
    attacked = np.array([r.attacked for r in results], dtype=bool)
    success = np.array([r.success for r in results], dtype=bool)
    queries = np.array([r.queries for r in results], dtype=np.float64)
    trials, successes = int(attacked.sum()), int(success.sum())
    low, high = wilson_interval(successes, trials)
    metrics = {
        "clean_accuracy": _mean(np.array([r.label_before for r in results]) == labels),
        "adversarial_accuracy": _mean(adversarial_labels == labels),
        "images_attacked": float(trials),
        "success_rate": successes / trials if trials else math.nan,
        "success_rate_ci_low": low,
        "success_rate_ci_high": high,
        "mean_queries": _mean(queries[attacked]),
        "median_queries_successful": float(np.median(queries[success])) if successes else math.nan,
        "attack_seconds": seconds,
        "queries_per_second": float(queries.sum()) / seconds if seconds > 0 else math.nan,
    }
    for name in DISTANCES:
        metrics.update(summarize(name, distances[name][success]))
    return metrics


def fooled_at(results: Sequence[ImageResult], th_max: int) -> npt.NDArray[np.int64]:
    """Each image's ``min_th`` (N,) from a ``th=-1`` run's results, ``th_max + 1`` for an
    image not fooled within ``th_max`` or not attacked. Raises ValueError for a
    ``min_th`` outside ``1..th_max``."""
    for result in results:
        if result.min_th is not None and not 1 <= result.min_th <= th_max:
            raise ValueError(
                f"expected min_th in [1, {th_max}] or None, got min_th={result.min_th}"
            )
    return np.array([th_max + 1 if r.min_th is None else r.min_th for r in results], dtype=np.int64)


def robust_accuracy(results: Sequence[ImageResult], th_max: int) -> FloatArray:
    """The share of the attacked set (N >= 1 images) the model still gets right at each
    budget th = 0..th_max, (th_max + 1,): an image counts at th if the model got it right
    clean and no budget up to th fooled it (its ``min_th`` is None or above th). The
    value at th = 0 is ``clean_accuracy``; it never rises with th."""
    right = np.array([r.label_before == r.label for r in results], dtype=bool)
    # One count per level instead of a loop over th: the right images first fooled at th.
    first_fooled = np.bincount(fooled_at(results, th_max)[right], minlength=th_max + 2)
    left: FloatArray = (right.sum() - np.cumsum(first_fooled[: th_max + 1])) / len(results)
    return left


def fooled_share(results: Sequence[ImageResult], th_max: int) -> FloatArray:
    """The share of the attacked images fooled within each budget th = 0..th_max,
    (th_max + 1,); NaN when no image was attacked."""
    attacked = np.array([r.attacked for r in results], dtype=bool)
    trials = int(attacked.sum())
    if trials == 0:
        return np.full(th_max + 1, math.nan)
    first_fooled = np.bincount(fooled_at(results, th_max)[attacked], minlength=th_max + 2)
    share: FloatArray = np.cumsum(first_fooled[: th_max + 1]) / trials
    return share


def smallest_th_metrics(results: Sequence[ImageResult], th_max: int) -> dict[str, float]:
    """``median_min_th`` over the attacked images, one not fooled within ``th_max``
    counting as ``th_max + 1`` (so ``th_max + 1`` means more than half were not fooled;
    NaN when none was attacked), and ``mean_min_th`` over the fooled images (left out
    when none was fooled)."""
    levels = fooled_at(results, th_max)
    attacked = np.array([r.attacked for r in results], dtype=bool)
    fooled = levels <= th_max
    summary = {"median_min_th": float(np.median(levels[attacked])) if attacked.any() else math.nan}
    if fooled.any():
        summary["mean_min_th"] = float(levels[fooled].mean())
    return summary


def _mean(values: npt.NDArray[Any]) -> float:
    return float(np.mean(values)) if len(values) else math.nan
