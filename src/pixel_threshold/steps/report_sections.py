"""The report's page: its sections, in the order a security engineer reads them, from
an `assessment.Assessment`.

Every rate is said with its denominator and its interval's method; the threat model is
said in words, per attack; a sample too small to report gets a caution where its
figures are.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pixel_threshold import metrics
from pixel_threshold.artifacts import names
from pixel_threshold.attack.config import SMALLEST_TH
from pixel_threshold.attack.encodings import ATTACK_TYPES, encoding_type
from pixel_threshold.data import datasets
from pixel_threshold.report import curves
from pixel_threshold.report.page import Caution, Commands, Page, Picture, Section, Table
from pixel_threshold.runs import logins, naming, outcome
from pixel_threshold.runs.params import AttackParams
from pixel_threshold.steps.assessment import AssessedRun, Assessment

SMALL_SAMPLE = 30
"""Fewer attacked images than this get a caution: a 95% interval over them is wider
than about ±0.18 around a rate of one half."""
INTERVAL = "Wilson score 95% interval"
REPRODUCED = (
    "model",
    "data",
    "attack_type",
    "th",
    "th_max",
    "es",
    "max_iter",
    "popsize",
    "limit",
    "seed",
)
"""Parameters every command to reproduce an attack names; the others only where they
differ from their default, but for `NO_EFFECT`'s."""
NO_EFFECT = ("batch_size", "ray_address", "shard_size", "resume", "max_hours")
"""Parameters that never change an attack's result, left out of its command."""
RESIZE_WORDS = {
    "crop": "scaled to cover the model's size and centre-cropped (no distortion)",
    "stretch": "stretched to the model's size (each side scaled on its own)",
    "refuse": "refused (the attack stops at the first)",
}
"""What each ``resize`` did to a folder's image of another size than the model's."""


def assessment_page(
    assessment: Assessment, folder: Path, *, tracking_uri: str, experiment: str
) -> Page:
    """The page of ``assessment``, its pictures written into ``folder``; the commands to
    reproduce it name ``tracking_uri`` and the ``experiment``'s name."""
    model = assessment.model_name
    return Page(
        title=f"Robustness assessment: {model} on {_data_name(assessment)}",
        meta=[
            f"{len(assessment.runs)} attack run{'s' if len(assessment.runs) > 1 else ''}: "
            + ", ".join(f"{run.label} ({run.run.run_id})" for run in assessment.runs),
            "Black-box few-pixel (L0) and small-threshold (L∞) attacks after Kotyan & Vargas, "
            "arXiv 1906.06026; written by pixel-threshold.",
        ],
        sections=[
            _summary(assessment),
            _model(assessment),
            _data(assessment),
            _threat_model(assessment),
            _results(assessment),
            _curves(assessment, folder),
            _smallest(assessment),
            _per_class(assessment),
            _examples(assessment),
            _reproduce(assessment, tracking_uri=tracking_uri, experiment=experiment),
        ],
    )


def _data_name(assessment: Assessment) -> str:
    data = assessment.data
    return data if data in datasets.BUILTIN else f"the images of {naming.dataset_name(data)}"


def _count(run: AssessedRun) -> tuple[int, int, int]:
    """Images in the run, images attacked (classified right before), images fooled."""
    return len(run.indices), int(run.attacked.sum()), int(run.fooled.sum())


def _rate(fooled: int, attacked: int) -> str:
    """``12 of the 40 images the model classified correctly (0.30; 95% interval
    0.18-0.46)``."""
    if attacked == 0:
        return "none: the model classified no image correctly"
    low, high = metrics.wilson_interval(fooled, attacked)
    return (
        f"{fooled} of the {attacked} images the model classified correctly "
        f"({fooled / attacked:.2f}; 95% interval {low:.2f}-{high:.2f})"
    )


