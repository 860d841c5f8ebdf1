"""A table (columns of equal length) as a standalone HTML page."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STYLE = (
    "table{border-collapse:collapse;font:13px sans-serif}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}"
    "th{background:#eee}td:first-child,th:first-child{text-align:left}"
)


def html_table(path: Path, table: Mapping[str, Sequence[Any]], title: str) -> None:
    """Write ``table`` as an HTML page titled ``title`` at ``path``; floats to 4
    significant digits, NaN as an empty cell, every value escaped."""
    rows = len(next(iter(table.values()), ()))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in table)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(values[row])}</td>" for values in table.values()) + "</tr>"
        for row in range(rows)
    )
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h3>{html.escape(title)}</h3>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></body></html>\n",
        encoding="utf-8",
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))
