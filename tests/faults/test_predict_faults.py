"""Faults on the requests of ``predict()``, against the loopback fault server, sync and async, default transports.

The request that creates a run starts billed GPU work. Without an idempotency key it is sent *at most once*: a
5xx, a reset or a read timeout after the request went out may each have started a job, so none is retried (that
could run, and bill, the job twice); a connection that was never made (refused) or a refusal (429) is retried as
usual. Polls, lookups and cancels are GETs or idempotent, and keep the normal retries. ``timeout=`` bounds the
create too. Every test asserts the server's hit count (the attempts that reached it) and the waits the retry loop
asked for (recorded, never slept).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fault_server import (
    FaultServer,
    Hang,
    Reply,
    Request,
    Reset,
    Waits,
    close,
    error,
    policy,
    prediction,
    run,
    unused_port,
)

import computekit as ck
from computekit.pricing import PriceBook

MODEL = "replicate:acme/upscaler"
KEY = "r8_fault0123456789abcdefghij"
BACKOFF = [0.5, 1.0, 2.0]  # MaxJitter waits for tries 1, 2, 3 with the default backoff settings

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


def succeeded() -> Callable[..., bool]:
    return prediction("succeeded", 201, output=["ok"], metrics={"predict_time": 2.0})


def client_for(is_async: bool, base_url: str, waits: Waits, tmp_path: Path, **replicate: Any) -> Any:
    cls = ck.AsyncClient if is_async else ck.Client
    return cls(config=None, retry_policy=policy(waits, max_retries=2),
               providers={"replicate": {"base_url": base_url, "api_key": KEY, **replicate}},
               ledger=f"sqlite:///{tmp_path / 'ledger.db'}")


def per_second(sku: str) -> Decimal:
    found = PriceBook().per_second("replicate", sku)
    assert found is not None
    return found[0]


def creates(srv: FaultServer) -> list[Request]:
    return [r for r in srv.requests if r.method == "POST" and r.path.endswith("/predictions")]


def ledger(client: Any) -> list[tuple[str, int | None, str | None]]:
    return [(row.outcome, row.status, row.error_type) for row in client.ledger.rows()]


# ============================================================================================= the create


@both
async def test_a_reset_on_the_create_is_not_retried(faults: Any, waits: Waits, is_async: bool,
                                                    tmp_path: Path) -> None:
    srv = faults([Reset(), succeeded()])
    client = client_for(is_async, srv.url, waits, tmp_path)
    try:
        with pytest.raises(ck.APIConnectionError) as info:
            await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4"))
    finally:
        await close(client)
    assert srv.hits == 1  # one create reached the host: a second could have run a second, billed job
    assert waits.waits == []
    assert info.value.maybe_processed is True
    assert any("not retried" in note for note in info.value.__notes__)
    assert ledger(client) == [("error", None, "APIConnectionError")]


@both
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_on_the_create_is_not_retried(faults: Any, waits: Waits, is_async: bool, tmp_path: Path,
                                                  status: int) -> None:
    srv = faults([error(status), succeeded()])
    client = client_for(is_async, srv.url, waits, tmp_path)
    try:
        with pytest.raises(ck.ServerError) as info:
            await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4"))
    finally:
        await close(client)
    assert info.value.status == status
    assert srv.hits == 1
    assert waits.waits == []
    assert ledger(client) == [("error", status, "ServerError")]


@both
async def test_a_refused_connection_is_retried(waits: Waits, is_async: bool, tmp_path: Path) -> None:
    client = client_for(is_async, f"http://127.0.0.1:{unused_port()}/v1", waits, tmp_path)
    try:
        with pytest.raises(ck.APIConnectionError) as info:
            await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4"))
    finally:
        await close(client)
    assert info.value.maybe_processed is False  # no connection was made: the host never saw the request
    assert waits.waits == BACKOFF[:2]  # so it is sent again, like any request: 1 + max_retries tries
    assert ledger(client) == [("error", None, "APIConnectionError")] * 3


@both
async def test_a_429_on_the_create_is_retried(faults: Any, waits: Waits, is_async: bool, tmp_path: Path) -> None:
    srv = faults([error(429, headers={"retry-after": "1"}), succeeded()])
    client = client_for(is_async, srv.url, waits, tmp_path)
    try:
        p = await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4"))
    finally:
        await close(client)
    assert p.status == "succeeded"
    assert len(creates(srv)) == 2  # a 429 is a refusal: nothing ran
    assert waits.waits == [1.0]
    assert [a.outcome for a in p.attempts] == ["error", "success"]
    assert p.cost.total == Decimal("2.0") * per_second("gpu-t4")


@both
async def test_with_an_idempotency_key_a_reset_create_is_retried_with_the_same_key(
    faults: Any, waits: Waits, is_async: bool, tmp_path: Path
) -> None:
    srv = faults([Reset(), succeeded()])
    client = client_for(is_async, srv.url, waits, tmp_path, idempotency_header="Idempotency-Key")
    try:
        p = await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4"))
    finally:
        await close(client)
    assert p.status == "succeeded"
    assert srv.hits == 2
    keys = {r.headers["idempotency-key"] for r in srv.requests}
    assert len(keys) == 1  # the host sees one key and runs the job once
    assert waits.waits == BACKOFF[:1]


@both
async def test_timeout_bounds_the_create(faults: Any, waits: Waits, is_async: bool, tmp_path: Path) -> None:
    srv = faults(Hang(3.0))
    client = client_for(is_async, srv.url, waits, tmp_path)
    t0 = time.monotonic()
    try:
        with pytest.raises(ck.PredictionTimeoutError) as info:
            await run(client.predict(MODEL, {"x": 1}, validate=False, timeout=0.4))
    finally:
        await close(client)
    assert time.monotonic() - t0 < 2.5  # bounded by timeout=, not by the provider's 600 s read timeout
    assert info.value.prediction is None  # no id came back: nothing to cancel
    assert "may have started" in str(info.value)
    assert srv.hits == 1  # a read timeout is not retried either
    assert waits.waits == []
    assert srv.requests[0].headers["prefer"] == "wait=1"  # the host is not asked to hold it longer than that


# ============================================================================================= idempotent requests


@both
async def test_a_reset_on_a_poll_is_retried(faults: Any, waits: Waits, is_async: bool, tmp_path: Path) -> None:
    srv = faults([prediction("starting", 201), Reset(),
                  prediction("succeeded", output=["ok"], metrics={"predict_time": 2.0})])
    client = client_for(is_async, srv.url, waits, tmp_path)
    try:
        p = await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4", poll_interval=1.0))
    finally:
        await close(client)
    assert p.status == "succeeded"
    assert [r.method for r in srv.requests] == ["POST", "GET", "GET"]
    # The poll interval, then one retry backoff; aiohttp itself resends an idempotent request whose reused
    # keep-alive connection was reset (RFC 9112 9.3.1), before computekit's loop sees the error.
    assert waits.waits == [1.0] + ([] if is_async else BACKOFF[:1])
    [row] = client.ledger.rows()
    assert (row.outcome, row.cost) == ("success", Decimal("2.0") * per_second("gpu-t4"))


@both
async def test_a_reset_on_the_schema_lookup_is_retried(faults: Any, waits: Waits, is_async: bool,
                                                       tmp_path: Path) -> None:
    model = {"owner": "acme", "name": "upscaler", "latest_version": {"id": "v1", "openapi_schema": {
        "components": {"schemas": {"Input": {"type": "object", "properties": {"x": {"type": "integer"}}}}}}}}
    srv = faults([Reset(), Reply(200, model), succeeded()])
    client = client_for(is_async, srv.url, waits, tmp_path)
    try:
        p = await run(client.predict(MODEL, {"x": 1}, hardware="gpu-t4"))
        with pytest.raises(ck.InputValidationError):  # the schema is cached: no lookup, no create
            await run(client.predict(MODEL, {"x": "one"}))
    finally:
        await close(client)
    assert p.status == "succeeded"
    assert [(r.method, r.path) for r in srv.requests] == [
        ("GET", "/v1/models/acme/upscaler"), ("GET", "/v1/models/acme/upscaler"),
        ("POST", "/v1/models/acme/upscaler/predictions"),
    ]
    assert waits.waits == ([] if is_async else BACKOFF[:1])  # (aiohttp resends a reset GET itself, see above)
    assert len(client.ledger.rows()) == 1  # lookups are not billed: only the run is in the ledger


# ============================================================================================= recorded once


@both
async def test_a_run_seen_ending_twice_is_recorded_once(faults: Any, waits: Waits, is_async: bool,
                                                        tmp_path: Path) -> None:
    """The same running handle refreshed twice, then a second client on the same ledger (another process: a
    webhook handler that looks the run up by its id) seeing it end: one row, under the run's once-only key."""
    srv = faults([prediction("starting", 201),
                  prediction("succeeded", output=["ok"], metrics={"predict_time": 2.0})])
    client = client_for(is_async, srv.url, waits, tmp_path)
    other = client_for(is_async, srv.url, waits, tmp_path)
    try:
        p = await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4", wait=False))
        first = await run(client.predictions.refresh(p))
        second = await run(client.predictions.refresh(p))  # the same handle, still "starting"
        told = ck.Prediction(provider="replicate", model="acme/upscaler", id=p.id, status="running")
        third = await run(other.predictions.refresh(told))
    finally:
        await close(client)
        await close(other)
    assert [x.status for x in (first, second, third)] == ["succeeded"] * 3
    assert [r.method for r in srv.requests] == ["POST", "GET", "GET", "GET"]
    rows = client.ledger.rows()
    assert [(r.outcome, r.request_id, r.once_key) for r in rows] == [("success", p.id, f"predict:replicate:{p.id}")]
    assert rows[0].cost == Decimal("2.0") * per_second("gpu-t4")


