"""Every file a step logs, by name, in one list: the steps write them under these names,
their ``--help`` lists them from here, and a test holds the README's tables to it."""

from __future__ import annotations

from dataclasses import dataclass

ADV_TESTING = "adv_testing.tar.gz"
DISTANCE_METRICS = "distance_metrics.csv.gz"
SKIPPED_IMAGES = "skipped_images.csv"
EXAMPLES = "examples.png"
QUERIES = "queries.png"
ROBUSTNESS_CURVE = "robustness_curve.png"
CONFUSION_MATRIX = "confusion_matrix_{images}.{kind}"
"""Evaluate's confusion matrices: images clean or adversarial, kind csv or png."""
COMPARISON = "comparison.csv"
COMPARISON_HTML = "comparison.html"
SUCCESS_VS_TH = "success_vs_th.png"
ROBUSTNESS_CURVES = "robustness_curves.png"
ROBUSTNESS_LEVELS = "robustness_levels.csv"
REPORT_HTML = "report.html"
REPORT_MARKDOWN = "report.md"
REPORT_IMAGES = "report_images.csv"
REPORT_EXAMPLES = "examples_{attack_type}_{run}.png"
"""A report's copy of an attack run's examples: its attack type, its id's first 8
characters."""


@dataclass(frozen=True)
class Logged:
    """A file a step logs, and when it does (empty: always)."""

    name: str
    when: str = ""


LOGGED: dict[str, tuple[Logged, ...]] = {
    "attack": (
        Logged(ADV_TESTING),
        Logged(DISTANCE_METRICS),
        Logged(EXAMPLES),
        Logged(QUERIES),
        Logged(SKIPPED_IMAGES, "if files were unreadable"),
        Logged(ROBUSTNESS_CURVE, "with th=-1"),
    ),
    "evaluate": tuple(
        Logged(CONFUSION_MATRIX.format(images=images, kind=kind))
        for images in ("clean", "adversarial")
        for kind in ("csv", "png")
    ),
    "compare": (
        Logged(COMPARISON),
        Logged(COMPARISON_HTML),
        Logged(SUCCESS_VS_TH, "with fixed-th runs"),
        Logged(QUERIES),
        Logged(ROBUSTNESS_CURVES, "with th=-1 runs"),
        Logged(ROBUSTNESS_LEVELS, "with th=-1 runs"),
    ),
    "report": (
        Logged(REPORT_HTML),
        Logged(REPORT_MARKDOWN),
        Logged(REPORT_IMAGES),
        Logged(ROBUSTNESS_CURVES, "with th=-1 runs"),
        Logged(SUCCESS_VS_TH, "with fixed-th runs"),
        Logged(REPORT_EXAMPLES.format(attack_type="<type>", run="<id>")),
    ),
}
"""The files of each step that logs files (train logs its model as an MLflow logged
model); main's own run holds compare's."""
LOGGED["main"] = LOGGED["compare"]


def described(step: str) -> str:
    """``step``'s files as a sentence for its help: ``Logs a, b and, with th=-1, c.``"""
    files = [
        entry.name if not entry.when else f"{entry.name} ({entry.when})"
        for entry in LOGGED.get(step, ())
    ]
    if not files:
        return ""
    listed = files[0] if len(files) == 1 else f"{', '.join(files[:-1])} and {files[-1]}"
    return f"Logs {listed}."
