"""Docs that are generated from the code stay equal to it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import computekit as ck
from computekit import _config, _docgen
from computekit._constants import DEFAULT_MAX_RETRIES
from computekit.cli import providers_markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


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


# ------------------------------------------------------------------------------------------------ generated references


@pytest.mark.parametrize("page", sorted(_docgen.PAGES))
def test_generated_reference_is_current(page: str) -> None:
    committed = (DOCS / page).read_text("utf-8")
    assert committed == _docgen.PAGES[page](), f"docs/{page} is stale: run `python -m computekit._docgen`"


def test_every_setting_has_a_description() -> None:
    assert _docgen.undocumented_settings() == [], "add Field(description=...) to these settings"


def test_configuration_reference_lists_every_key() -> None:
    """Every field of every settings table appears, with its default, in the committed page."""
    page = (DOCS / "reference" / "configuration.md").read_text("utf-8")
    adapters = [model for _, model in _docgen.adapter_sections()]
    assert adapters, "the built-in adapters declare settings (an API version, deployments ...)"
    for model in (_config.Settings, _config.ProviderConfig, _config.RouteConfig, _config.RetryConfig,
                  _config.RoutingConfig, _config.LedgerConfig, _config.BudgetConfig, *adapters):
        for name in model.model_fields:
            assert f"| `{name}` |" in page, f"{model.__name__}.{name} is missing"
    assert f"| `max_retries` | integer, ≥ 0, ≤ 20 | `{DEFAULT_MAX_RETRIES}` |" in page


def test_price_keys_are_described() -> None:
    from computekit.pricing._book import _TOKEN_KEYS

    assert set(_docgen.PRICE_KEYS) == set(_TOKEN_KEYS)


def test_cli_reference_lists_every_command_and_option() -> None:
    import typer.main

    from computekit.cli import app

    page = (DOCS / "reference" / "cli.md").read_text("utf-8")
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    assert len(commands) >= 6
    for name, cmd in commands.items():
        section = page.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            opt = param.opts[0]
            assert (f"`{opt}`" if opt.startswith("-") else f"`{opt.upper()}`") in section, f"{name} {opt}"


def test_docgen_check_mode_reports_stale_pages(tmp_path: Path) -> None:
    assert sorted(_docgen.write_pages(tmp_path, check=True)) == sorted(_docgen.PAGES)  # nothing there yet
    assert not (tmp_path / "reference").exists()  # --check writes nothing
    assert sorted(_docgen.write_pages(tmp_path)) == sorted(_docgen.PAGES)
    assert _docgen.write_pages(tmp_path, check=True) == []


# ------------------------------------------------------------------------------------------------ the site


def test_site_builds_strictly_and_documents_every_public_name(tmp_path: Path) -> None:
    """``mkdocs build --strict`` passes, and the API reference has an entry for every name in ``__all__``
    (the two without one are explained on the page)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (site / "api" / "index.html").read_text("utf-8")
    ids = set(re.findall(r'id="computekit\.([A-Za-z_]+)"', html))
    api_page = (DOCS / "api.md").read_text("utf-8")
    no_entry = {"__version__", "NOT_GIVEN"}
    for name in no_entry:
        assert f"`ck.{name}`" in api_page, f"api.md must explain {name}"
    missing = [n for n in ck.__all__ if n not in ids and n not in no_entry]
    assert missing == [], f"public names without an API reference entry: {missing}"
    # Docstrings' Sphinx roles render as code, not as ":meth:" text (docs/hooks.py), and the module-level verbs
    # show their arguments, not **kwargs.
    roles = re.findall(r":(?:meth|class|func|attr|mod|exc|data):", html)
    assert roles == [], f"{len(roles)} raw roles in the API reference"
    assert "**kwargs" not in html
    assert "max_tokens" in html.split('id="computekit.complete"', 1)[1].split('id="computekit.', 1)[0]


CODE_WIDTH = 88
"""The widest code line the site shows without a scroll bar (Material's content column)."""


def test_code_lines_fit_the_page() -> None:
    too_long = []
    for page in sorted(DOCS.rglob("*.md")):
        fence = None
        for number, line in enumerate(page.read_text("utf-8").splitlines(), 1):
            stripped = line.lstrip()
            if stripped.startswith(("```", "~~~")):
                fence = stripped[:3] if fence is None else (None if stripped.startswith(fence) else fence)
                continue
            if fence is None:
                continue
            included = _SNIPPET.fullmatch(stripped)
            lines = _snippet(*included.groups()) if included else [(f"{page.relative_to(DOCS)}:{number}", line)]
            too_long += [f"{where} ({len(text)} chars)" for where, text in lines if len(text) > CODE_WIDTH]
    assert too_long == [], "code lines cut behind a scroll bar: " + ", ".join(too_long)


_SNIPPET = re.compile(r'--8<-- "([^":]+)(?::(\w+))?"')


def _snippet(path: str, section: str | None) -> list[tuple[str, str]]:
    """The lines a ``--8<-- "path:section"`` include puts on the page (pymdownx.snippets' section markers)."""
    out, inside = [], section is None
    for number, text in enumerate((ROOT / path).read_text("utf-8").splitlines(), 1):
        if section is not None and f"--8<-- [start:{section}]" in text:
            inside = True
        elif section is not None and f"--8<-- [end:{section}]" in text:
            inside = False
        elif inside:
            out.append((f"{path}:{number}", text))
    return out


def test_nav_has_one_entry_per_page() -> None:
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text("utf-8"))["nav"]
    pages: list[str] = []
    titles: list[str] = []

    def walk(items: list[Any]) -> None:
        for item in items:
            for title, value in item.items():
                if isinstance(value, list):
                    walk(value)
                else:
                    pages.append(value)
                    titles.append(title.lower())

    walk(nav)
    assert len(pages) == len(set(pages)), "a page is in the nav twice"
    assert len(titles) == len(set(titles)), f"two nav entries share a title: {titles}"