def _small_sample(runs: Sequence[AssessedRun]) -> list[Caution]:
    small = [(run, _count(run)[1]) for run in runs if _count(run)[1] < SMALL_SAMPLE]
    if not small:
        return []
    listed = "; ".join(f"{run.label}: {attacked}" for run, attacked in small)
    return [
        Caution(
            f"fewer than {SMALL_SAMPLE} images were attacked ({listed}), so every rate below "
            "has a wide interval: do not report it as a figure; attack more images (limit)."
        )
    ]


def _summary(assessment: Assessment) -> Section:
    images, attacked, _ = _count(_largest(assessment))
    lines: list[str | Caution] = [
        f"Before any attack the model classifies {attacked} of {images} images correctly "
        f"({attacked / images:.2f}); only those are attacked."
    ]
    for run in assessment.runs:
        _, attacked, fooled = _count(run)
        title = encoding_type(run.run.params.attack_type).title
        if run.run.params.th == SMALLEST_TH:
            levels = [th for th in _min_th(run) if th is not None]
            median = (
                f"; median smallest th {np.median(levels):g} over the {len(levels)} fooled"
                if levels
                else ""
            )
            budget = f"with th up to {run.run.th_max}"
        else:
            median, budget = "", f"at th={run.run.params.th}"
        lines.append(
            f"{title} {budget}, {run.run.strategy}: fooled {_rate(fooled, attacked)}{median}."
        )
    return Section("Summary", [*lines, *_small_sample(assessment.runs)])


def _min_th(run: AssessedRun) -> list[int | None]:
    """Each attacked image's smallest th (None: not fooled within th_max)."""
    return [th for th, attacked in zip(run.logged.min_th, run.attacked, strict=True) if attacked]


def _largest(assessment: Assessment) -> AssessedRun:
    """The run that attacked the most images: its clean accuracy covers them all."""
    return max(assessment.runs, key=lambda run: len(run.indices))


def _model(assessment: Assessment) -> Section:
    first = assessment.first
    images, attacked, _ = _count(_largest(assessment))
    return Section(
        "Model",
        [
            Table(
                ["", ""],
                [
                    ["model URI", assessment.model_uri],
                    ["registry version", first.model_version or "not a registered model"],
                    ["kind", first.model_kind or "not recorded"],
                    ["scores used", first.model_outputs or "not recorded"],
                    ["train run", first.train_run_id or "none (a model of its own)"],
                    [
                        "clean accuracy on the data",
                        f"{attacked / images:.3f} ({attacked} of {images} images)",
                    ],
                ],
            )
        ],
    )


def _data(assessment: Assessment) -> Section:
    height, width, channels = assessment.shape
    count = len(assessment.labels)
    builtin = assessment.data in datasets.BUILTIN
    source = (
        f"the built-in data set {assessment.data!r} (its test split, in a fixed order)"
        if builtin
        else f"the folder {assessment.data} (one folder per class, images sorted by path)"
    )
    blocks: list[str | Table | Caution] = [
        f"{count} images from {source}, {len(assessment.class_names)} classes, each "
        f"{height}x{width} with {channels} channel{'s' if channels > 1 else ''}; every run "
        "attacked the first images of this list, as many as its limit.",
        _resizing(assessment, builtin),
    ]
    if assessment.skipped:
        skipped = len(assessment.skipped)
        blocks.append(
            f"{skipped} unreadable file{'s were' if skipped > 1 else ' was'} skipped (not "
            "attacked, not counted):"
        )
        blocks.append(Table(["file", "why"], [list(skipped) for skipped in assessment.skipped]))
    blocks.append(
        "Each image below is identified by the SHA-256 of its pixels as attacked (its "
        f"{height}x{width}x{channels} uint8 values in row-major order, after any resizing), "
        "so the same images can be checked elsewhere. Outcome per run: fooled (at its "
        "smallest th), not fooled, or misclassified before the attack (not attacked)."
    )
    blocks.append(_image_list(assessment))
    return Section("Data", blocks)


