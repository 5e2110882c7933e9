"""The fault catalogue's wire cases on AWS Bedrock's wire format (cases B1 to B8 in README.md): a 429 with its retry
hint, 5xx, a ConverseStream cut mid-frame, an exception frame mid-stream, malformed bodies and frames, a fallback
from Bedrock to another provider, credentials echoed back, and usage that is not a count.

``bedrock`` points at the fault server with a Bedrock API key (Bearer auth: nothing to sign, no region needed); the
server speaks Converse's JSON and ConverseStream's binary event-stream frames (``tests/_eventstream.py``), with
AWS's error envelope (``x-amzn-errortype`` header, ``{"message"}`` body). The B7 cases sign with SigV4 instead,
with canary AWS credentials in the environment. Sync and async, on computekit's default transports; the retry
loop's sleep only records its waits.
"""

from __future__ import annotations

import binascii
import json
import logging
import struct
import traceback
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import vcr
from _eventstream import converse_stream, event, exception_frame, frame
from fault_server import (
    SSE,
    FaultServer,
    Reply,
    Truncated,
    Waits,
    chat,
    close,
    policy,
    provider_clients,
    read_stream,
    run,
)

import computekit as ck
from computekit.pricing import PriceBook, PriceRef

KEY = "bedrock-fault-key-0123456789abcdef"
MODEL = "us.amazon.nova-micro-v1:0"
TARGET = f"bedrock:{MODEL}"
STREAM_TYPE = {"content-type": "application/vnd.amazon.eventstream"}

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
pytestmark = pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")


def converse(text: str = "ok") -> Reply:
    """A Converse answer."""
    return Reply(200, {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                       "stopReason": "end_turn", "usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
                       "metrics": {"latencyMs": 100}}, {"x-amzn-requestid": "req-ok"})


def aws_error(status: int, kind: str, message: str = "injected fault", **headers: str) -> Reply:
    """AWS's error envelope: the exception name in ``x-amzn-errortype``, the message in the body."""
    return Reply(status, {"message": message},
                 {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                  "x-amzn-requestid": f"req-{status}", **headers})


