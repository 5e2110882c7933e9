"""Errors keep their facts (provider, model, status, headers, body, request id) and never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from _support import Server, chat_chunks, chat_json, make_client, ok, sse

import computekit as ck
from computekit.adapters._base import HTTPResponse, ProviderSettings
from computekit.adapters.openai import OpenAIAdapter

CANARY = "sk-canary-XXXXXXXXXXXXXXXXXXXX"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ck.BadRequestError),
        (401, ck.AuthenticationError),
        (403, ck.PermissionDeniedError),
        (404, ck.NotFoundError),
        (409, ck.ConflictError),
        (422, ck.BadRequestError),
        (429, ck.RateLimitError),
        (500, ck.ServerError),
        (503, ck.ServerError),
        (529, ck.OverloadedError),
        (418, ck.APIStatusError),
    ],
)
def test_status_errors_keep_their_facts(status: int, cls: type[ck.APIStatusError]) -> None:
    body = {"error": {"message": f"failure {status}", "type": "some_type", "code": None}}
    server = Server([httpx.Response(status, json=body, headers={"X-Request-ID": "req_abc", "X-Custom-Thing": "v"})])
    client = make_client(server, retry={"max_retries": 0})
    with pytest.raises(ck.APIStatusError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    e = info.value
    assert type(e) is cls
    assert e.provider == "openai"
    assert e.model == "gpt-4o-mini"
    assert e.status == status
    assert e.headers["x-request-id"] == "req_abc"
    assert e.headers["x-custom-thing"] == "v"
    assert all(k == k.lower() for k in e.headers)
    assert e.body == body
    assert e.request_id == "req_abc"
    assert e.message == f"failure {status}"
    assert str(e) == f"[openai:gpt-4o-mini] {status} failure {status} (request id req_abc)"
    r = repr(e)
    assert r.startswith(f"{cls.__name__}(provider='openai', model='gpt-4o-mini', status={status}")
    assert "req_abc" in r


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("context_length_exceeded", ck.ContextWindowExceededError),
        ("content_filter", ck.ContentFilteredError),
        ("invalid_value", ck.BadRequestError),
    ],
)
def test_bad_request_is_classified_by_body(code: str, cls: type[ck.BadRequestError]) -> None:
    body = {"error": {"message": "nope", "type": "invalid_request_error", "code": code}}
    server = Server([httpx.Response(400, json=body)])
    client = make_client(server)
    with pytest.raises(ck.BadRequestError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    assert type(info.value) is cls
    assert server.hits == 1  # a bad request is never retried


def test_overloaded_by_body_type() -> None:
    body = {"error": {"message": "Overloaded", "type": "overloaded_error"}}
    client = make_client(Server([httpx.Response(500, json=body)]), retry={"max_retries": 0})
    with pytest.raises(ck.OverloadedError):
        client.complete("openai:gpt-4o-mini", "hi")


def test_non_json_error_body_is_kept_as_text() -> None:
    client = make_client(Server([httpx.Response(502, text="<html>Bad Gateway</html>")]), retry={"max_retries": 0})
    with pytest.raises(ck.ServerError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    assert info.value.body == "<html>Bad Gateway</html>"
    assert info.value.status == 502
    assert "Bad Gateway" in str(info.value)
    assert info.value.request_id is None
    assert "request id" not in str(info.value)


def test_malformed_success_body() -> None:
    client = make_client(Server([httpx.Response(200, text="not json", headers={"x-request-id": "req_m"})]))
    with pytest.raises(ck.MalformedResponseError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    e = info.value
    assert e.status == 200
    assert e.body == "not json"
    assert e.request_id == "req_m"
    assert "malformed response" in str(e)


def test_provider_error_lowercases_headers() -> None:
    e = ck.RateLimitError("slow down", provider="p", model="m", status=429, headers={"Retry-After": "3"})
    assert e.headers == {"retry-after": "3"}


def test_provider_error_without_model_or_status() -> None:
    e = ck.APIConnectionError("connection failed", provider="openai")
    assert str(e) == "[openai] connection failed"
    assert e.status is None
    assert e.headers == {}
    assert e.body is None


def test_repr_truncates_long_messages() -> None:
    e = ck.ServerError("x" * 5000, provider="p", status=500)
    assert len(repr(e)) < 800


def test_missing_api_key_error_names_env_vars() -> None:
    e = ck.MissingAPIKeyError("openai", ("OPENAI_API_KEY",))
    assert "OPENAI_API_KEY" in str(e)
    assert e.provider == "openai"
    assert e.env_vars == ("OPENAI_API_KEY",)
    assert isinstance(e, ck.ConfigError)


def test_unsupported_capability_error_fields() -> None:
    e = ck.UnsupportedCapabilityError("no", provider="p", capability="embed")
    assert (e.provider, e.capability) == ("p", "embed")


def test_map_error_redacts_the_configured_key() -> None:
    adapter = OpenAIAdapter(ProviderSettings(
        name="openai", base_url="https://api.openai.com/v1", api_key=_secret(CANARY), timeout=10))
    resp = HTTPResponse(401, {"x-echo": f"Bearer {CANARY}"},
                        json.dumps({"error": {"message": f"Incorrect API key provided: {CANARY}"}}).encode())
    e = adapter.map_error(resp, "gpt-4o-mini")
    assert isinstance(e, ck.AuthenticationError)
    assert CANARY not in str(e)
    assert CANARY not in repr(e)
    assert CANARY not in json.dumps(e.body)
    assert CANARY not in json.dumps(e.headers)
    assert "Incorrect API key provided" in e.message  # the server's words stay


def _secret(v: str):  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    return SecretStr(v)


# ------------------------------------------------------------------------------------------------ canary


def _echo(request: httpx.Request) -> httpx.Response:
    """A hostile server: echoes the credential back everywhere it can."""
    auth = request.headers.get("authorization", "")
    headers = {"x-echo-auth": auth, "x-request-id": auth}
    path = request.url.path
    body = json.loads(request.content)
    if body.get("stream"):
        events = chat_chunks(["Hi ", auth])
        events.append({"error": {"message": f"stream failed for {auth}", "type": "server_error"}})
        return httpx.Response(200, headers={"content-type": "text/event-stream", **headers}, content=sse(*events))
    if body["model"] == "ok-model":
        return ok(chat_json("fine"), **headers)  # a model's own output is the caller's data: not echoed here
    if body["model"] == "garbage-model":
        return httpx.Response(200, headers=headers, text=f"<garbage {auth}>")
    status = 401 if path.endswith("/chat/completions") else 500
    return httpx.Response(status, headers=headers,
                          json={"error": {"message": f"Incorrect API key provided: {auth}", "type": "auth"}})


def _files_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("ledger.db"))


def test_canary_key_never_leaks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = Server([_echo])
    client = make_client(server, providers={"openai": {"api_key": CANARY}}, retry={"max_retries": 1})
    texts: list[str] = [repr(client), repr(client.settings), str(client.settings)]

    adapter = client._core.adapter("openai")
    texts += [repr(adapter.settings), str(adapter.settings)]

    errors: list[ck.ProviderError] = []
    with pytest.raises(ck.AuthenticationError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    errors.append(info.value)
    with pytest.raises(ck.MalformedResponseError) as info2:
        client.complete("openai:garbage-model", "hi")
    errors.append(info2.value)
    with pytest.raises(ck.ProviderError) as info3, client.stream("openai:gpt-4o-mini", "hi") as s:
        for _ in s:
            pass
    errors.append(info3.value)
    texts += [repr(a) for a in s.attempts]
    with pytest.raises(ck.AuthenticationError) as info4:
        client.complete(["openai:gpt-4o-mini", "openai:gpt-4o"], "hi")
    errors.append(info4.value)
    r = client.complete("openai:ok-model", "hi")
    texts += [repr(r), r.model_dump_json(), repr(r.attempts)]

    # The server did receive the key: the test would prove nothing otherwise. (gpt-4o-mini, cooled down by
    # its 401s, is skipped by the last fallback list: 5 requests.)
    assert all(seen.auth == f"Bearer {CANARY}" for seen in server.seen)
    assert server.hits >= 5

    for e in errors:
        texts += [str(e), repr(e), json.dumps(e.body, default=str), json.dumps(e.headers), str(e.request_id)]
    texts += [caplog.text]
    for i, text in enumerate(texts):
        assert CANARY not in text, f"key leaked in text #{i}: {text[:200]}"
    for attempt_list in (s.attempts, r.attempts):
        for a in attempt_list:
            assert CANARY not in a.model_dump_json()

    rows = client.ledger.rows()
    assert len(rows) >= 5
    for row in rows:
        assert CANARY not in json.dumps(row.as_dict(), default=str)
    client.ledger.close()
    raw = _files_bytes(tmp_path)
    assert raw, "the ledger file should exist"
    assert CANARY.encode() not in raw
    assert b"sk-canary" not in raw


def test_canary_key_from_environment_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    server = Server([_echo])
    client = make_client(server, providers={}, retry={"max_retries": 0})
    with pytest.raises(ck.AuthenticationError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    assert server.seen[0].auth == f"Bearer {CANARY}"
    e = info.value
    for text in (str(e), repr(e), json.dumps(e.body), json.dumps(e.headers), repr(client),
                 repr(client._core.adapter("openai").settings)):
        assert CANARY not in text


# --------------------------------------------------------------------------------------------- conventions


def test_status_code_is_status() -> None:
    err = ck.RateLimitError("slow down", provider="openai", status=429)
    assert err.status_code == err.status == 429
    assert ck.APIConnectionError("broke", provider="openai").status_code is None


def test_a_timeout_is_a_connection_error() -> None:
    assert issubclass(ck.APITimeoutError, ck.APIConnectionError)
    assert issubclass(ck.PredictionTimeoutError, ck.APIConnectionError)
    with pytest.raises(ck.APIConnectionError):
        raise ck.APITimeoutError("timed out", provider="openai")


def test_public_classes_show_as_computekit_names() -> None:
    import traceback

    for name in ("RateLimitError", "APITimeoutError", "ComputeKitError", "Client", "AsyncClient"):
        assert getattr(ck, name).__module__ == "computekit", name
    with pytest.raises(ck.RateLimitError) as info:
        raise ck.RateLimitError("slow down", provider="openai", status=429)
    assert traceback.format_exception(info.value)[-1].startswith("computekit.RateLimitError: ")


def test_a_failure_after_retries_says_how_many_attempts_and_how_long() -> None:
    from computekit._config import RetryConfig
    from computekit._retry import RetryPolicy
    from computekit.testing import FakeProvider

    waits: list[float] = []
    policy = RetryPolicy(RetryConfig(max_retries=2), sleep=waits.append)
    with FakeProvider([ck.RateLimitError, ck.RateLimitError, ck.RateLimitError]) as fake:
        client = fake.client(retry_policy=policy, ledger="none")
        with pytest.raises(ck.RateLimitError) as info:
            client.complete("fake:m", "hi")
    assert len(waits) == 2
    [note] = info.value.__notes__
    assert note.startswith("computekit gave up after 3 attempts in ")
    assert note.endswith(" s")


def test_every_target_failing_says_how_many_attempts() -> None:
    from computekit.testing import FakeProvider

    with FakeProvider({"a": [ck.AuthenticationError], "b": [ck.AuthenticationError]}) as fake:
        client = fake.client(retry={"max_retries": 0}, ledger="none")
        failed = r"all 2 targets failed \(fake:a, fake:b\), after 2 attempts in "
        with pytest.raises(ck.AllTargetsFailedError, match=failed):
            client.complete(["fake:a", "fake:b"], "hi")
