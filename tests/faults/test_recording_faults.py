"""Fault catalogue: a server that sends the key back in disguise — written with JSON ``\\u`` escapes, base64
(standard, and URL-safe around a JSON object), and split across the deltas of a stream — while a test records a
cassette. The recording filter must catch every form, and the scan of the written cassette must find nothing;
the scan alone must find each form in an unfiltered cassette.

The key is not key-shaped (no ``sk-`` prefix): only the key the filter noted from the request can catch it.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import vcr
from fault_server import SSE, FaultServer, Reply, Request, Waits, chat_events, close, make_client, read_stream, run
from vcr.persisters.filesystem import FilesystemPersister
from vcr.serializers import yamlserializer

import computekit as ck
from computekit.testing._filters import Scrubber, scan, scrubber_in

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
CANARY = "canary-recording-7d3f9a2b1c5e"
CHAT = "openai:gpt-4o-mini"


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def disguised_body(key: str) -> bytes:
    """A chat completion whose text is the key written with escapes, with two base64 fields that hold it."""
    return ('{"id":"chatcmpl-x","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
            '"choices":[{"index":0,"message":{"role":"assistant","content":"' + escaped(key) + '"},'
            '"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5},'
            '"basic":"' + base64.b64encode(f"user:{key}".encode()).decode() + '",'
            '"payload":"' + base64.urlsafe_b64encode(json.dumps({"key": key}).encode()).decode().rstrip("=") + '"}'
            ).encode()


def echo_disguised(srv: FaultServer, req: Request, sock: socket.socket) -> bool:
    key = (req.auth or "").removeprefix("Bearer ")
    return Reply(200, disguised_body(key), {"content-type": "application/json"})(srv, req, sock)


def echo_split(srv: FaultServer, req: Request, sock: socket.socket) -> bool:
    key = (req.auth or "").removeprefix("Bearer ")
    return SSE(chat_events(["your key: ", key[:6], key[6:13], key[13:21], key[21:], " (end)"]))(srv, req, sock)


def load(cassette: Path) -> tuple[list[Any], list[Any]]:
    requests, responses = FilesystemPersister.load_cassette(str(cassette), serializer=yamlserializer)
    return list(requests), list(responses)


def body_text(response: Any) -> str:
    body = response["body"]["string"]
    return body.decode() if isinstance(body, bytes) else body


@both
async def test_key_in_disguise_is_masked_in_the_recorded_cassette(faults: Any, waits: Waits, is_async: bool,
                                                                 tmp_path: Path, vcr_config: dict[str, Any]) -> None:
    srv = faults([echo_disguised, echo_split])
    cassette = tmp_path / "disguised.yaml"
    client = make_client(is_async, srv.url, waits, api_key=CANARY)
    try:
        with vcr.VCR(**vcr_config).use_cassette(str(cassette), record_mode="all"):
            live = await run(client.complete(CHAT, "hi"))
            _, stream = await read_stream(client, CHAT)
    finally:
        await close(client)
    # The server did disguise the key: the client decoded it back (the test is not vacuous).
    assert live.text == CANARY
    assert CANARY in stream.result.text
    requests, responses = load(cassette)
    whole, split = json.loads(body_text(responses[0])), body_text(responses[1])
    # Each disguise, decoded the way a reader would, no longer holds the key ...
    assert CANARY not in whole["choices"][0]["message"]["content"]
    assert CANARY not in base64.b64decode(whole["basic"]).decode()
    assert CANARY not in base64.urlsafe_b64decode(whole["payload"] + "==").decode()
    deltas = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                     for line in split.splitlines() if line.startswith("data: {") and '"content"' in line)
    assert CANARY not in deltas
    assert deltas == "your key: REDACTEDREDACTEDREDACTEDREDACTED (end)"  # each piece of the key, and only those
    # ... the bodies are still what the client parses, and the scan of the written cassette finds nothing.
    assert whole["usage"]["total_tokens"] == 5
    assert scan({"requests": requests, "responses": responses}, scrubber_in(vcr_config)) == []


@pytest.mark.parametrize(("body", "how"), [
    (disguised_body(CANARY), "written with JSON escapes"),
    (('{"basic":"' + base64.b64encode(f"user:{CANARY}".encode()).decode() + '"}').encode(), "base64-encoded"),
    (('{"t":"' + base64.urlsafe_b64encode(json.dumps({"key": CANARY}).encode()).decode() + '"}').encode(),
     "base64-encoded"),
    (b"".join(f"data: {json.dumps({'choices': [{'delta': {'content': part}}]})}\n\n".encode()
              for part in (CANARY[:9], CANARY[9:20], CANARY[20:])), "split across stream events"),
], ids=["escaped", "base64", "urlsafe-base64-of-json", "split-stream"])
def test_scan_finds_the_key_in_each_disguise(body: bytes, how: str) -> None:
    """The last line of defence (a hook of the user's that undid the masking, a recording made without the
    filters): the scan reports each disguise, without the value."""
    sc = Scrubber(secrets=[CANARY])
    findings = [str(f) for f in scan({"responses": [{"headers": {}, "body": {"string": body}}]}, sc)]
    assert findings == [f"response 1 body: a key this test used or an env var holds ({len(CANARY)} chars), {how}"]
    assert sc.mask_stream(sc.mask(body)) != body  # and the filter masks it
    assert scan({"responses": [{"headers": {}, "body": {"string": sc.mask_stream(sc.mask(body))}}]}, sc) == []


# ============================================================================================= cloud credentials

REFRESH_TOKEN = "1//0g-cloudcreds-refresh-token-canary-0123456789"
CLIENT_SECRET = "cloudcreds-client-secret-canary"
ACCESS_TOKEN = "ya29.cloudcreds-access-token-canary-0123456789"
ROLE_SECRET = "cloudcreds/role-secret-access-key/canary0123456789"
ROLE_SESSION = "cloudcreds-role-session-token-canary-0123456789"
SOURCE_SECRET = "cloudcreds-source-secret-access-key-canary"

GENERATE = {"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}}
CONVERSE = {"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}
ASSUME_ROLE = (  # STS answers in XML
    '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
    f"<AccessKeyId>ASIACLOUDCREDSCANRY1</AccessKeyId><SecretAccessKey>{ROLE_SECRET}</SecretAccessKey>"
    f"<SessionToken>{ROLE_SESSION}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
    "<AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn>"
    "</AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>")


def _cloud_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    """Vertex: the user credentials of ``gcloud auth application-default login`` (a refresh token and the
    client's secret), exchanged for an access token at ``url``. Bedrock: a profile that assumes a role with STS
    at ``url``, from a source profile's long-term key. No key of either is in an env var the filter knows."""
    import google.oauth2.credentials

    google_auth = pytest.importorskip("google.auth")
    creds = google.oauth2.credentials.Credentials(
        token=None, refresh_token=REFRESH_TOKEN, client_id="cloudcreds.apps.googleusercontent.com",
        client_secret=CLIENT_SECRET, token_uri=f"{url}/token")
    monkeypatch.setattr(google_auth, "default", lambda scopes=None: (creds, "my-project"))
    config = tmp_path / "aws-config"
    config.write_text(f"[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\n"
                      f"region = us-east-1\n[profile base]\naws_access_key_id = AKIACLOUDCREDSCANRY\n"
                      f"aws_secret_access_key = {SOURCE_SECRET}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK", "GOOGLE_CLOUD_API_KEY", "GOOGLE_CLOUD_LOCATION",
                 "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)


@both
async def test_cloud_credential_exchanges_are_masked_in_the_recorded_cassette(
        faults: Any, is_async: bool, tmp_path: Path, vcr_config: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording a Vertex call with user credentials and a Bedrock call with an assumed role also records the
    credential libraries' own exchanges (google-auth's token refresh, botocore's STS AssumeRole): the refresh
    token and client secret in the form body, the role's secret key and session token in the XML answer are
    masked, and the written cassette scans clean (they were written as they were)."""
    srv = faults([Reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}),
                  Reply(200, GENERATE),
                  Reply(200, ASSUME_ROLE, {"content-type": "text/xml"}),
                  Reply(200, CONVERSE)])
    _cloud_env(monkeypatch, tmp_path, srv.url)
    cassette = tmp_path / "cloud.yaml"
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger="none", providers={
        "vertex": {"base_url": srv.url}, "bedrock": {"base_url": srv.url, "profile": "role"}})
    try:
        with vcr.VCR(**vcr_config).use_cassette(str(cassette), record_mode="all"):
            vertex = await run(client.complete("vertex:gemini-2.5-flash", "hi"))
            bedrock = await run(client.complete("bedrock:amazon.nova-micro-v1:0", "hi"))
    finally:
        await close(client)
    # The exchanges did happen, with these secrets (the test is not vacuous).
    assert (vertex.text, bedrock.text) == ("ok", "ok")
    paths = [r.path.split("?")[0] for r in srv.requests]
    assert [paths[0].endswith("/token"), paths[1].endswith(":generateContent"), srv.requests[2].body[:18],
            paths[3].endswith("/converse")] == [True, True, b"Action=AssumeRole&", True]
    assert REFRESH_TOKEN.replace("/", "%2F") in srv.requests[0].body.decode()
    assert srv.requests[3].headers["x-amz-security-token"] == ROLE_SESSION
    written = cassette.read_text()
    assert [s for s in (REFRESH_TOKEN, REFRESH_TOKEN.replace("/", "%2F"), CLIENT_SECRET, ACCESS_TOKEN, ROLE_SECRET,
                        ROLE_SESSION, SOURCE_SECRET) if s in written] == []
    assert "refresh_token=REDACTED" in written
    assert "<SessionToken>REDACTED</SessionToken>" in written
    requests, responses = load(cassette)
    assert scan({"requests": requests, "responses": responses}, scrubber_in(vcr_config)) == []


@pytest.mark.parametrize(("cassette", "found"), [
    ({"requests": [type("R", (), {"headers": {}, "uri": "https://oauth2.example/token",
                                  "_body": b"grant_type=refresh_token&client_assertion=abcdefghijklmnop"})()]},
     "request 1 body: a form field named like a credential: 'client_assertion' (16 chars)"),
    ({"responses": [{"headers": {}, "body": {"string": b"<R><Credentials><ClientSecret>abcdefghijklmnop"
                                                        b"</ClientSecret></Credentials></R>"}}]},
     "response 1 body: an XML element named like a credential: 'ClientSecret' (16 chars)"),
], ids=["form", "xml"])
def test_scan_finds_credentials_in_form_and_xml_bodies(cassette: dict[str, Any], found: str) -> None:
    """Names no filter knows, in the two body shapes credential exchanges use: the scan reports them."""
    assert [str(f) for f in scan(cassette)] == [found]