def frames(pieces: list[str], **kw: Any) -> SSE:
    """A ConverseStream answer (one frame per write)."""
    return SSE(converse_stream(pieces, **kw), headers=STREAM_TYPE)


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``clients(is_async, url, waits, backup_url=None, **retry)``: ``bedrock`` is the fault server."""
    async with provider_clients(tmp_path, "bedrock", KEY) as make:
        yield make


def price(usage: ck.Usage) -> Decimal:
    """What ``usage`` costs on MODEL, from the price table (a cross-region profile priced as its base model)."""
    rates = PriceBook().rates(PriceRef("bedrock", MODEL, "aws", alternatives=(MODEL.removeprefix("us."),)))
    assert rates is not None
    total = rates.cost(usage).total
    assert total is not None
    return total


USAGE = ck.Usage(input_tokens=12, output_tokens=5)
"""What ``converse()`` and ``converse_stream()`` report."""


def outcomes(r: Any) -> list[tuple[str, str | None, int | None]]:
    return [(a.outcome, a.error_type, a.status) for a in r.attempts]


def ledger(client: Any) -> list[tuple[str, str, int | None, str | None]]:
    return [(row.provider, row.outcome, row.status, row.error_type) for row in client.ledger.rows()]


def costs(client: Any) -> list[Decimal | None]:
    return [row.cost for row in client.ledger.rows()]


async def complete(client: Any, model: str = TARGET) -> Any:
    return await run(client.complete(model, "hi"))


# ============================================================================================= B1: 429 + hints


@both
@pytest.mark.parametrize(("reply", "waited"), [
    (aws_error(429, "ThrottlingException", "Too many requests", **{"retry-after": "2"}), 2.0),
    (aws_error(429, "ThrottlingException", "Too many requests", **{"retry-after-ms": "1500"}), 1.5),
], ids=["retry-after", "retry-after-ms"])
async def test_b1_throttling_honours_the_retry_hint(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                                    is_async: bool, reply: Reply, waited: float) -> None:
    srv = faults([reply, converse("fine")])
    client = clients(is_async, srv.url, waits)
    r = await complete(client)
    assert r.text == "fine"
    assert waits.waits == [waited]
    assert srv.hits == 2
    assert outcomes(r) == [("error", "RateLimitError", 429), ("success", None, None)]
    assert r.cost.total is not None
    assert ledger(client) == [("bedrock", "error", 429, "RateLimitError"), ("bedrock", "success", None, None)]
    assert srv.requests[0].auth == f"Bearer {KEY}"
    assert srv.requests[0].path.endswith(f"/model/{MODEL}/converse")


@both
async def test_b1_model_not_ready_is_retried_then_runs_out(faults: Callable[..., FaultServer], clients: Any,
                                                          waits: Waits, is_async: bool) -> None:
    srv = faults(aws_error(429, "ModelNotReadyException", "Model is not ready for inference"))
    client = clients(is_async, srv.url, waits, max_retries=2)
    with pytest.raises(ck.OverloadedError) as ei:
        await complete(client)
    err = ei.value
    assert err.message == "Model is not ready for inference"
    assert err.headers["x-amzn-errortype"].startswith("ModelNotReadyException")
    assert srv.hits == 3
    assert len(waits.waits) == 2
    assert [row[1:] for row in ledger(client)] == [("error", 429, "OverloadedError")] * 3


# ============================================================================================= B2: 5xx


@both
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(("code", "kind"), [(503, "ServiceUnavailableException"), (500, "InternalServerException")])
async def test_b2_5xx_is_retried_then_succeeds(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                               is_async: bool, stream: bool, code: int, kind: str) -> None:
    srv = faults([aws_error(code, kind), frames(["Hel", "lo"]) if stream else converse("Hello")])
    client = clients(is_async, srv.url, waits)
    if stream:
        chunks, s = await read_stream(client, TARGET)
        r = s.result
        assert "".join(c.text for c in chunks) == "Hello"
        assert srv.requests[1].path.endswith(f"/model/{MODEL}/converse-stream")
    else:
        r = await complete(client)
    assert r.text == "Hello"
    assert len(waits.waits) == 1
    assert srv.hits == 2
    assert outcomes(r) == [("error", "ServerError", code), ("success", None, None)]
    assert r.usage.input_tokens == 12
    assert r.cost.total == price(USAGE)
    assert ledger(client) == [("bedrock", "error", code, "ServerError"), ("bedrock", "success", None, None)]
    assert costs(client) == [Decimal(0), price(USAGE)]  # AWS does not bill an error answer


# ============================================================================================= B3: stream cut


@both
@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_b3_stream_cut_mid_frame(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                       is_async: bool, framing: str) -> None:
    sent = converse_stream(["Hel"], metadata=False)[:2]  # messageStart, one delta
    half = converse_stream(["lo"])[1][:17]  # the next frame, cut inside its headers
    srv = faults([SSE(sent, cut=half, framing=framing, headers=STREAM_TYPE), frames(["Hello"])])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.APIConnectionError) as ei:
        await read_stream(client, TARGET)
    assert ei.value.status is None
    assert "".join(c.text for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert waits.waits == []  # a chunk reached the caller: no second try
    assert srv.hits == 1
    assert [row[1:] for row in ledger(client)] == [("error", None, "APIConnectionError")]


@both
async def test_b3_stream_ending_before_its_metadata(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                                    is_async: bool) -> None:
    """Every frame whole, but no metadata event (the usage): the stream is incomplete, not a success."""
    srv = faults([frames(["Hel"], metadata=False), frames(["Hello"])])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.APIConnectionError, match="before its last event") as ei:
        await read_stream(client, TARGET)
    assert "".join(c.text for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert srv.hits == 1
    assert waits.waits == []
    assert [row[1:] for row in ledger(client)] == [("error", None, "APIConnectionError")]
    assert costs(client) == [None]  # no usage was reported: unknown, never 0


@both
@pytest.mark.parametrize("end", ["exception", "cut"])
async def test_b3_stream_failing_after_its_usage_is_priced(faults: Callable[..., FaultServer], clients: Any,
                                                           waits: Waits, is_async: bool, end: str) -> None:
    """The metadata event (the usage) arrived, then an exception frame or a cut: the error is billed that usage."""
    sent = converse_stream(["Hel", "lo"])
    if end == "exception":
        reply = SSE([*sent, exception_frame("internalServerException", "late")], headers=STREAM_TYPE)
    else:
        reply = SSE(sent, cut=converse_stream(["x"])[1][:9], headers=STREAM_TYPE)
    srv = faults([reply, frames(["Hello"])])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.ServerError if end == "exception" else ck.APIConnectionError) as ei:
        await read_stream(client, TARGET)
    assert "".join(c.text for c in ei.value.partial) == "Hello"  # type: ignore[attr-defined]
    assert srv.hits == 1
    assert waits.waits == []
    assert len(client.ledger.rows()) == 1
    assert costs(client) == [price(USAGE)]


# ============================================================================================= B4: exception frame


@both
@pytest.mark.parametrize(("kind", "cls", "status"), [
    ("throttlingException", ck.RateLimitError, 429),
    ("modelStreamErrorException", ck.ServerError, 503),
    ("validationException", ck.BadRequestError, 400),
])
async def test_b4_exception_frame_mid_stream(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                             is_async: bool, kind: str, cls: type, status: int) -> None:
    events = [*converse_stream(["Hel"], metadata=False)[:2], exception_frame(kind, "failed mid-stream")]
    # In one write: the text decoded in the same read as the exception still reaches the caller first.
    srv = faults([SSE(events, headers=STREAM_TYPE, together=True), frames(["Hello"])])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(cls) as ei:
        await read_stream(client, TARGET)
    assert type(ei.value) is cls
    assert ei.value.message == "failed mid-stream"
    assert ei.value.status == status
    assert "".join(c.text for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert waits.waits == []
    assert srv.hits == 1
    assert [row[1:] for row in ledger(client)] == [("error", status, cls.__name__)]


# ============================================================================================= B5: malformed


@both
@pytest.mark.parametrize("reply", [
    Reply(200, "<html>gateway</html>", {"content-type": "text/html"}),
    Reply(200, {"output": {"message": {"role": "assistant", "content": "not a list"}}}),
    Reply(200, [1, 2, 3]),
], ids=["not-json", "content-not-a-list", "top-level-array"])
async def test_b5_malformed_converse_body(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                          is_async: bool, reply: Reply) -> None:
    srv = faults([reply, converse()])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.MalformedResponseError) as ei:
        await complete(client)
    assert ei.value.status == 200
    assert ei.value.body is not None
    assert srv.hits == 1  # not retried
    assert [row[1:] for row in ledger(client)] == [("error", 200, "MalformedResponseError")]


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _raw_frame(headers: bytes, payload: bytes) -> bytes:
    """A frame with ``headers`` as they are (checksums right): for headers ``frame()`` would not write."""
    prelude = struct.pack("!II", 12 + len(headers) + len(payload) + 4, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


def _header(name: bytes, kind: int, value: bytes) -> bytes:
    return struct.pack("!B", len(name)) + name + struct.pack("!B", kind) + struct.pack("!H", len(value)) + value


_DELTA = b'{"contentBlockIndex":0,"delta":{"text":"lo"}}'
CORRUPT = {
    "message-crc": lambda good: _flipped(good, len(good) - 1),
    "prelude-crc": lambda good: _flipped(good, 8),
    "header-of-unknown-type": lambda good: _raw_frame(_header(b":message-type", 99, b"event"), _DELTA),
    "header-name-not-utf8": lambda good: _raw_frame(_header(b"\xff\xfe", 7, b"event"), _DELTA),
    "no-message-type": lambda good: frame({":event-type": "contentBlockDelta"}, _DELTA),
    "unknown-message-type": lambda good: frame({":message-type": "garbage", ":event-type": "contentBlockDelta"},
                                               _DELTA),
}


@both
@pytest.mark.parametrize("together", [False, True], ids=["frame-per-write", "one-write"])
@pytest.mark.parametrize("corrupt", list(CORRUPT))
async def test_b5_corrupt_frame_is_malformed(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                             is_async: bool, together: bool, corrupt: str) -> None:
    """A frame that does not parse (a checksum that does not match, a header botocore cannot read, a message type
    AWS never sends) is a malformed answer, not a raw ``KeyError`` or a server's 500: one ledger row, no retry."""
    good = converse_stream(["Hel", "lo"])
    events = [good[0], good[1], CORRUPT[corrupt](good[2]), *good[3:]]  # the second delta corrupted
    srv = faults([SSE(events, headers=STREAM_TYPE, together=together), frames(["Hello"])])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.MalformedResponseError, match="corrupt event-stream frame") as ei:
        await read_stream(client, TARGET)
    assert ei.value.status == 200
    # The frames before the corrupt one reach the caller, even when they came in the same read.
    assert "".join(c.text for c in ei.value.partial) == "Hel"  # type: ignore[attr-defined]
    assert srv.hits == 1
    assert waits.waits == []
    assert [row[1:] for row in ledger(client)] == [("error", 200, "MalformedResponseError")]
    assert costs(client) == [None]


