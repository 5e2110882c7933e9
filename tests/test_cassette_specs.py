"""The authored cassettes are what OpenAI documents, and hold no secrets.

Every JSON response body (and every SSE chunk) in cassettes/test_openai*/ and cassettes/test_azure/ is validated
against its schema in ``../shared/specs/openai-openapi.yaml`` (OpenAPI 3.1, whose schema dialect is JSON Schema
2020-12; the few OpenAPI 3.0 ``nullable: true`` left in the file are turned into ``null`` alternatives). A
hand-written cassette that drifts from the spec fails here, instead of teaching the adapters a wrong shape.

Each cassette starts with ``# AUTHORED: written from ... , not recorded.``; one replaced by a real recording must
start with ``# RECORDED: <date>`` instead (and is still validated).
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
FOLDERS = ("test_openai", "test_openai_compatible", "test_azure")


def spec_path() -> Path:
    env = os.environ.get("COMPUTEKIT_SPECS_DIR")
    base = Path(env) if env else ROOT.parent / "shared" / "specs"
    return base / "openai-openapi.yaml"


def cassette_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (CASSETTES / folder).glob("*.yaml"))


# ------------------------------------------------------------------------------------------------ schemas


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` -> a JSON Schema ``null`` alternative (recursively)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str) and "$ref" not in out and "allOf" not in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            keep = {k: out.pop(k) for k in ("description", "deprecated") if k in out}
            out = {"anyOf": [out, {"type": "null"}], **keep}
    return out


@cache
def _spec() -> dict[str, Any]:
    path = spec_path()
    with path.open("rb") as f:
        doc = yaml.load(f, Loader=yaml.CSafeLoader)
    return {"components": {"schemas": _nullable(doc["components"]["schemas"])}}


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """The spec's schemas, loaded once per session (about 3 MB of YAML)."""
    if not spec_path().is_file():
        msg = f"OpenAI OpenAPI spec not found at {spec_path()}: set COMPUTEKIT_SPECS_DIR"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return _spec()


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = {"$ref": f"#/components/schemas/{name}", **_spec()}
    Draft202012Validator.check_schema({"$ref": schema["$ref"]})
    return Draft202012Validator(schema)


def errors(spec: dict[str, Any], name: str, instance: Any) -> list[str]:
    assert name in spec["components"]["schemas"], f"{name} is not in the spec"
    out = []
    for e in _validator(name).iter_errors(instance):
        where = "/".join(str(p) for p in e.absolute_path)
        out.append(f"{where}: {e.message[:300]}")
    return out


# ------------------------------------------------------------------------------------------------ cassettes


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
    return doc


def _interactions() -> list[Any]:
    out = []
    for path in cassette_files():
        for i, _ in enumerate(_load(path)["interactions"]):
            out.append(pytest.param(path, i, id=f"{path.parent.name}/{path.name}#{i}"))
    return out


def schema_for(path: str, status: int, content_type: str) -> str:
    if status >= 400:
        return "ErrorResponse"
    if path.endswith("/chat/completions"):
        return (
            "CreateChatCompletionStreamResponse"
            if content_type == "text/event-stream"
            else ("CreateChatCompletionResponse")
        )
    if path.endswith("/embeddings"):
        return "CreateEmbeddingResponse"
    if path.endswith("/completions"):  # legacy, including GooseAI's engines/{engine}/completions
        return "CreateCompletionResponse"
    raise AssertionError(f"no schema known for {path}")


# Where a provider documents a different shape from OpenAI's, the deviation is named here (path -> reason).
KNOWN_DEVIATIONS: dict[tuple[str, int], dict[str, str]] = {
    ("test_azure/content_filter.yaml", 0): {
        "error/type": "Azure's content-filter error has type null (Microsoft's documented example)",
    },
    ("test_openai_compatible/groq_chat.yaml", 0): {
        "service_tier": "Groq names its default tier 'on_demand' (as in the real Groq conformance recording)",
    },
}


def test_cassettes_exist() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in cassette_files()}
    for folder in FOLDERS:
        assert any(n.startswith(folder + "/") for n in names), f"no cassettes in {folder}"


@pytest.mark.parametrize(("path", "index"), _interactions())
def test_response_matches_openapi_schema(spec: dict[str, Any], path: Path, index: int) -> None:
    inter = _load(path)["interactions"][index]
    resp = inter["response"]
    headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in resp["headers"].items()}
    content_type = headers.get("content-type", "").split(";")[0].strip()
    status = resp["status"]["code"]
    name = schema_for(urlsplit(inter["request"]["uri"]).path, status, content_type)
    body = resp["body"]["string"]
    allowed = KNOWN_DEVIATIONS.get((f"{path.parent.name}/{path.name}", index), {})

    if content_type == "text/event-stream":
        events = [blk[len("data: ") :] for blk in body.split("\n\n") if blk.startswith("data: ")]
        assert events[-1] == "[DONE]"
        problems = [f"chunk {i}: {e}" for i, ev in enumerate(events[:-1]) for e in errors(spec, name, json.loads(ev))]
        assert not problems, "\n".join(problems)
        return
    assert content_type == "application/json"
    found = errors(spec, name, json.loads(body))
    unexpected = [e for e in found if e.split(":")[0] not in allowed]
    assert not unexpected, f"{name}:\n" + "\n".join(unexpected)
    assert {e.split(":")[0] for e in found} == set(allowed), "a listed deviation no longer occurs: remove it"


