"""The examples' cassettes are marked, keyless, and shaped like the real APIs.

Every response body to OpenAI (chat completions, files, fine-tuning jobs, batches, batch output lines), Anthropic
or Replicate in ``examples/cassettes/`` is validated against that provider's OpenAPI description in
``../shared/specs/`` (the same specs the adapters' cassettes are checked against). Mistral publishes no spec in
that folder; its body follows Mistral's API reference and is parsed by the example's test.
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
from test_cassette_specs import CREDENTIAL_HEADERS, MARKER, SECRET_PATTERNS, _nullable

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "examples" / "cassettes"
SPEC_FILES = {
    "api.openai.com": "openai-openapi.yaml",
    "api.anthropic.com": "anthropic-openapi.yaml",
    "api.replicate.com": "replicate-openapi.json",
}


def specs_dir() -> Path:
    env = os.environ.get("COMPUTEKIT_SPECS_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "specs"


@cache
def _schemas(filename: str) -> dict[str, Any]:
    path = specs_dir() / filename
    text = path.read_text("utf-8")
    doc = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=yaml.CSafeLoader)
    # OpenAPI 3.0's ``nullable: true`` (left in the OpenAI and Replicate files) -> a JSON Schema null alternative.
    return {"components": {"schemas": _nullable(doc["components"]["schemas"])}}


def schema_errors(filename: str, name: str, instance: Any) -> list[str]:
    from jsonschema import Draft202012Validator

    schemas = _schemas(filename)
    assert name in schemas["components"]["schemas"], f"{name} is not in {filename}"
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{name}", **schemas})
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(instance)]


@pytest.fixture(scope="module")
def specs() -> None:
    missing = [f for f in SPEC_FILES.values() if not (specs_dir() / f).is_file()]
    if missing:
        msg = f"OpenAPI specs {missing} not found in {specs_dir()}: set COMPUTEKIT_SPECS_DIR"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def cassettes() -> list[Path]:
    return sorted(CASSETTES.glob("*.yaml"))


def _interactions() -> list[Any]:
    return [
        pytest.param(path, i, id=f"{path.name}#{i}")
        for path in cassettes()
        for i, _ in enumerate(yaml.safe_load(path.read_text("utf-8"))["interactions"])
    ]


def _schema_name(host: str, path: str, status: int) -> str | None:
    """The schema a response body must match, or ``None`` for a host with no spec (Mistral, file downloads)."""
    if host == "api.openai.com":
        if status >= 400:
            return "ErrorResponse"
        if path.startswith("/v1/files") and path.endswith("/content"):
            return "BatchOutput"  # a batch's output file: JSONL, each line's body a chat completion
        if path.startswith("/v1/files"):
            return "OpenAIFile"
        if path.startswith("/v1/batches"):
            return "Batch"
        if path.startswith("/v1/fine_tuning/jobs"):
            return "FineTuningJob"
        return "CreateChatCompletionResponse"
    if host == "api.anthropic.com":
        return "ErrorResponse" if status >= 400 else "Message"
    if host == "api.replicate.com":
        return "schemas_version_response" if "/versions/" in path else "schemas_prediction_response"
    return None


def test_there_are_example_cassettes() -> None:
    assert len(cassettes()) >= 7
    assert len(_interactions()) >= 19


@pytest.mark.parametrize("path", cassettes(), ids=lambda p: p.name)
def test_marked_authored_and_keyless(path: Path) -> None:
    text = path.read_text("utf-8")
    assert MARKER.match(text.splitlines()[0]), f"{path.name} must start with '# AUTHORED: ..., not recorded.'"
    for pattern in SECRET_PATTERNS:
        assert pattern.search(text) is None, f"{path.name} holds a key-shaped string"
    for inter in yaml.safe_load(text)["interactions"]:
        for side in ("request", "response"):
            names = {k.lower() for k in inter[side].get("headers", {})}
            assert not names & CREDENTIAL_HEADERS, f"{path.name}: {side} carries {names & CREDENTIAL_HEADERS}"


@pytest.mark.usefixtures("specs")
@pytest.mark.parametrize(("path", "index"), _interactions())
def test_bodies_match_the_providers_specs(path: Path, index: int) -> None:
    inter = yaml.safe_load(path.read_text("utf-8"))["interactions"][index]
    url = urlsplit(inter["request"]["uri"])
    host = url.hostname or ""
    resp = inter["response"]
    status = resp["status"]["code"]
    name = _schema_name(host, url.path, status)
    if name is None:
        assert host in ("api.mistral.ai", "replicate.delivery"), f"no spec check for {host}"
        return
    spec = SPEC_FILES[host]
    body = resp["body"]["string"]
    ctype = resp["headers"]["content-type"][0].split(";")[0]
    problems: list[str] = []
    if name == "BatchOutput":
        assert ctype == "application/octet-stream"
        for i, raw in enumerate(body.splitlines()):
            line = json.loads(raw)
            assert set(line) == {"id", "custom_id", "response", "error"}, f"line {i}"
            schema = "CreateChatCompletionResponse" if line["response"]["status_code"] == 200 else "ErrorResponse"
            problems += [f"line {i}: {e}" for e in schema_errors(spec, schema, line["response"]["body"])]
    elif ctype == "text/event-stream":
        assert host == "api.openai.com"
        events = [b[len("data: "):] for b in body.split("\n\n") if b.startswith("data: ")]
        assert events[-1] == "[DONE]"
        for i, event in enumerate(events[:-1]):
            problems += [f"chunk {i}: {e}" for e in
                         schema_errors(spec, "CreateChatCompletionStreamResponse", json.loads(event))]
    else:
        assert ctype == "application/json"
        problems = schema_errors(spec, name, json.loads(body))
    if host == "api.replicate.com" and inter["request"]["body"]:
        request = json.loads(inter["request"]["body"])
        request_schema = "schemas_version_prediction_request" if "version" in request else "schemas_prediction_request"
        problems += [f"request: {e}" for e in schema_errors(spec, request_schema, request)]
    assert not problems, "\n".join(problems)


@pytest.mark.usefixtures("specs")
def test_validation_is_not_vacuous() -> None:
    """A wrong shape is caught for each of the three specs."""
    assert schema_errors(SPEC_FILES["api.openai.com"], "ErrorResponse", {"error": {"message": "m"}})
    assert schema_errors(SPEC_FILES["api.anthropic.com"], "ErrorResponse",
                         {"type": "error", "error": {"type": "overloaded_error"}, "request_id": None})
    assert schema_errors(SPEC_FILES["api.replicate.com"], "schemas_prediction_response",
                         {"id": "x", "status": "starting"})
    assert schema_errors(SPEC_FILES["api.openai.com"], "FineTuningJob", {"object": "fine_tuning.job", "id": "x"})
    assert schema_errors(SPEC_FILES["api.openai.com"], "OpenAIFile", {"object": "file", "id": "file-x"})
    good = json.loads(yaml.safe_load((CASSETTES / "replicate_image.yaml").read_text("utf-8"))
                      ["interactions"][1]["response"]["body"]["string"])
    assert schema_errors(SPEC_FILES["api.replicate.com"], "schemas_prediction_response", good) == []
    assert schema_errors(SPEC_FILES["api.replicate.com"], "schemas_prediction_response", {**good, "status": "done"})
    assert re.fullmatch(r"[0-9a-f]{64}", json.loads(yaml.safe_load(
        (CASSETTES / "replicate_image.yaml").read_text("utf-8"))["interactions"][1]["request"]["body"])["version"])
