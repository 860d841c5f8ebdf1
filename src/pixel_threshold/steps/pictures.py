"""The pictures an attack run logs: ``examples.png``, ``queries.png`` and, with
``th=-1``, ``robustness_curve.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pixel_threshold import metrics
from pixel_threshold.artifacts import names
from pixel_threshold.attack import ImageResult
from pixel_threshold.data import datasets, imagenet
from pixel_threshold.report import curves, examples


def write_attack_pictures(
    folder: Path,
    attacked: datasets.ImageSet,
    results: Sequence[ImageResult],
    adversarials: npt.NDArray[np.uint8],
    *,
    attack_type: str,
    subject: str,
) -> None:
    """Write ``examples.png`` (a dozen images, successes first) and ``queries.png``
    (the cumulative success rate against queries, titled with ``subject``: what ran)
    into ``folder``, for ``results`` of the images ``attacked`` and their
    ``adversarials`` (N, H, W, C), row for row, of an ``attack_type`` attack.
    ImageNet's WordNet ids are captioned with their words."""
    class_names = imagenet.display_names(attacked.class_names)
    shown = examples.pick([result.success for result in results])
    examples.save(
        folder / names.EXAMPLES,
        [
            examples.Example(
                original=attacked.images[row],
                adversarial=adversarials[row],
                caption=examples.caption(
                    attacked=results[row].attacked,
                    success=results[row].success,
                    queries=results[row].queries,
                    names=(
                        class_names[results[row].label_before],
                        class_names[results[row].label_after],
                    ),
                    p_true=(results[row].p_true_before, results[row].p_true_after),
                ),
            )
            for row in shown
        ],
    )
    success = np.array([result.success for result in results], dtype=bool)
    tried = np.array([result.attacked for result in results], dtype=bool)
    curve = curves.success_by_queries(
        np.array([result.queries for result in results]), success, tried
    )
    fooled = f"{success.sum()} of {tried.sum()} attacked images fooled"
    curves.queries_plot(folder / names.QUERIES, {attack_type: {fooled: curve}}, title=subject)


def write_robustness_curve(
    folder: Path, results: Sequence[ImageResult], th_max: int, *, title: str
) -> None:
    """Write ``robustness_curve.png`` into ``folder`` for the ``results`` of a ``th=-1``
    run up to ``th_max``: accuracy and the share of attacked images fooled against th,
    with the images not fooled within ``th_max``, titled ``title``."""
    attacked = [result for result in results if result.attacked]
    curves.robustness_plot(
        folder / names.ROBUSTNESS_CURVE,
        metrics.robust_accuracy(results, th_max),
        metrics.fooled_share(results, th_max),
        left=sum(result.min_th is None for result in attacked),
        attacked=len(attacked),
        title=title,
    )
