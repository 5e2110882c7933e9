"""The secret filters and the scan: what is dropped or masked when a cassette is recorded, that masked requests
still replay, and that a cassette in which something still looks like a secret is not written."""

from __future__ import annotations

import base64
import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
import vcr
from vcr.persisters.filesystem import FilesystemPersister
from vcr.request import Request

from computekit.testing import LeakedSecretError, Scrubber, cassette_config, scan
from computekit.testing._filters import MASK, ScanningPersister

# Shapes of real keys (made up): no prefix (Cohere/Mistral-like), and each provider's prefix.
PLAIN_KEY = "Zq8mN3vR7tY1uI5oP9aS2dF6gH0jK4lX8cV3bN7m"
SHAPED = {
    "openai": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
    "anthropic": "sk-ant-api03-Xy7wVu4tSr1qPo8nMl5k",
    "replicate": "r8_Gh5jK8lZx2cV5bN8mQw3eR6t",
    "groq": "gsk_Tt4yU7iO0pA3sD6fG9hJ2kL5",
    "huggingface": "hf_Qa2wS5eD8rF1tG4yH7uJ0iK3o",
    "google": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJlLXZhbHVlLTEyMw",
}


def _request(uri: str = "https://api.example.com/v1/chat", body: bytes = b"{}",
             headers: dict[str, str] | None = None) -> Request:
    return Request("POST", uri, body, headers or {})


def _response(body: bytes, headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"status": {"code": 200, "message": "OK"}, "headers": headers or {}, "body": {"string": body}}


# --------------------------------------------------------------------------------------------- filters


def test_credential_headers_are_dropped_and_their_keys_masked_wherever_they_come_back() -> None:
    sc = Scrubber()
    req = sc.request(_request(headers={"Authorization": f"Bearer {PLAIN_KEY}", "x-goog-api-key": "g" * 20,
                                       "OpenAI-Organization": "org-1234567890", "content-type": "application/json"}))
    assert set(req.headers) == {"content-type"}
    echoed = json.dumps({"error": {"message": f"invalid key {PLAIN_KEY[:-4]}... no: {PLAIN_KEY}"}}).encode()
    resp = sc.response(_response(echoed, {"Set-Cookie": ["s=1"], "openai-organization": ["org-1"],
                                          "x-echo": [PLAIN_KEY], "x-request-id": ["req_1"]}))
    assert PLAIN_KEY.encode() not in resp["body"]["string"]
    assert set(resp["headers"]) == {"x-echo", "x-request-id"}
    assert resp["headers"]["x-echo"] == [MASK]


def test_env_var_keys_are_masked_even_without_a_known_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO_API_KEY", PLAIN_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-value-1234567890")
    resp = Scrubber().response(_response(f"{PLAIN_KEY} and tok-value-1234567890".encode()))
    assert resp["body"]["string"] == f"{MASK} and {MASK}".encode()


@pytest.mark.parametrize("kind", sorted(SHAPED))
def test_key_shaped_strings_are_masked_in_bodies_headers_and_urls(kind: str) -> None:
    key = SHAPED[kind]
    sc = Scrubber()
    resp = sc.response(_response(f'{{"echo": "{key}"}}'.encode(), {"x-debug": [f"Bearer {key}"]}))
    assert key.encode() not in resp["body"]["string"]
    assert key not in resp["headers"]["x-debug"][0]
    req = sc.request(_request(f"https://h.example/v1/x?q=1&k2={key}", body=f"k={key}".encode()))
    assert key not in req.uri
    assert key.encode() not in req.body


def test_signed_urls_in_outputs_lose_their_signatures_but_keep_their_paths() -> None:
    output = {
        "output": [
            "https://replicate.delivery/xezq/abc/out-0.webp?signature=9f8e7d6c5b4a3210&expires=1700000000",
            "https://bucket.s3.amazonaws.com/o.png?X-Amz-Credential=AKIAXXXX%2F2024&X-Amz-Signature=deadbeefcafe",
            "https://api.replicate.com/v1/files/f1/download?expiry=1&owner=me&signature=c2lnbmF0dXJl",
        ]
    }
    body = Scrubber().response(_response(json.dumps(output).encode()))["body"]["string"].decode()
    urls = json.loads(body)["output"]
    assert urls[0] == f"https://replicate.delivery/xezq/abc/out-0.webp?signature={MASK}&expires=1700000000"
    assert "deadbeefcafe" not in urls[1]
    assert "AKIAXXXX" not in urls[1]
    assert urls[2].endswith(f"signature={MASK}")
    assert "owner=me" in urls[2]
    assert scan({"responses": [_response(body.encode())]}) == []


def test_secret_json_fields_and_basic_auth() -> None:
    sc = Scrubber(fields=["webhook_secret"])
    basic = base64.b64encode(f"user:{PLAIN_KEY}".encode()).decode()
    sc.request(_request(headers={"Authorization": f"Basic {basic}"}))
    resp = sc.response(_response(json.dumps({"client_secret": "cs_live_1234567890", "webhook_secret": "whsec_abc12345",
                                             "echo": PLAIN_KEY, "prompt_tokens": 12}).encode()))
    data = json.loads(resp["body"]["string"])
    assert data == {"client_secret": MASK, "webhook_secret": MASK, "echo": MASK, "prompt_tokens": 12}


