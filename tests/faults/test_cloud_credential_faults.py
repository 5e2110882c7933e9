"""Credentials of the cloud providers that are not one API key (cases S9 and S10 of the catalogue in
``README.md``), through the public API, sync and async.

AWS Bedrock signs with the AWS credential chain (access key id, secret access key, session token) and Vertex AI
sends an access token of Google's Application Default Credentials. Neither is a configured key, yet each must go
only to its provider's own host: not to a host a region or location string names (it is written into the
endpoint's host name), and not to a per-call ``base_url`` elsewhere.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_server import FaultServer, Reply, Waits, close, policy, read_stream, run

import computekit as ck

ACCESS_KEY = "AKIA" + "CLOUDCREDSCANARY"
SECRET_KEY = "cloudcreds-secret-access-key-canary-0123456789"
SESSION_TOKEN = "cloudcreds-session-token-canary-0123456789"
ACCESS_TOKEN = "ya29.cloudcreds-access-token-canary-0123456789"
SECRETS = (SECRET_KEY, SESSION_TOKEN, ACCESS_TOKEN)

BEDROCK = "bedrock:amazon.nova-micro-v1:0"
VERTEX = "vertex:gemini-2.5-flash"

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
pytestmark = pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")

CONVERSE = {"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}
GENERATE = {"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}}
ANSWERS = {BEDROCK: CONVERSE, VERTEX: GENERATE}


class _Credentials:
    """What ``google.auth.default()`` returns: Application Default Credentials holding a fresh access token."""

    token = ACCESS_TOKEN
    valid = True

    def refresh(self, request: Any) -> None:  # pragma: no cover - the token is valid
        raise AssertionError("not expected to refresh")


@pytest.fixture(autouse=True)
def cloud_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The AWS chain finds temporary credentials in the environment (no profile, no instance role), and
    Application Default Credentials an access token for the project ``my-project``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "GOOGLE_CLOUD_API_KEY",
                 "GOOGLE_CLOUD_LOCATION", "GOOGLE_CLOUD_REGION", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    google_auth = pytest.importorskip("google.auth")
    monkeypatch.setattr(google_auth, "default", lambda scopes=None: (_Credentials(), "my-project"))


def shown(err: BaseException) -> str:
    """Everything an error shows: its traceback (causes included), repr and notes."""
    return "".join(traceback.format_exception(err)) + repr(err) + repr(getattr(err, "__notes__", ""))


def recording_client(is_async: bool, sent: list[httpx.Request], **settings: Any) -> Any:
    """A client on an httpx client whose transport answers every request itself, noting it in ``sent``: what
    would have gone on the wire, to any host, with no network."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        model = BEDROCK if "/converse" in request.url.path else VERTEX
        return httpx.Response(200, json=ANSWERS[model])

    transport = httpx.MockTransport(answer)
    http = httpx.AsyncClient(transport=transport) if is_async else httpx.Client(transport=transport)
    cls = ck.AsyncClient if is_async else ck.Client
    return cls(config=None, ledger="none", http_client=http, **settings)


# ============================================================================================= S9: regions


HOSTILE = ["evil.example/", "evil.example#", "evil.example?", "us-east-1.evil.example", "evil.example:443/", "../",
           "US-EAST-1"]


@both
@pytest.mark.parametrize(("model", "variable"), [(BEDROCK, "AWS_REGION"), (VERTEX, "GOOGLE_CLOUD_LOCATION")],
                         ids=["bedrock", "vertex"])
