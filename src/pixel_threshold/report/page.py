"""A one-page document of titled sections, written twice: as a standalone HTML page
(its pictures inlined, so it opens anywhere, the MLflow UI's artifact view included)
and as Markdown for a ticket (its pictures beside it, by file name).

A section holds blocks: paragraphs, warnings, tables, pictures and commands. Cells
and text are plain strings, escaped for each format here.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MARKDOWN_ROWS = 12
"""Rows of a long table (`Table.listing`) shown in the Markdown; the rest are in its file."""
STYLE = (
    "body{font:14px/1.45 sans-serif;max-width:1240px;margin:24px auto;padding:0 16px;color:#222}"
    "h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;"
    "margin-top:28px}table{border-collapse:collapse;font-size:13px;margin:8px 0}"
    "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#eee}"
    "td:first-child,th:first-child{text-align:left}"
    ".warning{background:#fff4e0;border-left:4px solid #e69500;padding:6px 10px;margin:8px 0}"
    "pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:12px}"
    "img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}"
    ".meta{color:#555}"
)


@dataclass(frozen=True)
class Caution:
    """A caution the reader must not miss (a small sample, a wide interval)."""

    text: str


@dataclass(frozen=True)
class Table:
    """Rows of cells under a header (one of empty cells: none, in HTML). A table with a
    ``listing`` (the name of the file that holds every row) is long: folded away in
    HTML, cut to `MARKDOWN_ROWS` in Markdown."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    listing: str = ""


@dataclass(frozen=True)
class Picture:
    """A PNG in the page's folder, by file name, with its caption."""

    file: str
    caption: str


@dataclass(frozen=True)
class Commands:
    """Shell commands, one per line."""

    lines: Sequence[str]


Block = str | Caution | Table | Picture | Commands
"""A block of a section; a str is a paragraph."""


@dataclass(frozen=True)
class Section:
    title: str
    blocks: Sequence[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """The document: a title, lines of who and when under it, and its sections."""

    title: str
    meta: Sequence[str]
    sections: Sequence[Section]


def write_html(page: Page, folder: Path, name: str) -> Path:
    """Write ``page`` as ``folder/name``, one file: pictures (read from ``folder``)
    inlined as data URIs; return its path."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(page.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(page.title)}</h1>",
        *(f"<p class='meta'>{html.escape(line)}</p>" for line in page.meta),
    ]
    for section in page.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [_html_block(block, folder) for block in section.blocks]
    parts.append("</body></html>\n")
    path = folder / name
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _html_block(block: Block, folder: Path) -> str:
    if isinstance(block, str):
        return f"<p>{html.escape(block)}</p>"
    if isinstance(block, Caution):
        return f"<div class='warning'><b>Warning:</b> {html.escape(block.text)}</div>"
    if isinstance(block, Commands):
        return f"<pre>{html.escape(chr(10).join(block.lines))}</pre>"
    if isinstance(block, Picture):
        data = base64.b64encode((folder / block.file).read_bytes()).decode("ascii")
        return (
            f"<figure><img alt='{html.escape(block.file)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
        )
    cells = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
    header = f"<thead><tr>{cells}</tr></thead>" if any(block.header) else ""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in block.rows
    )
    table = f"<table>{header}<tbody>{rows}</tbody></table>"
    if not block.listing:
        return table
    return (
        f"<details><summary>all {len(block.rows)} rows (also in {html.escape(block.listing)})"
        f"</summary>{table}</details>"
    )


def write_markdown(page: Page, folder: Path, name: str) -> Path:
    """Write ``page`` as Markdown ``folder/name``, its pictures linked by file name (they
    travel with it); return its path."""
    lines = [f"# {page.title}", "", *(f"{line}  " for line in page.meta)]
    for section in page.sections:
        lines += ["", f"## {section.title}"]
        for block in section.blocks:
            lines += ["", *_markdown_block(block)]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, str):
        return [block]
    if isinstance(block, Caution):
        return [f"> **Warning:** {block.text}"]
    if isinstance(block, Commands):
        return ["```sh", *block.lines, "```"]
    if isinstance(block, Picture):
        return [f"![{block.caption}]({block.file})", "", f"*{block.caption}*"]
    rows = block.rows[:MARKDOWN_ROWS] if block.listing else block.rows
    lines = [_markdown_row(block.header), "|" + "---|" * len(block.header)]
    lines += [_markdown_row(row) for row in rows]
    if len(rows) < len(block.rows):
        lines += ["", f"... {len(block.rows) - len(rows)} more rows in {block.listing}"]
    return lines


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