@both
async def test_a_poll_answered_with_another_run_is_malformed(faults: Any, waits: Waits, is_async: bool,
                                                             tmp_path: Path) -> None:
    """A poll whose answer is another run's state is not taken for this run's end: recorded under the other id,
    it would take that run's once-only key and leave this one unrecorded."""
    srv = faults([prediction("starting", 201),
                  prediction("succeeded", pid="someone-elses", output=["ok"], metrics={"predict_time": 2.0})])
    client = client_for(is_async, srv.url, waits, tmp_path)
    try:
        p = await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4", wait=False))
        with pytest.raises(ck.MalformedResponseError, match="someone-elses") as info:
            await run(client.predictions.refresh(p))
    finally:
        await close(client)
    assert info.value.status == 200
    assert [r.method for r in srv.requests] == ["POST", "GET"]  # a malformed answer is not retried
    assert client.ledger.rows() == []  # nothing recorded under the other run's id


@both
async def test_a_run_looked_up_by_its_id_is_priced_on_the_configured_hardware(faults: Any, waits: Waits,
                                                                              is_async: bool,
                                                                              tmp_path: Path) -> None:
    """A process that did not start the run (a webhook handler) looks it up by the id a delivery names: its row
    is priced on the hardware config names for the model, as predict() would have priced it."""
    srv = faults(prediction("succeeded", output=["ok"], metrics={"predict_time": 2.0}))
    client = client_for(is_async, srv.url, waits, tmp_path, hardware={"acme/upscaler": "gpu-t4"})
    try:
        told = ck.Prediction(provider="replicate", model="acme/upscaler", id="pf01", status="running")
        p = await run(client.predictions.refresh(told))
    finally:
        await close(client)
    assert (p.status, p.usage.hardware) == ("succeeded", "gpu-t4")
    assert p.cost.total == Decimal("2.0") * per_second("gpu-t4")
    [row] = client.ledger.rows()
    assert (row.cost, row.estimated, row.once_key) == (p.cost.total, False, "predict:replicate:pf01")