@pytest.mark.parametrize("value", HOSTILE)
async def test_s9_a_region_that_is_not_one_label_is_refused_before_anything_is_sent(
        model: str, variable: str, value: str, is_async: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A region (location) from the environment is written into the endpoint's host name: one that is not a
    lowercase DNS label would move the signed request, or the access token, to another host."""
    monkeypatch.setenv(variable, value)
    sent: list[httpx.Request] = []
    client = recording_client(is_async, sent)
    with pytest.raises(ck.ConfigError) as ei:
        await run(client.complete(model, "hi"))
    await close(client)
    assert [str(r.url) for r in sent] == []
    assert f"${variable}" in str(ei.value)
    assert not [s for s in SECRETS if s in shown(ei.value)]


@pytest.mark.parametrize(("provider", "key", "value"), [("bedrock", "region", v) for v in HOSTILE]
                         + [("vertex", "location", v) for v in HOSTILE])
def test_s9_a_configured_region_that_is_not_one_label_is_a_config_error(provider: str, key: str, value: str) -> None:
    with pytest.raises(ck.ConfigError) as ei:
        ck.Client(config=None, ledger="none", providers={provider: {key: value}})
    assert f"providers.{provider}.{key}" in str(ei.value)


@both
@pytest.mark.parametrize(("model", "variable", "value", "host"), [
    (BEDROCK, "AWS_REGION", "eu-west-1", "bedrock-runtime.eu-west-1.amazonaws.com"),
    (VERTEX, "GOOGLE_CLOUD_LOCATION", "us-central1", "us-central1-aiplatform.googleapis.com"),
], ids=["bedrock", "vertex"])
async def test_s9_a_region_picks_the_providers_own_host_and_its_credentials_go_there(
        model: str, variable: str, value: str, host: str, is_async: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    sent: list[httpx.Request] = []
    client = recording_client(is_async, sent)
    r = await run(client.complete(model, "hi"))
    await close(client)
    assert r.text == "ok"
    assert [req.url.host for req in sent] == [host]
    headers = sent[0].headers
    if model == BEDROCK:
        assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
        assert f"/{value}/bedrock/aws4_request" in headers["authorization"]
        assert headers["x-amz-security-token"] == SESSION_TOKEN
    else:
        assert headers["authorization"] == f"Bearer {ACCESS_TOKEN}"


@both
async def test_s9_an_express_mode_key_goes_to_its_regional_endpoint(is_async: bool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A Vertex express-mode key in a location other than ``global``: its endpoint is the provider's own
    origin, so the key goes with the request (it was dropped as if the host were another one)."""
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    key = "AIza" + "E" * 35
    sent: list[httpx.Request] = []
    client = recording_client(is_async, sent, providers={"vertex": {"api_key": key}})
    r = await run(client.complete(VERTEX, "hi"))
    await close(client)
    assert r.text == "ok"
    assert [(req.url.host, req.headers.get("x-goog-api-key")) for req in sent] == [
        ("europe-west4-aiplatform.googleapis.com", key)]


# ============================================================================================= S10: per-call URLs


@both
@pytest.mark.parametrize("model", [BEDROCK, VERTEX], ids=["bedrock", "vertex"])
async def test_s10_a_per_call_base_url_elsewhere_gets_no_cloud_credentials(
        model: str, is_async: bool, faults: Callable[..., FaultServer], waits: Waits) -> None:
    """A per-call ``base_url`` off the provider's hosts gets no configured key, and no credentials of the AWS
    chain or of Application Default Credentials either: ``MissingAPIKeyError``, nothing sent. A key passed with
    it goes, alone; the same host configured as ``base_url`` gets the credentials."""
    srv = faults([Reply(200, ANSWERS[model]), Reply(200, ANSWERS[model])])
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger="none", retry_policy=policy(waits))
    with pytest.raises(ck.MissingAPIKeyError) as ei:
        await run(client.complete(model, "hi", base_url=srv.url))
    assert srv.hits == 0
    assert "per-call base_url" in str(ei.value)
    assert not [s for s in SECRETS if s in shown(ei.value)]

    r = await run(client.complete(model, "hi", base_url=srv.url, api_key="per-call-key-0123456789"))
    assert r.text == "ok"
    first = srv.requests[0].headers
    assert not [s for s in SECRETS if s in repr(first)]
    assert (first.get("authorization"), first.get("x-goog-api-key")) == (
        ("Bearer per-call-key-0123456789", None) if model == BEDROCK else (None, "per-call-key-0123456789"))
    await close(client)

    provider = model.split(":", 1)[0]
    configured = cls(config=None, ledger="none", retry_policy=policy(waits),
                     providers={provider: {"base_url": srv.url}})
    await run(configured.complete(model, "hi"))
    await close(configured)
    second = srv.requests[1].headers
    if model == BEDROCK:  # not vacuous: the credentials withheld above are the ones sent to a configured host
        assert second["x-amz-security-token"] == SESSION_TOKEN
    else:
        assert second["authorization"] == f"Bearer {ACCESS_TOKEN}"