@both
async def test_b5_truncated_converse_body(faults: Callable[..., FaultServer], clients: Any, waits: Waits,
                                          is_async: bool) -> None:
    body = json.loads(json.dumps(converse("Hello").body))
    srv = faults([Truncated(body), converse("Hello")])
    client = clients(is_async, srv.url, waits)
    r = await complete(client)
    assert r.text == "Hello"
    assert outcomes(r) == [("error", "APIConnectionError", None), ("success", None, None)]


# ============================================================================================= B6: fallback


@both
async def test_b6_bedrock_failing_falls_back_to_another_provider(faults: Callable[..., FaultServer], clients: Any,
                                                                 waits: Waits, is_async: bool) -> None:
    a = faults(aws_error(403, "AccessDeniedException", "You don't have access to the model with the specified id."))
    b = faults(chat("from backup", model="gpt-4o-mini"))
    client = clients(is_async, a.url, waits, backup_url=b.url)
    r = await run(client.complete([TARGET, "backup:gpt-4o-mini"], "hi"))
    assert r.text == "from backup"
    assert r.provider == "backup"
    assert outcomes(r) == [("error", "PermissionDeniedError", 403), ("success", None, None)]
    assert (a.hits, b.hits) == (1, 1)  # a 403 is not retried
    assert ledger(client) == [("bedrock", "error", 403, "PermissionDeniedError"), ("backup", "success", None, None)]


