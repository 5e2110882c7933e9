"""The whole of ``shared/conformance/``: every provider folder has a conformance module that exercises or lists
each of its files, and every file reads in one of the five formats that SOURCES.md describes.

Per-provider modules do the real checking (text, tool calls, usage, cost, errors); this one makes sure nothing
in the folder escapes them. ``replicate/`` is exercised by ``test_replicate_conformance`` (predictions), which lists
the trainings files with their reason; each file is still read here, so the loader keeps handling its format.
"""

from __future__ import annotations

import importlib
import json

import pytest
from _conformance import conformance_dir, detect_format, files, load, require_conformance_dir

pytestmark = pytest.mark.conformance

# Provider folder -> the test module that exercises or lists its files.
MODULES = {
    "openai": "test_openai_conformance",
    "openai-compatible": "test_openai_conformance",
    "anthropic": "test_anthropic_conformance",
    "cohere": "test_cohere_conformance",
    "ai21": "test_ai21_conformance",
    "replicate": "test_replicate_conformance",
    "openrouter": "test_openrouter_conformance",
    "bedrock": "test_bedrock_conformance",
    "google": "test_gemini_conformance",
    "openai-responses": "test_openai_responses_conformance",
}
# Provider folder -> why it is not exercised yet. Each entry goes when the adapter that speaks its wire format lands
# (and its module joins MODULES); until then the folder is accounted for here, so a new folder still fails at once.
NOT_YET: dict[str, str] = {}
FORMATS = {"vcrpy", "vcrpy-legacy-httpx", "pydantic-ai", "ruby-vcr", "openai-dotnet"}

ALL = files(*sorted(MODULES)) if conformance_dir().is_dir() else []


def test_every_provider_folder_has_a_module() -> None:
    d = require_conformance_dir()
    folders = {p.name for p in d.iterdir() if p.is_dir()}
    assert not set(MODULES) & set(NOT_YET), "a folder is both exercised and listed as not yet"
    accounted = set(MODULES) | set(NOT_YET)
    assert folders == accounted, f"conformance folders without a module: {sorted(folders - accounted)}"
    for module in set(MODULES.values()):
        importlib.import_module(module)


def test_every_file_reads_in_one_of_the_five_formats() -> None:
    require_conformance_dir()
    seen = {detect_format(rel) for rel in ALL}
    assert seen == FORMATS, f"formats read: {sorted(seen)}; expected all of {sorted(FORMATS)}"
    for rel in ALL:
        assert load(rel), f"{rel} holds no exchanges"


@pytest.mark.parametrize("rel", files("replicate") or [pytest.param(None, id="conformance-dir-missing")])
def test_replicate_files_are_listed_and_read(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    from test_replicate_conformance import UNSUPPORTED, kind

    exchanges = load(rel)
    assert rel in UNSUPPORTED or any(kind(ex) for ex in exchanges), f"{rel}: neither exercised nor listed"
    for ex in exchanges:
        assert ex.host.endswith((".replicate.com", ".replicate.net"))
        assert 200 <= ex.status < 600
        if ex.content and ex.headers.get("content-type", "").startswith(("application/json", "application/problem")):
            assert isinstance(json.loads(ex.content), dict)


def test_replicate_list_names_real_files() -> None:
    from test_replicate_conformance import UNSUPPORTED

    require_conformance_dir()
    assert set(UNSUPPORTED) <= set(files("replicate"))
    assert all("trainings" in rel and "fine-tuning" in why for rel, why in UNSUPPORTED.items())

