"""Shared test set-up: an isolated ledger and config, and vcrpy settings that keep secrets out of cassettes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"

# Headers that carry credentials or account identity: removed at record time.
FILTERED_HEADERS = [
    "authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "set-cookie",
    "openai-organization",
    "openai-project",
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config or writes the per-user ledger."""
    monkeypatch.setenv("COMPUTEKIT_LEDGER", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.delenv("COMPUTEKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in FILTERED_HEADERS:
            del headers[name]
    return response


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "filter_headers": FILTERED_HEADERS,
        "before_record_response": _scrub_response,
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """cassettes/<test module>/ — one folder per test module."""
    return str(CASSETTES / request.module.__name__.split(".")[-1])


def real_key(env: str, placeholder: str) -> str:
    """The real key when recording (set in the environment), else a placeholder for replay."""
    return os.environ.get(env) or placeholder
