"""Plots of attack runs: success rate against queries spent, and against ``th``; a
``th=-1`` run's accuracy and share fooled against th."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pixel_threshold.attack.encodings import ENCODINGS

Curve = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
"""x (queries) and y (share of attacked images fooled), both (k,)."""


def success_by_queries(
    queries: npt.NDArray[np.integer[Any]],
    success: npt.NDArray[np.bool_],
    attacked: npt.NDArray[np.bool_],
) -> Curve:
    """The cumulative success rate: y[i] is the share of attacked images fooled within
    x[i] queries, from per-image ``queries``, ``success`` and ``attacked`` (N,).

    Starts at (0, 0), steps up at each success's query count, and ends flat at the
    most queries any attacked image used. Empty if no image was attacked.
    """
    trials = int(attacked.sum())
    if trials == 0:
        return np.zeros(0), np.zeros(0)
    fooled = np.sort(queries[attacked & success]).astype(np.float64)
    steps, counts = np.unique(fooled, return_counts=True)
    end = float(queries[attacked].max())
    x = np.concatenate([[0.0], steps, [end]])
    y = np.concatenate([[0.0], np.cumsum(counts) / trials, [len(fooled) / trials]])
    return x, y


PANELS = {kind: (encoding.title, encoding.th_axis) for kind, encoding in ENCODINGS.items()}
"""Each attack type's panel title and th axis, as its encoding names them."""


def queries_plot(path: Path, panels: Mapping[str, Mapping[str, Curve]], *, title: str) -> None:
    """Save curves of ``success_by_queries`` as a PNG titled ``title``: a panel per
    attack type of ``panels`` (`PANELS`), a step line per label in it, with a legend."""
    figure, axes = _panels(panels)
    for axis, (attack_type, lines) in zip(axes, panels.items(), strict=True):
        for label, (x, y) in lines.items():
            axis.step(x, y, where="post", label=label)
        axis.set_title(PANELS[attack_type][0], fontsize=9)
        axis.set_xlabel("queries spent per image")
        axis.set_ylabel("share of attacked images fooled")
        axis.set_ylim(0, 1)
        axis.set_xlim(left=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)


def success_plot(
    path: Path, panels: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], *, title: str
) -> None:
    """Save success rate (with its 95% interval) against ``th`` as a PNG titled
    ``title``: a panel per attack type of ``panels`` (`PANELS`: th counts pixels in one,
    a change on 0-255 in the other), a line per label in it through its rows (each with
    th, success_rate and its ci_low/ci_high), in th order."""
    figure, axes = _panels(panels)
    for axis, (attack_type, lines) in zip(axes, panels.items(), strict=True):
        for label, rows in lines.items():
            line = sorted(rows, key=lambda row: row["th"])
            rates = np.array([row["success_rate"] for row in line])
            bounds = [[row["success_rate_ci_low"], row["success_rate_ci_high"]] for row in line]
            axis.errorbar(
                [row["th"] for row in line],
                rates,
                yerr=np.abs(np.array(bounds).T - rates),
                marker="o",
                capsize=3,
                label=label,
            )
        panel_title, xlabel = PANELS[attack_type]
        axis.set_title(panel_title, fontsize=9)
        axis.set_xticks(sorted({row["th"] for rows in lines.values() for row in rows}))
        axis.set_xlabel(xlabel)
        axis.set_ylabel("success rate")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        if lines:
            axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)


def _panels(panels: Mapping[str, object]) -> tuple[Figure, Sequence[Any]]:
    """A figure of one 6 x 4 inch panel per entry of ``panels``, side by side."""
    figure = Figure(figsize=(6 * len(panels), 4), layout="constrained")
    return figure, figure.subplots(1, len(panels), squeeze=False)[0]


def robustness_plot(
    path: Path,
    accuracy: npt.NDArray[np.float64],
    fooled: npt.NDArray[np.float64],
    *,
    left: int,
    attacked: int,
    title: str = "",
) -> None:
    """Save a ``th=-1`` run's curves against th = 0..th_max as a PNG: ``accuracy``
    (th_max + 1,), the share of the attacked set still classified right, and ``fooled``
    (th_max + 1,), the share of the ``attacked`` images fooled within th, as steps (th's
    value held up to th + 1), titled ``title`` over the ``left`` images not fooled
    within th_max."""
    th_max = len(accuracy) - 1
    th = np.arange(th_max + 2)
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    axis.step(th, np.append(accuracy, accuracy[-1]), where="post", label="accuracy (all images)")
    axis.step(
        th,
        np.append(fooled, fooled[-1]),
        where="post",
        linestyle="--",
        label="fooled (attacked images)",
    )
    axis.set_xlabel("th (largest budget)")
    axis.set_ylabel("share of images")
    axis.set_xlim(0, th_max + 1)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.set_title(
        f"{title}\n{left} of {attacked} attacked images not fooled within th={th_max}",
        fontsize=10,
    )
    axis.legend(fontsize=7, loc="center right")
    figure.savefig(path, dpi=100)


def robustness_curves_plot(
    path: Path, curves: Mapping[str, Mapping[str, Curve]], *, title: str
) -> None:
    """Save ``th=-1`` runs' robust accuracy against th as a PNG titled ``title``: a
    panel per attack type of ``curves`` (`PANELS`: their th scales differ), a step line
    per label in it, each curve th = 0..th_max (x, (th_max + 1,)) and the accuracy at
    each (y), drawn on to th_max + 1 so that the last level shows; an empty panel says
    so."""
    figure, axes = _panels(curves)
    for axis, (attack_type, lines) in zip(axes, curves.items(), strict=True):
        for label, (th, accuracy) in lines.items():
            axis.step(
                np.append(th, th[-1] + 1),
                np.append(accuracy, accuracy[-1]),
                where="post",
                label=label,
            )
        panel_title, xlabel = PANELS[attack_type]
        axis.set_title(panel_title, fontsize=9)
        axis.set_xlabel(xlabel)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("robust accuracy")
        axis.set_xlim(left=0)
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
        if lines:
            axis.legend(fontsize=7)
        else:
            axis.text(
                0.5, 0.5, f"no th=-1 {attack_type} run", ha="center", transform=axis.transAxes
            )
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)