def test_validation_is_not_vacuous(spec: dict[str, Any]) -> None:
    """Wrong shapes are rejected: the schemas resolved, and nullable fields still accept null."""
    assert errors(spec, "CreateChatCompletionResponse", {"id": "x", "object": "chat.completion"})
    assert errors(
        spec,
        "CreateEmbeddingResponse",
        {"object": "list", "data": [{"index": 0}], "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}},
    )
    assert errors(spec, "ErrorResponse", {"error": {"message": "m"}})
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": None}
    assert errors(spec, "CreateChatCompletionStreamResponse", chunk) == []
    assert errors(spec, "CreateChatCompletionStreamResponse", {**chunk, "usage": {"prompt_tokens": "1"}})


def test_request_bodies_are_json(spec: dict[str, Any]) -> None:
    """Request bodies are stored as JSON (vcrpy matches on them) with a JSON content type."""
    for path in cassette_files():
        for inter in _load(path)["interactions"]:
            req = inter["request"]
            json.loads(req["body"])
            ctype = {k.lower(): v for k, v in req["headers"].items()}.get("content-type", [""])
            assert "application/json" in ctype[0], path


# ------------------------------------------------------------------------------------------------ marker & secrets

MARKER = re.compile(r"^# (AUTHORED: written from .+, not recorded\.|RECORDED: \d{4}-\d{2}-\d{2}.*)$")
SECRET_PATTERNS = [
    re.compile(r"\bsk-(?:proj-|svcacct-|ant-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI / Anthropic keys
    re.compile(r"Bearer\s+[A-Za-z0-9._~+/=\-]{20,}"),  # bearer tokens
    re.compile(r"\b(?:gsk|r8|xai)_[A-Za-z0-9]{20,}"),  # Groq, Replicate, xAI
    re.compile(r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),  # JWTs
    re.compile(r"[?&](?:api[-_]?key|key)=[A-Za-z0-9_\-]{16,}"),  # keys in query strings
]
CREDENTIAL_HEADERS = {
    "authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "set-cookie",
    "openai-organization",
    "openai-project",
    "proxy-authorization",
}


@pytest.mark.parametrize("path", cassette_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_marker_and_no_secrets(path: Path) -> None:
    text = path.read_text("utf-8")
    first = text.splitlines()[0]
    assert MARKER.match(first), f"{path.name} must start with '# AUTHORED: written from ..., not recorded.'"
    for pattern in SECRET_PATTERNS:
        hit = pattern.search(text)
        assert hit is None, f"{path.name} contains a key-shaped string: {hit.group(0)[:12]}..."
    for inter in _load(path)["interactions"]:
        for side in ("request", "response"):
            names = {k.lower() for k in inter[side].get("headers", {})}
            assert not names & CREDENTIAL_HEADERS, f"{path.name}: {side} carries {names & CREDENTIAL_HEADERS}"


def test_secret_patterns_catch_real_shapes() -> None:
    """The scanner is not vacuous: it flags the shapes it is meant to."""
    samples = [
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789",
        "gsk_AbCdEfGhIjKlMnOpQrStUvWxYz01",
        "https://x.example/v1?api_key=abcdef0123456789abcd",
    ]
    for s in samples:
        assert any(p.search(s) for p in SECRET_PATTERNS), s
    assert not any(p.search("sk-test-placeholder") for p in SECRET_PATTERNS)


# ------------------------------------------------------------------------------------------------ fine-tuning
# cassettes/test_finetune_providers/: Azure's bodies are OpenAI's shapes (files, fine-tuning jobs) and are checked
# against the spec; the other hosts' (Together, Mistral, Fireworks) are outside it and only get the marker and
# secret checks.

FINETUNE = CASSETTES / "test_finetune_providers"
FINETUNE_SCHEMAS = {"/openai/files": "OpenAIFile", "/openai/fine_tuning/jobs": "FineTuningJob"}


def _finetune_schema(path: str) -> str:
    for prefix, name in FINETUNE_SCHEMAS.items():
        if path.startswith(prefix):
            return name
    raise AssertionError(f"no schema known for {path}")


def test_azure_fine_tuning_bodies_match_openapi_schemas(spec: dict[str, Any]) -> None:
    checked = 0
    for path in sorted(FINETUNE.glob("test_azure_*.yaml")):
        for inter in _load(path)["interactions"]:
            name = _finetune_schema(urlsplit(inter["request"]["uri"]).path)
            found = errors(spec, name, json.loads(inter["response"]["body"]["string"]))
            assert not found, f"{path.name} {name}:\n" + "\n".join(found)
            checked += 1
    assert checked == 3
    assert errors(spec, "FineTuningJob", {"object": "fine_tuning.job", "id": "x"})  # not vacuous


@pytest.mark.parametrize("path", sorted(FINETUNE.glob("*.yaml")), ids=lambda p: p.name)
def test_finetune_cassettes_are_marked_and_hold_no_secrets(path: Path) -> None:
    test_marker_and_no_secrets(path)
