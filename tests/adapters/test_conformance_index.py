"""The whole of ``shared/conformance/``: every provider folder has a conformance module that exercises or lists
each of its files, and every file reads in one of the five formats that SOURCES.md describes.

Per-provider modules do the real checking (text, tool calls, usage, cost, errors); this one makes sure nothing
in the folder escapes them. ``replicate/`` belongs to ``predict()`` and trainings, which are not built yet: its
files are listed here with that reason, and each is still read, so the loader keeps handling its format.
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
    "replicate": "test_conformance_index",
}
FORMATS = {"vcrpy", "vcrpy-legacy-httpx", "pydantic-ai", "ruby-vcr", "openai-dotnet"}

_PREDICT = "predict() on Replicate lands with the serverless-GPU issue; this SDK has no Replicate adapter yet"
_TRAIN = "Replicate trainings land with the fine-tuning issue; this SDK has no Replicate adapter yet"
UNSUPPORTED: dict[str, str] = {
    "replicate/error-401-unauthenticated.yaml": _PREDICT,
    "replicate/models-predictions-create-blocking.yaml": _PREDICT,
    "replicate/predictions-cancel.yaml": _PREDICT,
    "replicate/predictions-create.yaml": _PREDICT,
    "replicate/predictions-get-succeeded.yaml": _PREDICT,
    "replicate/predictions-stream-sse.yaml": _PREDICT,
    "replicate/run-poll-until-succeeded.yaml": _PREDICT,
    "replicate/trainings-cancel.yaml": _TRAIN,
    "replicate/trainings-create-invalid-destination-404.yaml": _TRAIN,
    "replicate/trainings-create.yaml": _TRAIN,
    "replicate/trainings-get.yaml": _TRAIN,
}

ALL = files(*sorted(MODULES)) if conformance_dir().is_dir() else []


def test_every_provider_folder_has_a_module() -> None:
    d = require_conformance_dir()
    folders = {p.name for p in d.iterdir() if p.is_dir()}
    assert folders == set(MODULES), f"conformance folders without a module: {sorted(folders - set(MODULES))}"
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
    assert rel in UNSUPPORTED, f"{rel} is a new Replicate recording: list it here with why, or exercise it"
    for ex in load(rel):
        assert ex.host.endswith((".replicate.com", ".replicate.net"))
        assert 200 <= ex.status < 600
        if ex.content and ex.headers.get("content-type", "").startswith(("application/json", "application/problem")):
            assert isinstance(json.loads(ex.content), dict)


def test_replicate_list_names_real_files() -> None:
    require_conformance_dir()
    assert set(UNSUPPORTED) == set(files("replicate"))