@both
@pytest.mark.parametrize(("model", "base_url", "host"), [
    (BEDROCK, "https://bedrock-runtime.eu-west-1.amazonaws.com", "bedrock-runtime.eu-west-1.amazonaws.com"),
    (VERTEX, "https://europe-west4-aiplatform.googleapis.com/v1", "europe-west4-aiplatform.googleapis.com"),
], ids=["bedrock", "vertex"])
async def test_s10_a_per_call_base_url_on_the_providers_own_hosts_is_signed(
        model: str, base_url: str, host: str, is_async: bool) -> None:
    """A per-call ``base_url`` on one of the provider's own endpoints (another AWS region, another Vertex
    location) keeps the credentials of the chain: it was refused as an unreadable URL (Bedrock)."""
    sent: list[httpx.Request] = []
    client = recording_client(is_async, sent)
    r = await run(client.complete(model, "hi", base_url=base_url))
    await close(client)
    assert r.text == "ok"
    assert [req.url.host for req in sent] == [host]
    if model == BEDROCK:
        assert "/eu-west-1/bedrock/aws4_request" in sent[0].headers["authorization"]
        assert sent[0].headers["x-amz-security-token"] == SESSION_TOKEN
    else:
        assert sent[0].headers["authorization"] == f"Bearer {ACCESS_TOKEN}"


# ============================================================================================= S11: expiry


class _ExpiringCredentials:
    """Application Default Credentials whose access token expires when the test says (during a long first try);
    each refresh fetches the next token."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.token = "ya29.first-token-0123456789"
        self.valid = True

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"ya29.refreshed-{self.refreshes}-0123456789"
        self.valid = True


def _vertex_answer(status: int) -> Reply:
    if status == 200:
        return Reply(200, GENERATE)
    return Reply(status, {"error": {"code": status, "message": "injected", "status": "UNAVAILABLE"}})


def _bedrock_answer(status: int) -> Reply:
    if status == 200:
        return Reply(200, CONVERSE)
    return Reply(status, {"message": "injected"}, {"x-amzn-errortype": "ServiceUnavailableException:"})


def _process_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An AWS profile whose temporary credentials come from a ``credential_process`` handing out a new session
    token each time it runs (``session-1``, ``session-2`` ...), each close enough to its expiry that botocore
    fetches the next one whenever it is asked for credentials. Returns the file that counts the runs."""
    import sys

    count = tmp_path / "runs"
    script = tmp_path / "creds.py"
    script.write_text(
        "import datetime, json, pathlib\n"
        f"p = pathlib.Path({str(count)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=8)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'ASIACLOUDCREDSCANRY' + str(n % 10), "
        "'SecretAccessKey': 'process-secret-' + str(n), 'SessionToken': 'session-' + str(n), "
        "'Expiration': exp.strftime('%Y-%m-%dT%H:%M:%SZ')}))\n")
    config = tmp_path / "aws-config"
    config.write_text(f"[profile rotating]\ncredential_process = {sys.executable} {script}\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return count


@both
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_s11_a_vertex_token_that_expires_before_a_retry_is_refreshed_once(
        is_async: bool, stream: bool, faults: Callable[..., FaultServer], waits: Waits,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first try fails (503) after its access token expired: the retry carries a refreshed token, not the
    expired one the request was built with (which Google answers with a 401 that is not retried)."""
    import google.auth

    creds = _ExpiringCredentials()
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (creds, "my-project"))

    def expire_then_503(srv: FaultServer, req: Any, sock: Any) -> bool:
        creds.valid = False  # the hour ran out while the host held the first try
        return _vertex_answer(503)(srv, req, sock)

    ok = Reply(200, b'data: {"candidates":[{"content":{"parts":[{"text":"ok"}],"role":"model"},'
                    b'"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,'
                    b'"totalTokenCount":4}}\r\n\r\n', {"content-type": "text/event-stream"}) if stream else (
        _vertex_answer(200))
    srv = faults([expire_then_503, ok])
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger="none", retry_policy=policy(waits), providers={"vertex": {"base_url": srv.url}})
    if stream:
        chunks, _ = await read_stream(client, VERTEX)
        text = "".join(c.text for c in chunks)
    else:
        text = (await run(client.complete(VERTEX, "hi"))).text
    await close(client)
    assert text == "ok"
    assert [r.auth for r in srv.requests] == ["Bearer ya29.first-token-0123456789",
                                              "Bearer ya29.refreshed-1-0123456789"]
    assert creds.refreshes == 1


@both
async def test_s11_bedrock_temporary_credentials_are_current_on_a_retry(
        is_async: bool, faults: Callable[..., FaultServer], waits: Waits, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """Temporary AWS credentials near their expiry are replaced by the chain: a retry is signed again (a new date,
    the current credentials), not sent with the first try's signature and session token."""
    runs = _process_credentials(monkeypatch, tmp_path)
    srv = faults([_bedrock_answer(503), _bedrock_answer(200)])
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger="none", retry_policy=policy(waits),
                 providers={"bedrock": {"base_url": srv.url, "profile": "rotating"}})
    r = await run(client.complete(BEDROCK, "hi"))
    await close(client)
    assert r.text == "ok"
    tokens = [req.headers["x-amz-security-token"] for req in srv.requests]
    assert tokens == [tokens[0], f"session-{runs.read_text()}"]
    assert tokens[0] != tokens[1]
    first, retry = (req.headers["authorization"] for req in srv.requests)
    assert first.split("Signature=")[1] != retry.split("Signature=")[1]


@both
async def test_s11_a_401_is_typed_and_not_retried(is_async: bool, faults: Callable[..., FaultServer],
                                                  waits: Waits) -> None:
    """A token the host refuses (revoked, expired on its clock): one request, an ``AuthenticationError`` with
    the host's status, no retry loop, and no token in the error."""
    srv = faults([Reply(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                        "status": "UNAUTHENTICATED"}})] * 3)
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger="none", retry_policy=policy(waits), providers={"vertex": {"base_url": srv.url}})
    with pytest.raises(ck.AuthenticationError) as ei:
        await run(client.complete(VERTEX, "hi"))
    await close(client)
    assert (srv.hits, ei.value.status, waits.waits) == (1, 401, [])
    assert ACCESS_TOKEN not in shown(ei.value)