def test_masked_requests_still_replay_with_another_key(tmp_path: Path) -> None:
    """A key in the query string is masked when recorded *and* when matched, so the cassette replays with
    whatever key the replaying test holds."""
    server, hits = _server()
    path = str(tmp_path / "query.yaml")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/models"
        with vcr.VCR(**cassette_config()).use_cassette(path, record_mode="once"):
            live = urllib3.request("GET", f"{url}?key=recording-key-0001&page=2").json()
        with vcr.VCR(**cassette_config()).use_cassette(path, record_mode="none"):
            replayed = urllib3.request("GET", f"{url}?key=another-key-0002&page=2").json()
    finally:
        server.shutdown()
        server.server_close()
    assert hits == [1]
    assert live == replayed == {"ok": True}
    text = Path(path).read_text()
    assert "recording-key-0001" not in text
    assert f"key={MASK}&page=2" in text


def test_cassette_config_runs_the_users_hooks_first_and_survives_deepcopy() -> None:
    seen: list[str] = []

    def mine(request: Request) -> Request:
        seen.append(request.headers.get("authorization", "gone"))
        return request

    config = cassette_config(before_record_request=mine, match_on=["method"])
    assert config["match_on"] == ["method"]
    assert config["decode_compressed_response"] is True
    copied = copy.deepcopy(config)
    for hook in copied["before_record_request"]:
        hook(_request(headers={"authorization": "Bearer token-123456789"}))
    assert seen == ["Bearer token-123456789"]
    assert copied["before_record_request"][1] == config["before_record_request"][1]  # the same scrubber


# --------------------------------------------------------------------------------------------- the scan


def test_scan_reports_what_no_filter_knew_without_showing_it() -> None:
    cassette = {
        "requests": [_request(headers={"authorization": "Bearer sk-kept-by-someone-else-123456",
                                       "Idempotency-Key": "5f2b8c1e9a7d4e3f8b6c2a1d0e9f8a7b"})],
        "responses": [_response(json.dumps({"upload_token": "Ul9kJ8hG7fD6sA5pO4iU3yT2", "prompt_tokens": 1234567890,
                                            "usage": {"total_tokens": 3}}).encode(),
                                {"x-session-token": ["sess0123456789abcdefghij"],
                                 "x-ratelimit-remaining-tokens": ["149984"]})],
    }
    findings = [str(f) for f in scan(cassette)]
    assert findings == [
        "request 1 header 'authorization': a credential header was kept",
        "response 1 header 'x-session-token': a header named like a credential (24 chars)",
        "response 1 body: a JSON field named like a credential: 'upload_token' (24 chars)",
    ]
    assert not [f for f in findings if "sess0123" in f or "Ul9k" in f or "sk-kept" in f]
    allowed = Scrubber(allow=["x-session-token", "upload_token"])
    assert [str(f) for f in scan(cassette, allowed)] == [findings[0]]


def test_scan_checks_keys_the_test_used_and_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = Scrubber()
    sc.request(_request(headers={"x-api-key": PLAIN_KEY}))
    leaked = {"responses": [_response(f"echo {PLAIN_KEY}".encode())]}
    assert [str(f) for f in scan(leaked, sc)] == [
        f"response 1 body: a key this test used or an env var holds ({len(PLAIN_KEY)} chars)"]
    monkeypatch.setenv("MISTRAL_API_KEY", "m" * 32)
    assert len(scan({"responses": [_response(b"m" * 32)]})) == 1


def test_scanning_persister_refuses_to_write_a_leaky_cassette(tmp_path: Path) -> None:
    sc = Scrubber()
    leaky = {"requests": [_request()], "responses": [_response(b'{"password": "hunter2hunter2"}')]}
    path = tmp_path / "leaky.yaml"
    persister = ScanningPersister(FilesystemPersister, sc)
    with pytest.raises(LeakedSecretError) as e:
        persister.save_cassette(path, leaky, serializer=vcr.serializers.yamlserializer)
    assert not path.exists()
    assert not persister.saved
    assert "'password'" in str(e.value)
    assert "hunter2" not in str(e.value)
    assert "filter_fields" in str(e.value)
    assert e.value.path == str(path)
    clean = {"requests": [_request()], "responses": [sc.response(_response(b'{"password": "hunter2hunter2"}'))]}
    persister.save_cassette(path, clean, serializer=vcr.serializers.yamlserializer)
    assert path.exists()
    assert persister.saved
    assert "hunter2" not in path.read_text()


# --------------------------------------------------------------------------------------------- helpers


def _server() -> tuple[ThreadingHTTPServer, list[int]]:
    hits = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the stdlib's handler name
            hits[0] += 1
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, hits

