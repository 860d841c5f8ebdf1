"""How compare names what it draws and prints: runs (their names, plus a short id where
names repeat), models (as in run names, plus the train run's short id where two models
share a name), the lines of ``success_vs_th.png`` and each picture's title."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pixel_threshold.attack.encodings import ATTACK_TYPES
from pixel_threshold.attack.losses import default_loss
from pixel_threshold.runs import naming
from pixel_threshold.runs.records import LoggedRun

SHORT_ID = 8
"""Characters of a run id that tell two runs of one name apart."""


def run_labels(runs: Sequence[LoggedRun]) -> list[str]:
    """A label per run for legends: its name (its id if it has none), with the first 8
    characters of its id when another of ``runs`` has the same name."""
    names = [run.name or run.run_id for run in runs]
    repeated = Counter(names)
    return [
        f"{name} ({run.run_id[:SHORT_ID]})" if repeated[name] > 1 else name
        for name, run in zip(names, runs, strict=True)
    ]


def model_labels(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each comparison row's model as the pictures and the printed table name it: its
    name, with the first 8 characters of its train run's id (a file's path, a
    registered model's URI) where two models of ``rows`` share that name."""
    uris: dict[str, set[str]] = {}
    for row in rows:
        uris.setdefault(row["model"], set()).add(row["model_uri"])
    return [
        f"{row['model']} ({_short_model_id(row['model_uri'])})"
        if len(uris[row["model"]]) > 1
        else row["model"]
        for row in rows
    ]


def _short_model_id(model_uri: str) -> str:
    """``runs:/<train run id>/model`` -> the id's first 8 characters; else the URI."""
    scheme, _, rest = model_uri.partition(":/")
    return rest.split("/")[0][:SHORT_ID] if scheme == "runs" else model_uri


def line_label(row: Mapping[str, Any], model: str) -> str:
    """A line of ``success_vs_th.png``: ``model`` and the search setting of ``row``
    (``es``, strategy, budget; ``loss`` when not the default; the data when it is not
    the model's own)."""
    label = f"{model} es={row['es']} ({row['strategy']}) {row['max_iter']}x{row['popsize']}"
    if row["loss"] and row["loss"] != default_loss(None):
        label += f" loss={row['loss']}"
    if not row["model"].startswith(f"{row['data']}_"):
        label += f" on {row['data']}"
    return label


def success_lines(
    rows: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, list[Mapping[str, Any]]]]:
    """The fixed-th comparison ``rows`` as ``success_vs_th.png`` draws them: per attack
    type (in `ATTACK_TYPES` order), a line per model run and search setting
    (`line_label`). Runs of a line that repeat a th pair up in order, each pairing its
    own line (``(repeat 2)``, ...)."""
    panels: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for row, model in zip(rows, model_labels(rows), strict=True):
        lines = panels.setdefault(row["attack_type"], {})
        label, repeat = line_label(row, model), 1
        while any(other["th"] == row["th"] for other in lines.get(_repeated(label, repeat), [])):
            repeat += 1
        lines.setdefault(_repeated(label, repeat), []).append(row)
    return {kind: panels[kind] for kind in ATTACK_TYPES if kind in panels}


def _repeated(label: str, repeat: int) -> str:
    return label if repeat == 1 else f"{label} (repeat {repeat})"


def picture_title(what: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """A picture's title: ``what`` it draws, then what of the comparison ``rows`` it
    shows: ``6 attack runs: pixel, threshold; th=1, th=3; es=1 (differential
    evolution)`` and a line of models."""
    settings = [
        _listed([row["attack_type"] for row in rows], "attack types"),
        _listed([naming.th_name(row["th"], _whole(row["th_max"])) for row in rows], "th values"),
        _listed([f"es={row['es']} ({row['strategy']})" for row in rows], "strategies"),
    ]
    runs = f"{len(rows)} attack run{'' if len(rows) == 1 else 's'}"
    models = _listed(model_labels(rows), "models")
    return f"{what}\n{runs}: {'; '.join(settings)}\nmodel: {models}"


def _listed(values: Sequence[str], noun: str, most: int = 3) -> str:
    """The distinct ``values`` in order, comma-separated; more than ``most``: how many."""
    distinct = list(dict.fromkeys(values))
    return ", ".join(distinct) if len(distinct) <= most else f"{len(distinct)} {noun}"


def _whole(th_max: float) -> int:
    """A row's ``th_max`` as an integer (0 for a fixed th's NaN)."""
    return 0 if math.isnan(th_max) else int(th_max)
