"""The pictures an attack run logs: ``examples.png`` and ``queries.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pixel_threshold import data, imagenet
from pixel_threshold.attack import ImageResult
from pixel_threshold.report import curves, examples

EXAMPLES = "examples.png"
QUERIES = "queries.png"


def write_attack_pictures(
    folder: Path,
    attacked: data.ImageSet,
    results: Sequence[ImageResult],
    adversarials: npt.NDArray[np.uint8],
) -> None:
    """Write ``examples.png`` (a dozen images, successes first) and ``queries.png``
    (the cumulative success rate against queries) into ``folder``, for ``results`` of
    the images ``attacked`` and their ``adversarials`` (N, H, W, C), row for row.
    ImageNet's WordNet ids are captioned with their words."""
    names = imagenet.display_names(attacked.class_names)
    shown = examples.pick([result.success for result in results])
    examples.save(
        folder / EXAMPLES,
        [
            examples.Example(
                original=attacked.images[row],
                adversarial=adversarials[row],
                caption=examples.caption(
                    attacked=results[row].attacked,
                    success=results[row].success,
                    queries=results[row].queries,
                    names=(names[results[row].label_before], names[results[row].label_after]),
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
    curves.queries_plot(
        folder / QUERIES,
        {"attack": curve},
        title=f"{success.sum()} of {tried.sum()} attacked images fooled",
    )