# ============================================================================================= B7: canary key


CANARY = "ABSKQmVkcm9ja0FQSUtleS1jYW5hcnktMDEyMzQ1Njc4OQ=="


def _files(folder: Path, pattern: str) -> dict[str, str]:
    """The database and its -wal / -shm files, as text."""
    return {f.name: f.read_bytes().decode("latin-1") for f in sorted(folder.glob(pattern))}


@both
async def test_b7_bedrock_api_key_echoed_back_never_leaks(faults: Callable[..., FaultServer], waits: Waits,
                                                          is_async: bool, tmp_path: Path) -> None:
    """A host echoing the Bedrock API key (in a header, an error message, an exception frame): the key is in no
    exception, repr, ledger row or database file."""
    echo = {"x-amzn-requestid": CANARY, "x-echo": CANARY}
    srv = faults([
        aws_error(403, "AccessDeniedException", f"Key {CANARY} has no access", **echo),
        SSE([*converse_stream(["Hel"], metadata=False)[:2],
             exception_frame("validationException", f"bad request for {CANARY}")], headers=STREAM_TYPE),
        Reply(200, f"<html>{CANARY}</html>", {"content-type": "text/html", **echo}),
    ])
    db = tmp_path / "canary.db"
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits), ledger=f"sqlite:///{db}",
                 providers={"bedrock": {"base_url": srv.url, "api_key": CANARY}})
    errors: list[BaseException] = []
    for attempt in (complete(client), read_stream(client, TARGET), complete(client)):
        try:
            await attempt
        except ck.ProviderError as e:
            errors.append(e)
    rows = client.ledger.rows()
    await close(client)
    assert srv.requests[0].auth == f"Bearer {CANARY}"  # the host did get (and echo) the key: not vacuous
    assert [type(e) for e in errors] == [ck.PermissionDeniedError, ck.BadRequestError, ck.MalformedResponseError]
    surfaces = {"errors": "".join(f"{e!s}{e!r}{vars(e)!r}" for e in errors), "ledger": repr(rows),
                **_files(tmp_path, "canary.db*")}
    assert sorted(name for name, text in surfaces.items() if CANARY in text) == []


# ============================================================================================= B7: AWS credentials


ACCESS_KEY_ID = "AKIAFAULTCANARY00042"
SECRET_ACCESS_KEY = "fault/Canary+SecretAccessKey0123456789abcd"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjFAULTcanarySessionToken0123456789abcdefABCDEF/+=="
AWS_CANARIES = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)


