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


def load_spec() -> dict[str, Any]:
    """The spec's schemas (cached); the test is skipped when the spec is absent, and fails with ``CI`` set."""
    if not spec_path().is_file():
        msg = f"OpenAI OpenAPI spec not found at {spec_path()}: set COMPUTEKIT_SPECS_DIR"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return _spec()


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """The spec's schemas, loaded once per session (about 3 MB of YAML)."""
    return load_spec()


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
    ("test_openai_compatible/deepseek_reasoning_tool_round_trip.yaml", 0): {
        "choices/0/message": "DeepSeek's message has no 'refusal' (api-docs.deepseek.com, chat completion response)",
    },
    ("test_openai_compatible/deepseek_reasoning_tool_round_trip.yaml", 2): {
        "choices/0/message": "DeepSeek's message has no 'refusal' (api-docs.deepseek.com, chat completion response)",
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


# ------------------------------------------------------------------------------------------------ Replicate
# Every authored Replicate interaction (cassettes/test_replicate*/) against ``../shared/specs/replicate-openapi.json``
# by endpoint: prediction requests and responses, model / version / deployment lookups, and the server-sent
# events of ``urls.stream`` (whose event names are Replicate's documented ones).

REPLICATE_API = "https://api.replicate.com/v1/"
REPLICATE_EVENTS = {"output", "logs", "error", "done"}


def replicate_spec_path() -> Path:
    return spec_path().with_name("replicate-openapi.json")


def replicate_cassettes() -> list[Path]:
    return sorted(p for folder in sorted(CASSETTES.glob("test_replicate*")) for p in folder.glob("*.yaml"))


@cache
def _replicate_schemas() -> dict[str, Any]:
    doc = json.loads(replicate_spec_path().read_text("utf-8"))
    return {"components": {"schemas": _nullable(doc["components"]["schemas"])}}


@cache
def _replicate_validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **_replicate_schemas()})


def replicate_errors(name: str, instance: Any) -> list[str]:
    assert name in _replicate_schemas()["components"]["schemas"], f"{name} is not in the Replicate spec"
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}"
            for e in _replicate_validator(name).iter_errors(instance)]


@pytest.fixture(scope="session")
def replicate_spec() -> None:
    if not replicate_spec_path().is_file():
        msg = f"Replicate OpenAPI description not found at {replicate_spec_path()}: set COMPUTEKIT_SPECS_DIR"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def replicate_response_schema(method: str, path: str) -> str:
    """The spec's response schema for a Replicate endpoint (paths as in the spec's ``paths``)."""
    parts = path.removeprefix("/v1/").strip("/").split("/")
    if method == "POST" and (parts[-1] == "predictions" or parts[-1] == "cancel"):
        return "schemas_prediction_response"
    if method == "GET" and parts[0] == "predictions":
        return "schemas_prediction_response"
    if method == "GET" and parts[0] == "deployments" and len(parts) == 3:
        return "schemas_deployment_response"
    if method == "GET" and parts[0] == "models" and len(parts) == 3:
        return "schemas_model_response"
    if method == "GET" and parts[0] == "models" and len(parts) == 5 and parts[3] == "versions":
        return "schemas_version_response"
    raise AssertionError(f"no Replicate schema known for {method} {path}")


def _replicate_interactions() -> list[Any]:
    return [pytest.param(path, i, id=f"{path.parent.name}/{path.name}#{i}")
            for path in replicate_cassettes() for i, _ in enumerate(_load(path)["interactions"])]


def test_replicate_cassettes_exist() -> None:
    names = {p.name for p in replicate_cassettes()}
    assert {"invalid_input.yaml", "deployment_hardware.yaml", "official_tokens.yaml", "stream.yaml"} <= names


@pytest.mark.parametrize(("path", "index"), _replicate_interactions())
def test_replicate_interaction_matches_the_spec(replicate_spec: None, path: Path, index: int) -> None:
    inter = _load(path)["interactions"][index]
    req, resp = inter["request"], inter["response"]
    status = resp["status"]["code"]
    headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in resp["headers"].items()}
    body = resp["body"]["string"]
    if headers.get("content-type", "").startswith("text/event-stream"):
        # The stream URL comes from a prediction's urls.stream (checked below); its events are Replicate's.
        events = [blk for blk in body.split("\n\n") if blk.strip()]
        names = [line.split(": ", 1)[1] for ev in events for line in ev.splitlines() if line.startswith("event:")]
        assert set(names) <= REPLICATE_EVENTS, names
        assert names[-1] == "done"
        return
    assert req["uri"].startswith(REPLICATE_API)
    if req["body"]:
        sent = json.loads(req["body"])
        name = "schemas_version_prediction_request" if "version" in sent else "schemas_prediction_request"
        assert not replicate_errors(name, sent)
    data = json.loads(body)
    if status >= 400:
        assert set(data) >= {"title", "detail", "status"}
        return
    name = replicate_response_schema(req["method"], urlsplit(req["uri"]).path)
    assert not replicate_errors(name, data), name
    if name == "schemas_version_response" or (name == "schemas_model_response" and data.get("latest_version")):
        version = data if name == "schemas_version_response" else data["latest_version"]
        # computekit reads the input schema from here: it must be the OpenAPI document Cog publishes
        assert isinstance(version["openapi_schema"]["components"]["schemas"]["Input"]["properties"], dict)
    if name == "schemas_deployment_response":
        assert isinstance(data["current_release"]["configuration"]["hardware"], str)


def test_replicate_stream_urls_point_at_the_recorded_stream(replicate_spec: None) -> None:
    for path in replicate_cassettes():
        inters = _load(path)["interactions"]
        streams = {i["request"]["uri"] for i in inters if i["request"]["uri"].startswith("https://stream.")}
        if not streams:
            continue
        advertised = {json.loads(i["response"]["body"]["string"])["urls"].get("stream") for i in inters
                      if "/predictions" in i["request"]["uri"] and not i["request"]["uri"].startswith("https://stream.")}
        assert streams <= advertised, path.name


def test_replicate_validation_is_not_vacuous(replicate_spec: None) -> None:
    assert replicate_errors("schemas_deployment_response", {"current_release": {"configuration": {"hardware": 3}}})
    assert replicate_errors("schemas_model_response", {"visibility": "secret"})
    assert replicate_errors("schemas_version_response", {"openapi_schema": "not an object"})
    assert replicate_errors("schemas_version_response", {"id": "v", "openapi_schema": None}) == []  # nullable
    assert replicate_errors("schemas_prediction_request", {"input": "x"})
