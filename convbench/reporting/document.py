"""The report as data, and its two renderers.

A report is a list of :class:`Section` objects (title, introduction, blocks of
:class:`Table`, :class:`Figure` or Markdown text). :func:`to_markdown` renders them for
``tables.md`` and ``report.md``; :func:`to_html` renders the same Markdown with
python-markdown (tables extension) into one self-contained page, figures embedded as
data URIs. Renderers only format; they never compute.
"""

from __future__ import annotations

import base64
import html as _html
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Table", "Figure", "Section", "md_table", "to_markdown", "to_html"]


def md_table(headers: list[str], rows: list[list], align: list[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


@dataclass
class Table:
    """Header, rows of already formatted cells, and per-column alignment (``l``/``r``;
    default: first column left, the rest right)."""

    headers: list
    rows: list
    align: list | None = None

    def markdown(self) -> str:
        return md_table(self.headers, self.rows, self.align)


@dataclass
class Figure:
    """A written plot: its title, what it shows, and the PNG/SVG paths relative to the
    result directory."""

    title: str
    what: str
    png: str
    svg: str


@dataclass
class Section:
    """One titled part of the report. ``blocks`` hold :class:`Table`, :class:`Figure` or
    Markdown strings (paragraphs, lists); ``level`` is the heading depth (1 = document title)."""

    title: str
    intro: str = ""
    blocks: list = field(default_factory=list)
    level: int = 2
    key: str = ""


def _figure_md(f: Figure, base: Path | None) -> str:
    src = f.png
    if base is not None:  # embedded: one self-contained file
        path = Path(base) / f.png
        src = ("data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()) if path.is_file() \
            else f.png
    return f"### {f.title}\n\n{f.what} ([SVG]({f.svg}))\n\n![{f.title}]({src})\n"


def to_markdown(sections: list[Section], *, embed_from: Path | None = None) -> str:
    """Markdown text of ``sections``; ``embed_from``: inline figures as data URIs read from
    that directory (for the HTML page)."""
    out = []
    for s in sections:
        out.append("#" * s.level + " " + s.title + "\n")
        if s.intro:
            out.append(s.intro.rstrip() + "\n")
        for b in s.blocks:
            if isinstance(b, Table):
                out.append(b.markdown() + "\n")
            elif isinstance(b, Figure):
                out.append(_figure_md(b, embed_from))
            else:
                out.append(str(b).rstrip() + "\n")
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px}"
        "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
        "code{background:#f5f5f5;padding:0 3px}h1,h2,h3{border-bottom:1px solid #eee}")


def to_html(sections: list[Section], base: Path, title: str = "convbench report") -> str:
    """One self-contained HTML page: the sections' Markdown through python-markdown, figures
    embedded from ``base``."""
    import markdown
    body = markdown.markdown(to_markdown(sections, embed_from=Path(base)), extensions=["tables"],
                             output_format="html")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