@pytest.fixture
def aws_canaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Temporary AWS credentials in the environment (and nothing else of AWS's): requests are signed with SigV4."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for var in ("AWS_BEARER_TOKEN_BEDROCK", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _echoed(req: Any) -> str:
    """Everything of the credentials a (hostile) host could send back: the session token and Authorization it got,
    and the secret access key (which never goes on the wire; echoed all the same, as if it had leaked elsewhere)."""
    return f"{req.headers.get('x-amz-security-token')} {req.headers.get('authorization')} {SECRET_ACCESS_KEY}"


def _echo_error(status: int, kind: str) -> Callable[..., bool]:
    def behave(srv: FaultServer, req: Any, sock: Any) -> bool:
        echo = _echoed(req)
        return aws_error(status, kind, f"The security token included in the request is invalid: {echo}",
                         **{"x-amzn-requestid": echo, "x-echo": echo})(srv, req, sock)

    return behave


def _echo_answer(srv: FaultServer, req: Any, sock: Any) -> bool:
    answer = converse("Hello")
    return Reply(answer.status, answer.body, {"x-amzn-requestid": _echoed(req)})(srv, req, sock)


def _echo_exception_frame(srv: FaultServer, req: Any, sock: Any) -> bool:
    sent = converse_stream(["Hel"], metadata=False)[:2]
    return SSE([*sent, exception_frame("validationException", f"bad request: {_echoed(req)}")],
               headers={**STREAM_TYPE, "x-amzn-requestid": _echoed(req)})(srv, req, sock)


def _echo_page(srv: FaultServer, req: Any, sock: Any) -> bool:
    return Reply(200, f"<html>{_echoed(req)}</html>", {"content-type": "text/html"})(srv, req, sock)


CANARY_SCRIPT: list[Any] = [
    _echo_error(403, "UnrecognizedClientException"),  # call 1: not retried
    _echo_error(500, "InternalServerException"), _echo_answer,  # call 2: retried, then an answer
    _echo_exception_frame,  # call 3: a stream
    _echo_page,  # call 4: not JSON
]


async def _canary_calls(client: Any) -> tuple[list[Any], list[ck.ProviderError]]:
    results: list[Any] = []
    errors: list[ck.ProviderError] = []
    for call in (complete, complete, read_stream, complete):
        try:
            results.append(await call(client, TARGET))
        except ck.ProviderError as e:
            errors.append(e)
    return results, errors


@both
@pytest.mark.usefixtures("aws_canaries")
async def test_b7_aws_credentials_echoed_back_never_leak(faults: Callable[..., FaultServer], waits: Waits,
                                                        is_async: bool, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """SigV4 with temporary credentials, and a host that echoes them (the session token, Authorization, the secret
    key) in headers, error messages, an exception frame and a page: none of the three is in an exception, its repr
    or traceback, a result, a log record (botocore's signer logs each canonical request at DEBUG), a ledger row or
    the database files."""
    caplog.set_level(logging.DEBUG)
    srv = faults(CANARY_SCRIPT)
    db = tmp_path / "canary.db"
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits), ledger=f"sqlite:///{db}",
                 providers={"bedrock": {"base_url": srv.url}})
    try:
        results, errors = await _canary_calls(client)
        rows = client.ledger.rows()
    finally:
        await close(client)
    # Signed with the canaries, and echoed back: not vacuous.
    assert srv.requests[0].headers["x-amz-security-token"] == SESSION_TOKEN
    assert srv.requests[0].auth.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")  # type: ignore[union-attr]
    assert [type(e) for e in errors] == [ck.AuthenticationError, ck.BadRequestError, ck.MalformedResponseError]
    assert [r.text for r in results] == ["Hello"]
    assert srv.hits == 5
    assert len(rows) == 5
    assert "**********" in errors[0].message  # masked where the host echoed them
    surfaces = {"log records": caplog.text + repr([(r.msg, r.args) for r in caplog.records]),
                "ledger rows": repr(rows), **_files(tmp_path, "canary.db*")}
    for i, e in enumerate(errors):
        surfaces[f"error {i}"] = f"{e!s}{e!r}{vars(e)!r}" + "".join(traceback.format_exception(e))
    for i, r in enumerate(results):
        surfaces[f"result {i}"] = f"{r.request_id} {r.attempts!r} " + " ".join(str(a.error) for a in r.attempts)
    assert "CanonicalRequest" in surfaces["log records"]  # botocore did log what it signed
    leaked = {canary[:8]: sorted(name for name, text in surfaces.items() if canary in text)
              for canary in AWS_CANARIES}
    assert leaked == {canary[:8]: [] for canary in AWS_CANARIES}


