"""Shared test set-up: an isolated ledger and config, and vcrpy settings that keep secrets out of cassettes."""

from __future__ import annotations

import os
import re
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


# Key-shaped strings a server might echo back (in a body, an error message, x-request-id ...).
_KEY_SHAPES = re.compile(
    rb"(?:sk|rk|pk)[-_][A-Za-z0-9_\-]{16,}|r8_[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}"
    rb"|Bearer [A-Za-z0-9._\-]{16,}"
)
_MASK = b"REDACTED"


def _env_keys() -> list[bytes]:
    """The values of every provider's key env vars that are set: what a real recording would use."""
    from computekit.adapters import adapter_class, available

    names: set[str] = set()
    for provider in available():
        names.update(adapter_class(provider).defaults_for(provider)[1])
    return [os.environ[n].encode() for n in sorted(names) if len(os.environ.get(n, "")) >= 8]


def _scrub_bytes(data: bytes) -> bytes:
    for key in _env_keys():
        data = data.replace(key, _MASK)
    return _KEY_SHAPES.sub(_MASK, data)


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Drop credential headers, and mask any key (known, or key-shaped) in the other headers and the body."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in FILTERED_HEADERS:
            del headers[name]
        else:
            values = headers[name] if isinstance(headers[name], list) else [headers[name]]
            headers[name] = [_scrub_bytes(str(v).encode()).decode() for v in values]
    body = response.get("body", {})
    raw = body.get("string")
    if isinstance(raw, str):
        body["string"] = _scrub_bytes(raw.encode()).decode()
    elif isinstance(raw, bytes):
        body["string"] = _scrub_bytes(raw)
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


# PostgreSQL for the ledger and budget tests: one server per session (see tests/_postgres.py).
from _postgres import ledger_url, postgres_dsn, postgres_url  # noqa: E402, F401