def _resizing(assessment: Assessment, builtin: bool) -> str:
    if builtin:
        return "Built-in images already have the model's size: none was resized."
    mode = assessment.first.params.resize
    return (
        f"Images of another size were {RESIZE_WORDS.get(mode, mode)} (resize={mode}): "
        f"{assessment.resized} of {len(assessment.labels)} were resized."
    )


def _image_list(assessment: Assessment) -> Table:
    """Every image: position, source, class, pixel digest and each run's outcome."""
    rows_of = [
        {index: row for row, index in enumerate(run.indices.tolist())} for run in assessment.runs
    ]
    rows = []
    for index, (source, label, digest) in enumerate(
        zip(assessment.sources, assessment.labels, assessment.digests, strict=True)
    ):
        outcomes = [
            _outcome(run, positions[index]) if index in positions else "beyond its limit"
            for run, positions in zip(assessment.runs, rows_of, strict=True)
        ]
        rows.append([str(index), source, assessment.class_names[label], digest, *outcomes])
    header = [
        "#",
        "source",
        "class",
        "SHA-256 of the pixels",
        *(run.label for run in assessment.runs),
    ]
    return Table(header, rows, listing=names.REPORT_IMAGES)


def _outcome(run: AssessedRun, row: int) -> str:
    if not run.attacked[row]:
        return "misclassified before"
    if not run.fooled[row]:
        return "not fooled"
    min_th = run.logged.min_th[row]
    return "fooled" if min_th is None else f"fooled at th={min_th}"


def image_table(assessment: Assessment) -> dict[str, list[object]]:
    """``report_images.csv``: per image its index, source, label, class and pixel digest,
    then per run (``<type>_<id>_``) attacked, fooled, queries and smallest th (blank:
    none, or beyond the run's limit)."""
    table: dict[str, list[object]] = {
        "index": list(range(len(assessment.labels))),
        "source": list(assessment.sources),
        "label": assessment.labels.tolist(),
        "label_name": [assessment.class_names[label] for label in assessment.labels],
        "sha256": list(assessment.digests),
    }
    for run in assessment.runs:
        prefix = f"{run.run.params.attack_type}_{run.run.run_id[:8]}_"
        columns: dict[str, list[object]] = {
            name: [""] * len(assessment.labels)
            for name in ("attacked", "fooled", "queries", "min_th")
        }
        for row, index in enumerate(run.indices.tolist()):
            min_th = run.logged.min_th[row]
            columns["attacked"][index] = bool(run.attacked[row])
            columns["fooled"][index] = bool(run.fooled[row])
            columns["queries"][index] = int(run.logged["queries"][row])
            columns["min_th"][index] = "" if min_th is None else min_th
        table |= {prefix + name: values for name, values in columns.items()}
    return table


def _threat_model(assessment: Assessment) -> Section:
    blocks: list[str] = []
    for run in assessment.runs:
        params, encoding = run.run.params, encoding_type(run.run.params.attack_type)
        max_iter, popsize = run.run.budget
        if params.th == SMALLEST_TH:
            allowed = (
                f"{encoding.threat('th', assessment.shape)}; the attack finds, for each "
                f"image, the smallest th from 1 to {run.run.th_max} at which it fools the "
                "model (several searches an image, walking down from th_max)"
            )
        else:
            allowed = encoding.threat(params.th, assessment.shape)
        goal = (
            "any class but the true one (untargeted)"
            if params.target < 0
            else f"the class {assessment.class_names[params.target]!r} (targeted)"
        )
        blocks.append(
            f"{encoding.title}, {run.label}: the attacker may change an image by "
            f"{allowed}. It sees only the model's scores "
            f"({run.run.model_outputs or 'as returned'}) for the images it submits: no "
            f"weights, no gradients (black box). It spends at most {max_iter * popsize:,} "
            f"queries a search ({run.run.strategy}, {max_iter} steps "
            f"of {popsize}, seed {params.seed}) and succeeds when the model answers {goal}."
        )
    blocks.append(
        "Images the model already misclassifies are not attacked: they count neither as "
        "fooled nor in the denominator of a success rate."
    )
    return Section("Threat model", blocks)


