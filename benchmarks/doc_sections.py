"""One writer for the benchmarks' sections of docs/benchmarks.md, so reruns replace their own figures.

Each benchmark owns the text between ``<!-- START -->`` and ``<!-- END -->`` markers; a rerun
replaces exactly that span (or appends it the first time) and leaves every other section alone.
"""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(start: str, end: str, title: str, lines: list[str], doc: Path = DOC) -> Path:
    """Replace (or append) the section between the ``start`` and ``end`` markers with ``## title`` + lines."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = "\n".join([start, f"## {title}", "", *lines, end])
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)
    return doc