# ============================================================================================= D17: canaries


def _files(folder: Path, pattern: str) -> dict[str, str]:
    """The database and its -wal / -shm files, as text."""
    return {f.name: f.read_bytes().decode("latin-1") for f in sorted(folder.glob(pattern))}


def _echo(status: int, model: str) -> Callable[..., bool]:
    """A host that sends the request's credentials back everywhere it can: headers, the request id, the
    error message (or the answer's text)."""

    def behave(srv: FaultServer, req: Any, sock: Any) -> bool:
        echoed = " ".join(req.headers.get(h, "") for h in ("authorization", "x-amz-security-token"))
        headers = {"x-echo": echoed, "x-amzn-requestid": echoed, "x-request-id": echoed}
        if status >= 400:
            body: Any = ({"message": f"denied: {echoed}"} if model == BEDROCK else
                         {"error": {"code": status, "message": f"denied: {echoed}", "status": "UNAUTHENTICATED"}})
            if model == BEDROCK:
                headers["x-amzn-errortype"] = "UnrecognizedClientException:"
        else:
            body = ANSWERS[model]
        return Reply(status, body, headers)(srv, req, sock)

    return behave


@both
@pytest.mark.parametrize("model", [BEDROCK, VERTEX], ids=["bedrock", "vertex"])
async def test_d17_cloud_credentials_echoed_back_never_leak(
        model: str, is_async: bool, faults: Callable[..., FaultServer], waits: Waits, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, spans: Any) -> None:
    """The secret access key, the session token and the access token are in no repr (client, settings,
    adapter), error (message, repr, facts, traceback with its causes, notes), log record at DEBUG (the
    credential libraries' included), span, ledger row or database file, though the host echoes them."""
    import logging

    caplog.set_level(logging.DEBUG)
    srv = faults([_echo(403 if model == BEDROCK else 401, model), _echo(200, model)])
    db = tmp_path / "cloud.db"
    cls = ck.AsyncClient if is_async else ck.Client
    provider = model.split(":", 1)[0]
    client = cls(config=None, ledger=f"sqlite:///{db}", retry_policy=policy(waits),
                 providers={provider: {"base_url": srv.url}})
    with pytest.raises(ck.AuthenticationError) as ei:
        await run(client.complete(model, "hi"))
    result = await run(client.complete(model, "hi"))
    rows = client.ledger.rows()
    adapter_text = repr(vars(client._core.adapter(provider)))
    surfaces = {"client": repr(client) + repr(client.settings) + str(client.settings), "adapter": adapter_text,
                "error": shown(ei.value) + repr(vars(ei.value)), "result": repr(result) + repr(result.attempts),
                "logs": caplog.text + repr([(r.msg, r.args) for r in caplog.records]),
                "spans": repr([(s.name, dict(s.attributes or {}), s.status.description, s.events)
                               for s in spans.get_finished_spans()]),
                "ledger": repr(rows)}
    await close(client)
    surfaces.update(_files(tmp_path, "cloud.db*"))
    # The host did get (and echo) the credentials: not vacuous.
    sent = srv.requests[0].headers
    assert (sent.get("x-amz-security-token") == SESSION_TOKEN) if model == BEDROCK else (
        sent["authorization"] == f"Bearer {ACCESS_TOKEN}")
    assert len(rows) == 2
    assert spans.get_finished_spans()
    leaked = sorted({name for name, text in surfaces.items() for s in SECRETS if s in text})
    assert not leaked, f"credentials found in: {', '.join(leaked)}"