def _results(assessment: Assessment) -> Section:
    rows = []
    for run in assessment.runs:
        images, attacked, fooled = _count(run)
        low, high = metrics.wilson_interval(fooled, attacked)
        rows.append(
            [
                run.label,
                f"{run.run.budget[0]}x{run.run.budget[1]}",
                str(images),
                str(attacked),
                str(fooled),
                f"{fooled / attacked:.3f}" if attacked else "n/a",
                f"{low:.3f}-{high:.3f}",
                f"{run.run.metric('adversarial_accuracy'):.3f}",
                f"{run.run.metric('mean_queries'):,.0f}",
                outcome.figure(run.run.metric("median_queries_successful"), ",.0f"),
            ]
        )
    header = [
        "attack",
        "budget (steps x queries)",
        "images",
        "attacked (classified right)",
        "fooled",
        "success rate",
        "95% interval",
        "adversarial accuracy",
        "mean queries",
        "median queries (fooled)",
    ]
    return Section(
        "Results",
        [
            Table(header, rows),
            "Success rate = fooled / attacked: the denominator is the images the model "
            "classified correctly before the attack. Adversarial accuracy = images still "
            f"classified correctly / all images. Intervals: the {INTERVAL} of the success "
            "rate (a binomial proportion). Queries are the model calls an image cost, all "
            "counted.",
            *_small_sample(assessment.runs),
        ],
    )


def _curves(assessment: Assessment, folder: Path) -> Section:
    blocks: list[str | Picture] = []
    smallest = [run for run in assessment.runs if run.run.params.th == SMALLEST_TH]
    if smallest:
        lines: dict[str, dict[str, curves.Curve]] = {kind: {} for kind in ATTACK_TYPES}
        for run in smallest:
            if len(run.curve[0]):
                lines[run.run.params.attack_type][run.label] = run.curve
        curves.robustness_curves_plot(
            folder / names.ROBUSTNESS_CURVES,
            lines,
            title=f"{assessment.model_name}: accuracy left against th (each image's smallest th)",
        )
        blocks.append(
            Picture(
                names.ROBUSTNESS_CURVES,
                "Robust accuracy (share of all images still classified correctly) against "
                "th: L0 (pixels changed) and L∞ (largest change of a value) side by side.",
            )
        )
    fixed = [run for run in assessment.runs if run.run.params.th != SMALLEST_TH]
    if fixed:
        panels: dict[str, dict[str, list[dict[str, float]]]] = {}
        for run in fixed:
            _, attacked, fooled = _count(run)
            low, high = metrics.wilson_interval(fooled, attacked)
            panels.setdefault(run.run.params.attack_type, {}).setdefault(
                f"{run.run.strategy} {run.run.budget[0]}x{run.run.budget[1]}", []
            ).append(
                {
                    "th": run.run.params.th,
                    "success_rate": fooled / attacked if attacked else 0.0,
                    "success_rate_ci_low": low,
                    "success_rate_ci_high": high,
                }
            )
        curves.success_plot(
            folder / names.SUCCESS_VS_TH,
            panels,
            title=f"{assessment.model_name}: success rate at each fixed th, {INTERVAL}s",
        )
        blocks.append(Picture(names.SUCCESS_VS_TH, "Success rate against th, with 95% intervals."))
    return Section("Robustness curves", blocks)


