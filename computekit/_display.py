"""How results read: a one-line ``repr`` with the facts a person looks for (what answered, a text preview, tokens,
cost), and an HTML table for notebooks (``_repr_html_``). Every field is still an attribute; ``raw`` and the
vectors are never printed whole.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["Shown", "html_table", "preview"]

PREVIEW_CHARS: Final = 60
"""Characters of text (or output) shown in a repr; the HTML view shows up to ``HTML_CHARS``."""
HTML_CHARS: Final = 2000


class Shown(str):
    """A repr field shown as written (``cost=$0.0012``, not ``cost='$0.0012'``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """``value`` as text on one line, cut at ``limit`` characters with an ellipsis."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_table(title: str, rows: Iterable[tuple[str, Any]]) -> str:
    """A small two-column HTML table: ``title`` above, one escaped ``label | value`` line per row."""
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(label)}</th>"
        f"<td style='text-align:left;white-space:pre-wrap'>{html.escape(str(value))}</td></tr>"
        for label, value in rows
        if value is not None and value != ""
    )
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>{body}</table>"
