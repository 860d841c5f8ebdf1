"""Confusion matrices as pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

ANNOTATED = 20
"""Counts are written in the cells up to this many classes, class names up to 3x it."""


def confusion_plot(
    path: Path, matrix: npt.NDArray[np.integer[Any]], class_names: Sequence[str], title: str
) -> None:
    """Save a (K, K) confusion ``matrix`` (rows: true class, columns: predicted) as a
    PNG heat map titled ``title``; of more than 60 classes, only those that occur."""
    classes = len(class_names)
    if matrix.shape != (classes, classes):
        raise ValueError(f"expected a ({classes}, {classes}) matrix, got {matrix.shape}")
    if classes > 3 * ANNOTATED:  # e.g. ImageNet's 1000: only the classes that occur
        shown = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
        matrix = matrix[np.ix_(shown, shown)]
        class_names = [class_names[int(index)] for index in shown]
        title = f"{title} ({len(shown)} of {classes} classes occur)"
        classes = len(shown)
    side = 4 + 0.25 * min(classes, 3 * ANNOTATED)
    figure = Figure(figsize=(side, side), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axis, shrink=0.8)
    if classes <= 3 * ANNOTATED:
        ticks = np.arange(classes)
        axis.set_xticks(ticks, class_names, rotation=90, fontsize=7)
        axis.set_yticks(ticks, class_names, fontsize=7)
    if classes <= ANNOTATED:
        high = matrix.max() / 2
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                axis.text(
                    column,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if count > high else "black",
                )
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    figure.savefig(path, dpi=100)