def echoing(status: str, code: int = 200, **fields: str | float) -> Callable[..., bool]:
    """A prediction whose text fields hold the request's Authorization value wherever they say ``{auth}``."""

    def behave(srv: FaultServer, req: Request, sock: Any) -> bool:
        filled = {k: v.replace("{auth}", req.auth or "") if isinstance(v, str) else v for k, v in fields.items()}
        return prediction(status, code, pid=(req.auth or "") if filled.pop("pid_is_auth", "") else "pf01",
                          **filled)(srv, req, sock)

    return behave


@both
async def test_a_key_the_host_echoes_in_a_failed_run_never_leaks(faults: Any, waits: Waits, is_async: bool,
                                                                 tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A host that puts the key in a failed run's error, logs and body (and, on another run, in the run's id):
    masked in the error (message, repr, traceback, body), the prediction it carries, its attempts (and so its
    span), the log records, the ledger rows and the database files."""
    caplog.set_level(logging.DEBUG)
    srv = faults([prediction("starting", 201),
                  echoing("failed", error="invalid token {auth}", logs="sent {auth}\n",
                          metrics={"predict_time": 1.0}),
                  echoing("succeeded", 201, pid_is_auth="yes", metrics={"predict_time": 1.0})])
    db = tmp_path / "ledger.db"
    client = client_for(is_async, srv.url, waits, tmp_path)
    try:
        with pytest.raises(ck.PredictionFailedError) as info:
            await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4", poll_interval=0))
        other = await run(client.predict(MODEL, {"x": 1}, validate=False, hardware="gpu-t4"))
        rows = client.ledger.rows()
    finally:
        await close(client)
    assert srv.requests[1].auth == f"Bearer {KEY}"  # the host did have the key to echo
    err, failed = info.value, info.value.prediction
    assert "invalid token Bearer **********" in str(err)
    surfaces = {
        "error": str(err), "repr": repr(err), "traceback": "".join(traceback.format_exception(err)),
        "body": repr(err.body), "prediction": repr(failed), "fields": repr((failed.error, failed.logs, failed.raw)),
        "attempts": repr(failed.attempts), "other run": repr((other.id, other.raw, other.attempts)),
        "log records": caplog.text, "ledger rows": repr(rows),
    }
    for name in sorted(db.parent.glob(db.name + "*")):  # the database, and its -wal / -shm files
        surfaces[name.name] = name.read_bytes().decode("latin-1")
    assert [(r.outcome, r.error_type) for r in rows] == [("error", "PredictionFailedError"), ("success", None)]
    assert sorted(name for name, text in surfaces.items() if KEY in text) == []


@both
async def test_a_poll_that_fails_names_the_run_still_going(faults: Any, waits: Waits, is_async: bool,
                                                          tmp_path: Path) -> None:
    """predict() (waiting) whose poll is answered with a page that is not JSON: the error names the run, which goes
    on (and bills) on the host, so the caller can follow it; followed by that id, it is recorded once."""
    srv = faults([prediction("starting", 201), Reply(200, b"<html>maintenance</html>", {"content-type": "text/html"}),
                  prediction("succeeded", output=["ok"], metrics={"predict_time": 2.0})])
    client = client_for(is_async, srv.url, waits, tmp_path, hardware={"acme/upscaler": "gpu-t4"})
    try:
        with pytest.raises(ck.MalformedResponseError) as info:
            await run(client.predict(MODEL, {"x": 1}, validate=False, poll_interval=0))
        assert client.ledger.rows() == []  # the run has not ended: nothing to record yet
        [note] = [n for n in info.value.__notes__ if "pf01" in n]
        assert "may still be running" in note
        followed = ck.Prediction(provider="replicate", model="acme/upscaler", id="pf01", status="running")
        done = await run(client.predictions.wait(followed, poll_interval=0))
    finally:
        await close(client)
    assert info.value.status == 200
    assert [r.method for r in srv.requests] == ["POST", "GET", "GET"]  # the malformed poll was not retried
    assert done.status == "succeeded"
    [row] = client.ledger.rows()
    assert (row.outcome, row.cost) == ("success", Decimal("2.0") * per_second("gpu-t4"))