# ============================================================================================= D18: no credentials

PARTIAL_SECRET = "cloudcreds-partial-secret-canary-0123456789"
PROCESS_SECRET = "cloudcreds-process-secret-canary-0123456789"


def _failing_chain(failure: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Make the AWS chain (or Application Default Credentials) fail as ``failure`` says; returns the model."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile fails]\ncredential_process = sh -c 'echo no session >&2; exit 3'\n"
        "[profile not-json]\ncredential_process = sh -c "
        f"'echo \"{{\\\"Version\\\": 1, \\\"AccessKeyId\\\": \\\"AKIA\\\", \\\"SecretAccessKey\\\": "
        f"\\\"{PROCESS_SECRET}\\\"\"'\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    if failure == "partial":  # a key id without its secret
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    elif failure == "secret-only":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PARTIAL_SECRET)
    elif failure == "unknown-profile":
        monkeypatch.setenv("AWS_PROFILE", "nowhere")
    elif failure == "process-fails":
        monkeypatch.setenv("AWS_PROFILE", "fails")
    elif failure == "process-not-json":
        monkeypatch.setenv("AWS_PROFILE", "not-json")
    elif failure == "no-adc":
        import google.auth
        import google.auth.exceptions

        def none(scopes: Any = None) -> Any:
            raise google.auth.exceptions.DefaultCredentialsError("Your default credentials were not found.")

        monkeypatch.setattr(google.auth, "default", none)
        return VERTEX
    return BEDROCK


@both
@pytest.mark.parametrize("failure", ["partial", "secret-only", "unknown-profile", "process-fails",
                                     "process-not-json", "no-adc"])
async def test_d18_a_credential_chain_that_fails_is_a_config_error_before_anything_is_sent(
        failure: str, is_async: bool, faults: Callable[..., FaultServer], waits: Waits,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No usable credentials (a key id without its secret, a secret alone, an unknown profile, a credential
    process that fails or prints no JSON, no Application Default Credentials): a ``MissingAPIKeyError`` (a
    ``ConfigError``) that says what to set, nothing sent, no partial secret shown; with another target the call
    goes on there, as for a missing key. (Botocore's own exceptions came out raw, and Vertex's stopped a
    fallback.)"""
    model = _failing_chain(failure, monkeypatch, tmp_path)
    srv = faults([Reply(200, {"id": "c", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "from the backup"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})])
    provider = model.split(":", 1)[0]
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger="none", retry_policy=policy(waits), providers={
        provider: {"base_url": srv.url},
        "backup": {"adapter": "openai-compatible", "base_url": srv.url, "api_key": "backup-key-0123456789"}})
    with pytest.raises(ck.MissingAPIKeyError) as ei:
        await run(client.complete(model, "hi"))
    assert srv.hits == 0
    told = str(ei.value)
    assert ("application-default login" in told) if model == VERTEX else ("AWS_ACCESS_KEY_ID" in told)
    assert not [s for s in (PARTIAL_SECRET, PROCESS_SECRET, *SECRETS) if s in shown(ei.value)]
    r = await run(client.complete([model, "backup:gpt-4o-mini"], "hi"))
    await close(client)
    assert (r.text, r.provider, srv.hits) == ("from the backup", "backup", 1)


@both
@pytest.mark.parametrize(("model", "variable", "base_url", "header"), [
    (BEDROCK, "AWS_BEARER_TOKEN_BEDROCK", "https://bedrock-runtime.eu-west-1.amazonaws.com", "authorization"),
    (VERTEX, "GOOGLE_CLOUD_API_KEY", "https://europe-west4-aiplatform.googleapis.com/v1", "x-goog-api-key"),
], ids=["bedrock", "vertex"])
async def test_s10_a_per_call_base_url_on_the_providers_own_hosts_keeps_the_configured_key(
        model: str, variable: str, base_url: str, header: str, is_async: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A key from the environment (a Bedrock API key, a Vertex express-mode key) goes with a per-call base URL
    on the provider's own endpoints (another region): they are the provider's origin, whatever is configured."""
    key = "cloud-key-from-env-0123456789"
    monkeypatch.setenv(variable, key)
    sent: list[httpx.Request] = []
    client = recording_client(is_async, sent)
    r = await run(client.complete(model, "hi", base_url=base_url))
    await close(client)
    assert r.text == "ok"
    assert [(req.url.host, req.headers.get(header)) for req in sent] == [
        (httpx.URL(base_url).host, f"Bearer {key}" if model == BEDROCK else key)]