@both
@pytest.mark.usefixtures("aws_canaries")
async def test_b7_aws_credentials_not_in_a_recorded_cassette(faults: Callable[..., FaultServer], waits: Waits,
                                                             is_async: bool, tmp_path: Path,
                                                             vcr_config: dict[str, Any]) -> None:
    srv = faults(CANARY_SCRIPT)
    cassette = tmp_path / "canary.yaml"
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits), ledger="none", providers={"bedrock": {"base_url": srv.url}})
    try:
        with vcr.VCR(**vcr_config).use_cassette(str(cassette), record_mode="all"):
            _, errors = await _canary_calls(client)
    finally:
        await close(client)
    assert srv.hits == 5
    assert [type(e) for e in errors] == [ck.AuthenticationError, ck.BadRequestError, ck.MalformedResponseError]
    text = cassette.read_text("utf-8")
    assert "The security token included in the request is invalid" in text  # the echoing answers were recorded
    assert [canary[:8] for canary in AWS_CANARIES if canary in text] == []


# ============================================================================================= B8: usage counts


NOT_COUNTS = {"negative": -5, "a-string": "12", "fractional": 1.5, "a-boolean": True}


@both
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("count", list(NOT_COUNTS))
async def test_b8_usage_that_is_not_a_count_is_malformed(faults: Callable[..., FaultServer], clients: Any,
                                                        waits: Waits, is_async: bool, stream: bool,
                                                        count: str) -> None:
    """An ``inputTokens`` that is not a whole number of 0 or more is a malformed answer (recorded, its cost unknown,
    not retried), not a count of 0 that bills the call for fewer tokens than it used."""
    usage = {"inputTokens": NOT_COUNTS[count], "outputTokens": 5, "totalTokens": 17}
    if stream:
        reply: Any = SSE([*converse_stream(["Hel"], metadata=False), event("metadata", {"usage": usage})],
                         headers=STREAM_TYPE)
    else:
        reply = converse("Hello")
        reply = Reply(200, {**reply.body, "usage": usage}, reply.headers)  # type: ignore[dict-item]
    srv = faults([reply, converse("Hello")])
    client = clients(is_async, srv.url, waits)
    with pytest.raises(ck.MalformedResponseError, match="inputTokens is not a token count") as ei:
        await (read_stream(client, TARGET) if stream else complete(client))
    assert ei.value.status == 200
    assert srv.hits == 1
    assert waits.waits == []
    assert [row[1:] for row in ledger(client)] == [("error", 200, "MalformedResponseError")]
    assert costs(client) == [None]


AWS_EXAMPLE_KEY = "AKIAIOSFODNN7EXAMPLE"
"""AWS's documented example access key id: key-shaped, so the recording filter masks it wherever it appears."""


@both
async def test_b7_a_stream_with_something_masked_replays_whole(faults: Callable[..., FaultServer], clients: Any,
                                                              waits: Waits, is_async: bool, tmp_path: Path,
                                                              vcr_config: dict[str, Any]) -> None:
    """A ConverseStream whose frames hold something the recording filter masks (here a model writing AWS's example
    access key id) is written with each frame's lengths and checksums made right again: it replays as the answer it
    was, not as a cut stream (frames shorter than their prelude says) or a corrupt one."""
    srv = faults(frames(["Set AWS_ACCESS_KEY_ID=", AWS_EXAMPLE_KEY, " first."]))
    cassette = tmp_path / "masked-stream.yaml"
    client = clients(is_async, srv.url, waits)
    with vcr.VCR(**vcr_config).use_cassette(str(cassette), record_mode="all"):
        _, live = await read_stream(client, TARGET)
    assert AWS_EXAMPLE_KEY in live.result.text  # the model did write it: not vacuous
    assert AWS_EXAMPLE_KEY not in cassette.read_text("utf-8")
    replaying = clients(is_async, srv.url, waits)
    with vcr.VCR(**vcr_config).use_cassette(str(cassette), record_mode="none"):
        chunks, replayed = await read_stream(replaying, TARGET)
    assert srv.hits == 1  # the second stream came from the cassette
    assert replayed.result.text == "Set AWS_ACCESS_KEY_ID=REDACTED first."
    assert "".join(c.text for c in chunks) == replayed.result.text
    assert replayed.result.usage.input_tokens == USAGE.input_tokens