def _smallest(assessment: Assessment) -> Section:
    rows = []
    for run in assessment.runs:
        if run.run.params.th != SMALLEST_TH:
            continue
        levels = _min_th(run)
        found = np.array([th for th in levels if th is not None], dtype=np.float64)
        quartiles = (
            [f"{value:g}" for value in np.percentile(found, [0, 25, 50, 75, 100])]
            if len(found)
            else ["n/a"] * 5
        )
        mean = f"{found.mean():.2f}" if len(found) else "n/a"
        rows.append(
            [
                run.label,
                str(len(levels)),
                str(len(found)),
                *quartiles,
                mean,
                f"{len(levels) - len(found)} (> {run.run.th_max})",
            ]
        )
    if not rows:
        return Section(
            "Smallest th per image", ["No run searched each image's smallest th (th=-1)."]
        )
    return Section(
        "Smallest th per image",
        [
            Table(
                [
                    "attack",
                    "attacked",
                    "fooled",
                    "min",
                    "25%",
                    "median",
                    "75%",
                    "max",
                    "mean",
                    "not fooled (th above th_max)",
                ],
                rows,
            ),
            "Over the fooled images: the smallest th that fooled each one (pixels for L0, "
            "largest change of a value on 0-255 for L∞). An image not fooled within th_max "
            "needs more, or resists this search.",
        ],
    )


def _per_class(assessment: Assessment) -> Section:
    header = ["class", "images", *(f"{run.label}: fooled / attacked" for run in assessment.runs)]
    rows = []
    for label, name in enumerate(assessment.class_names):
        images = int(np.sum(assessment.labels == label))
        if images == 0:
            continue
        cells = []
        for run in assessment.runs:
            of_class = assessment.labels[run.indices] == label
            attacked = int(np.sum(run.attacked & of_class))
            fooled = int(np.sum(run.fooled & of_class))
            cells.append(f"{fooled} / {attacked}" if attacked else "0 / 0")
        rows.append([name, str(images), *cells])
    return Section(
        "Per class",
        [
            Table(header, rows),
            "Per true class: images fooled of those attacked (classified right before). Few "
            "images per class make these rates rough; read them for patterns, not as figures.",
        ],
    )


def _examples(assessment: Assessment) -> Section:
    pictures: list[str | Picture] = [
        Picture(
            run.examples,
            f"{run.label}: original, adversarial and changed pixels, successes first "
            "(the attack run's examples.png).",
        )
        for run in assessment.runs
        if run.examples
    ]
    return Section("Examples", pictures or ["No run logged examples."])


def _reproduce(assessment: Assessment, *, tracking_uri: str, experiment: str) -> Section:
    commits = sorted({run.run.source_commit for run in assessment.runs if run.run.source_commit})
    lines = [f"git checkout {commit}" for commit in commits[:1]]
    lines.append(f"export MLFLOW_TRACKING_URI={shlex.quote(logins.shown(tracking_uri))}")
    for run in assessment.runs:
        lines.append(_attack_command(run, experiment))
    lines.append(
        f"mlflow run . -e report --env-manager local --experiment-name {shlex.quote(experiment)} "
        "-P run_ids=<the new attack runs' ids, comma-separated>"
    )
    note = (
        "From a checkout of pixel-threshold"
        + (" at the commit the attacks ran" if commits else "")
        + ", with the tracking store that holds the model. Each attack is seeded: it "
        "gives the same images and results again, whatever its batch size or sharding."
    )
    return Section("Reproduce", [note, Commands(lines)])


def _attack_command(run: AssessedRun, experiment: str) -> str:
    params = run.run.params
    max_iter, popsize = run.run.budget
    values = dataclasses.asdict(params) | {
        "model": run.run.model_uri,
        "data": run.run.data,
        "max_iter": max_iter,
        "popsize": popsize,
        "th_max": run.run.th_max or params.th_max,
    }
    defaults = dataclasses.asdict(AttackParams())
    shown = [
        name
        for name in values
        if name not in NO_EFFECT and (name in REPRODUCED or values[name] != defaults[name])
    ]
    options = " ".join(f"-P {name}={shlex.quote(str(values[name]))}" for name in shown)
    return (
        f"mlflow run . -e attack --env-manager local --experiment-name "
        f"{shlex.quote(experiment)} {options}"
    )
