"""Docs that are generated from the code stay equal to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from computekit.cli import providers_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_providers_table_matches_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)  # Azure's default base URL comes from it
    page = (DOCS / "providers" / "index.md").read_text("utf-8")
    start, end = "<!-- providers-table:start -->\n", "<!-- providers-table:end -->"
    assert start in page
    assert end in page
    table = page.split(start, 1)[1].split(end, 1)[0]
    expected = providers_markdown()
    assert table == expected, "docs/providers/index.md is stale: paste `computekit providers --markdown`\n" + expected
    for row in expected.splitlines()[2:]:
        assert row.count("|") == 7
