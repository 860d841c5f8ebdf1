"""Pictures for the MLflow UI: adversarial examples, success rate against ``th``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from pixel_threshold.attack.config import STRATEGIES


def examples_figure(
    path: Path,
    originals: npt.NDArray[np.uint8],
    adversarials: npt.NDArray[np.uint8],
    labels: Sequence[int],
    predicted: Sequence[int],
    class_names: Sequence[str],
) -> None:
    """Save clean images (top row) above their adversarial images (bottom row) as PNG.

    Images are (N, H, W, C) uint8, each titled with its true class and, below, the
    class the model gave the adversarial image.
    """
    shown = len(originals)
    if shown == 0:
        raise ValueError("expected at least one image to show, got none")
    figure = Figure(figsize=(1.6 * shown, 3.6), layout="constrained")
    axes = figure.subplots(2, shown, squeeze=False)
    for column in range(shown):
        for row, (images, title) in enumerate(
            (
                (originals, f"true {class_names[labels[column]]}"),
                (adversarials, f"→ {class_names[predicted[column]]}"),
            )
        ):
            axis = axes[row, column]
            image = images[column]
            axis.imshow(
                image[..., 0] if image.shape[-1] == 1 else image,
                cmap="gray",
                vmin=0,
                vmax=255,
                interpolation="nearest",
            )
            axis.set_title(title, fontsize=9)
            axis.set_axis_off()
    figure.savefig(path, dpi=100)


def success_plot(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Save success rate (with its 95% interval) against ``th``, one line per ``es``."""
    figure = Figure(figsize=(5, 3.5), layout="constrained")
    axis = figure.subplots()
    for es in sorted({row["es"] for row in rows}):
        line = sorted((row for row in rows if row["es"] == es), key=lambda row: row["th"])
        ths = [row["th"] for row in line]
        rates = np.array([row["success_rate"] for row in line])
        errors = np.abs(
            np.array([[row["success_rate_ci_low"], row["success_rate_ci_high"]] for row in line]).T
            - rates
        )
        axis.errorbar(
            ths, rates, yerr=errors, marker="o", capsize=3, label=f"es={es} ({STRATEGIES[es]})"
        )
    axis.set_xlabel("th")
    axis.set_ylabel("success rate")
    axis.set_ylim(0, 1)
    axis.legend()
    figure.savefig(path, dpi=100)
