"""Faults on the requests of ``batch()``, against the loopback fault server, sync and async, default transports.

Polls and result downloads are GETs: a 5xx or a reset is retried like any idempotent request (waits recorded,
never slept). A result file whose body breaks mid-way is downloaded again from the start, the lines already read
skipped: no item is yielded or recorded twice. A process that dies between submit and results leaves nothing to
lose: another one attaches by id and records every item once (the rows' once-only key), on SQLite and PostgreSQL,
and settles the submitter's budget reservation, held in the shared ledger under the batch's key.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer, Reply, Reset, Truncated, Waits, close, error, make_client, run

import computekit as ck
from computekit.pricing import BATCH_CONTEXT, PriceBook, PriceRef

MODEL = "openai:gpt-4o-mini"
BATCH_ID = "batch_fault01"
BACKOFF = [0.5, 1.0, 2.0]  # MaxJitter waits for tries 1, 2, 3 with the default backoff settings
REQUESTS = [{"custom_id": f"q{i}", "messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": 8}
            for i in (1, 2, 3)]

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


def batch(status: str, **extra: Any) -> Reply:
    counts = {"total": 3, "completed": 3, "failed": 0} if status == "completed" else {"total": 3, "completed": 0,
                                                                                         "failed": 0}
    return Reply(200, {"id": BATCH_ID, "object": "batch", "endpoint": "/v1/chat/completions",
                       "model": "gpt-4o-mini-2024-07-18",
                       "input_file_id": "file-in", "completion_window": "24h", "status": status,
                       "created_at": 1_764_236_401, "request_counts": counts, **extra})


def done() -> Reply:
    return batch("completed", output_file_id="file-out", completed_at=1_764_240_060)


def line(cid: str, prompt: int, completion: int) -> str:
    body = {"id": f"chatcmpl-{cid}", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    return json.dumps({"custom_id": cid, "response": {"status_code": 200, "request_id": f"req-{cid}", "body": body},
                       "error": None}) + "\n"


OUTPUT = line("q1", 9, 2) + line("q2", 9, 3) + line("q3", 9, 4)
SUBMIT = [Reply(200, {"object": "file", "id": "file-in", "purpose": "batch", "filename": "batch.jsonl", "bytes": 1,
                      "status": "processed"}), batch("validating")]


def expected_cost() -> Decimal:
    ref = ck.Client(config=None, ledger="none")._core.adapter("openai").price_ref("gpt-4o-mini-2024-07-18")
    rates = PriceBook().rates(PriceRef(ref.provider, ref.model, ref.table_provider, context=(BATCH_CONTEXT,)))
    assert rates is not None
    return sum(((9 * rates.prices["input_mtok"] + c * rates.prices["output_mtok"]) / Decimal(1_000_000)
                for c in (2, 3, 4)), Decimal(0))


async def read(client: Any, job: ck.BatchJob) -> list[str]:
    it = client.batches.results(job)
    if isinstance(client, ck.AsyncClient):
        return [cid async for cid, _ in it]
    return [cid for cid, _ in it]


def rows(client: Any) -> list[Any]:
    return [r for r in client.ledger.rows() if r.verb == "batch"]


def paths(srv: FaultServer) -> list[str]:
    return [f"{r.method} {r.path.split('?')[0]}" for r in srv.requests]


@both
async def test_5xx_and_resets_while_polling_are_retried(faults: Any, waits: Waits, is_async: bool,
                                                        tmp_path: Path) -> None:
    srv = faults([*SUBMIT, error(503), Reset(), batch("in_progress"), error(500), done(), Reply(200, OUTPUT)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        job = await run(client.batch(MODEL, REQUESTS))
        job = await run(client.batches.wait(job, poll_interval=0))
        assert job.status == "completed"
        assert await read(client, job) == ["q1", "q2", "q3"]
    finally:
        await close(client)
    polls = f"GET /v1/batches/{BATCH_ID}"
    assert paths(srv) == ["POST /v1/files", "POST /v1/batches", polls, polls, polls, polls, polls,
                          "GET /v1/files/file-out/content"]
    # poll 1: 503, then a reset, then an answer (two backoffs); poll 2: 500, then an answer (one backoff). aiohttp
    # resends a GET whose reused keep-alive connection was reset once by itself, before the retry loop sees it:
    # the same requests reach the host, one backoff fewer is asked for.
    reset_backoff = [] if is_async else [BACKOFF[1]]
    assert waits.waits == [0, BACKOFF[0], *reset_backoff, 0, BACKOFF[0]]
    assert job.cost.total == expected_cost()
    assert len(rows(client)) == 3


@both
async def test_polls_that_keep_failing_raise_the_servers_error_after_the_retries(faults: Any, waits: Waits,
                                                                                 is_async: bool) -> None:
    srv = faults([*SUBMIT, error(503)])
    client = make_client(is_async, srv.url, waits)
    try:
        job = await run(client.batch(MODEL, REQUESTS))
        with pytest.raises(ck.ServerError) as info:
            await run(client.batches.wait(job, poll_interval=0))
    finally:
        await close(client)
    assert info.value.status == 503
    assert srv.hits == 2 + 3  # the submit, then 1 + max_retries polls
    assert waits.waits == [0, *BACKOFF[:2]]


@both
async def test_an_interrupted_results_download_restarts_without_recording_twice(faults: Any, waits: Waits,
                                                                                is_async: bool,
                                                                                tmp_path: Path) -> None:
    missing = len(OUTPUT) - len(line("q1", 9, 2)) - 7  # the first line arrives whole, the second cut short
    srv = faults([*SUBMIT, done(), Truncated(OUTPUT, missing=missing), Reply(200, OUTPUT)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        job = await run(client.batch(MODEL, REQUESTS))
        job = await run(client.batches.wait(job, poll_interval=0))
        assert await read(client, job) == ["q1", "q2", "q3"]  # q1 read once, before the break
    finally:
        await close(client)
    assert paths(srv)[-2:] == ["GET /v1/files/file-out/content"] * 2  # downloaded again from the start
    assert waits.waits == [0, BACKOFF[0]]
    assert sorted(r.tags["custom_id"] for r in rows(client)) == ["q1", "q2", "q3"]
    assert job.cost.total == expected_cost()


@both
async def test_a_download_that_keeps_breaking_raises_after_the_retries(faults: Any, waits: Waits,
                                                                       is_async: bool, tmp_path: Path) -> None:
    srv = faults([*SUBMIT, done(), Truncated(OUTPUT, missing=5)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        job = await run(client.batch(MODEL, REQUESTS))
        job = await run(client.batches.wait(job, poll_interval=0))
        with pytest.raises(ck.APIConnectionError):
            await read(client, job)
    finally:
        await close(client)
    assert paths(srv).count("GET /v1/files/file-out/content") == 3  # 1 + max_retries downloads
    assert sorted(r.tags["custom_id"] for r in rows(client)) == ["q1", "q2"]  # each once, though read 3 times
    assert job.cost.total is None  # not every result was read: unknown, never a partial sum


@both
async def test_a_process_that_dies_between_submit_and_results_is_recorded_once_by_another(
    faults: Any, waits: Waits, is_async: bool, ledger_url: str
) -> None:
    srv = faults([*SUBMIT, batch("in_progress"), done(), Reply(200, OUTPUT), done(), Reply(200, OUTPUT)])
    submitter = make_client(is_async, srv.url, waits, ledger=ledger_url)
    job = await run(submitter.batch(MODEL, REQUESTS))
    await run(submitter.batches.refresh(job))
    await close(submitter)  # gone before reading a single result
    readers = [make_client(is_async, srv.url, waits, ledger=ledger_url) for _ in range(2)]
    try:
        for reader in readers:  # a second reader (or a second read) writes nothing again
            attached = await run(reader.batches.retrieve(f"openai:{job.id}"))
            assert (attached.status, attached.model) == ("completed", "gpt-4o-mini-2024-07-18")
            assert await read(reader, attached) == ["q1", "q2", "q3"]
            assert attached.cost.total == expected_cost()
        found = rows(readers[0])
    finally:
        for reader in readers:
            await close(reader)
    assert sorted(r.once_key for r in found) == [f"batch:openai:{BATCH_ID}:q{i}" for i in (1, 2, 3)]
    assert sum((r.cost for r in found if r.cost is not None), Decimal(0)) == expected_cost()


def budget_state(client: Any) -> tuple[Decimal, Decimal]:
    st = client.budget_status()["default"]
    return st.spent, st.reserved


BUDGET = {"limit_usd": "5", "period": "total"}


@both
async def test_a_reader_that_dies_mid_read_settles_what_it_read_and_another_settles_the_rest(
    faults: Any, waits: Waits, is_async: bool, ledger_url: str
) -> None:
    """The submitter is gone; a reader's download breaks for good after two items; a second reader reads them all.
    The submitter's reservation, held in the shared ledger, is settled item by item, each once, then released."""
    broken = [Truncated(OUTPUT, missing=5)] * 3  # 1 + max_retries downloads, each cut in the third line
    srv = faults([*SUBMIT, done(), *broken, done(), Reply(200, OUTPUT)])
    submitter = make_client(is_async, srv.url, waits, ledger=ledger_url, budget=BUDGET)
    job = await run(submitter.batch(MODEL, REQUESTS))
    estimate = job.estimate.total
    assert estimate is not None
    await close(submitter)
    first, second = (make_client(is_async, srv.url, waits, ledger=ledger_url, budget=BUDGET) for _ in range(2))
    try:
        attached = await run(first.batches.retrieve(f"openai:{job.id}"))
        with pytest.raises(ck.APIConnectionError):
            await read(first, attached)
        spent, reserved = budget_state(second)
        assert spent == sum((r.cost for r in rows(second) if r.cost is not None), Decimal(0)) > 0
        assert reserved == estimate - 2 * (estimate / 3)  # q1 and q2 settled their shares, once each
        attached = await run(second.batches.retrieve(f"openai:{job.id}"))
        assert await read(second, attached) == ["q1", "q2", "q3"]
        assert budget_state(first) == budget_state(second) == (expected_cost(), 0)
        assert len(rows(second)) == 3
    finally:
        await close(first)
        await close(second)


@both
async def test_a_reservation_the_ledger_cannot_name_stays_with_the_submitter(
    faults: Any, waits: Waits, is_async: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Naming the reservation after the create fails (the ledger is locked): the submitted batch is still returned
    (its id is not lost), the failure is logged, and the submitter settles the reservation when it reads."""
    import sqlite3

    from computekit.ledger import SQLiteLedger

    def locked(self: Any, reservation: str, key: str) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SQLiteLedger, "key_reservation", locked)
    srv = faults([*SUBMIT, done(), Reply(200, OUTPUT)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}", budget=BUDGET)
    try:
        with caplog.at_level("WARNING", logger="computekit.budgets"):
            job = await run(client.batch(MODEL, REQUESTS))
        assert job.id == BATCH_ID
        assert f"batch:openai:{BATCH_ID}" in caplog.text
        assert budget_state(client) == (0, job.estimate.total)
        job = await run(client.batches.wait(job, poll_interval=0))
        assert await read(client, job) == ["q1", "q2", "q3"]
        assert budget_state(client) == (expected_cost(), 0)
    finally:
        await close(client)


def answer_line(cid: str, usage: Any) -> str:
    """A result line whose answer reports ``usage`` as it is (any shape a hostile host may send)."""
    body = {"id": f"chatcmpl-{cid}", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": usage}
    return json.dumps({"custom_id": cid, "response": {"status_code": 200, "request_id": f"req-{cid}", "body": body},
                       "error": None}) + "\n"


def item_cost(prompt: int, completion: int) -> Decimal:
    ref = ck.Client(config=None, ledger="none")._core.adapter("openai").price_ref("gpt-4o-mini-2024-07-18")
    rates = PriceBook().rates(PriceRef(ref.provider, ref.model, ref.table_provider, context=(BATCH_CONTEXT,)))
    assert rates is not None
    return (prompt * rates.prices["input_mtok"] + completion * rates.prices["output_mtok"]) / Decimal(1_000_000)


async def read_all(client: Any, job: ck.BatchJob) -> list[tuple[str, Any]]:
    it = client.batches.results(job)
    if isinstance(client, ck.AsyncClient):
        return [item async for item in it]
    return list(it)


@both
async def test_malformed_result_lines_are_typed_and_never_hide_the_rest(faults: Any, waits: Waits, is_async: bool,
                                                                        tmp_path: Path) -> None:
    """A line that is not JSON, one nested past the parser's depth, and answers whose usage is negative,
    fractional or a string: each is a MalformedResponseError (never a raw ValidationError or RecursionError), the
    lines after them are read and recorded, each once; under a budget the reservation is settled and released."""
    bad_usage = [{"prompt_tokens": -9, "completion_tokens": 3, "total_tokens": -6},
                 {"prompt_tokens": 9.5, "completion_tokens": 3, "total_tokens": 12.5},
                 {"prompt_tokens": "nine", "completion_tokens": 3, "total_tokens": 12}]
    output = (line("q1", 9, 2) + "not json at all\n" + "[" * 100_000 + "]" * 100_000 + "\n"
              + "".join(answer_line(f"q{i}", u) for i, u in enumerate(bad_usage, 2)) + line("q5", 9, 4))
    requests = [{**REQUESTS[0], "custom_id": f"q{i}"} for i in range(1, 6)]
    ended = batch("completed", output_file_id="file-out", completed_at=1_764_240_060,
                  request_counts={"total": 5, "completed": 2, "failed": 3})
    srv = faults([*SUBMIT, ended, Reply(200, output), ended, Reply(200, output)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}", budget=BUDGET)
    try:
        job = await run(client.batch(MODEL, requests))
        estimate = job.estimate.total
        job = await run(client.batches.wait(job, poll_interval=0))
        got: list[tuple[str, Any]] = []

        async def collect() -> None:
            it = client.batches.results(job)
            if is_async:
                async for item in it:
                    got.append(item)
            else:
                got.extend(it)

        with pytest.raises(ck.MalformedResponseError) as info:
            await collect()
        assert "2 result line(s) could not be read" in str(info.value)
        assert "result file 1, line 2" in str(info.value)
        assert "result file 1, line 3" in str(info.value)
        assert [cid for cid, _ in got] == ["q1", "q2", "q3", "q4", "q5"]
        assert [type(r).__name__ for _, r in got] == ["Completion", *["MalformedResponseError"] * 3, "Completion"]
        for _, err in got[1:4]:
            assert isinstance(err.__cause__, ValueError)  # raised from the parser's own error (pydantic's)
            assert err.cost.total is None  # it may have been billed: unknown, never 0
        assert job.cost.total is None
        assert job.items == 7
        written = rows(client)
        assert sorted(r.once_key for r in written) == sorted(
            [f"batch:openai:{BATCH_ID}:q{i}" for i in range(1, 6)]
            + [f"batch:openai:{BATCH_ID}:(unreadable: result file 1, line {n})" for n in (2, 3)])
        spent, reserved = budget_state(client)
        assert reserved == 0
        # The two priced items at their cost; the five that cannot be priced count their share of the worst case.
        assert spent == item_cost(9, 2) + item_cost(9, 4) + 5 * (estimate / 5)
        with pytest.raises(ck.MalformedResponseError):  # a second read writes nothing again
            await collect()
        assert len(rows(client)) == 7
    finally:
        await close(client)


@both
async def test_a_custom_id_the_results_repeat_is_yielded_priced_and_recorded_once(
    faults: Any, waits: Waits, is_async: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same custom_id twice in a result file (the same line again, then with other usage): the first is
    yielded and billed, the repeats are logged and skipped, so the batch's cost is its items' and no more."""
    output = line("q1", 9, 2) + line("q1", 9, 2) + line("q2", 9, 3) + line("q1", 900, 900) + line("q3", 9, 4)
    srv = faults([*SUBMIT, done(), Reply(200, output)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        job = await run(client.batch(MODEL, REQUESTS))
        job = await run(client.batches.wait(job, poll_interval=0))
        with caplog.at_level("WARNING", logger="computekit"):
            got = await read_all(client, job)
    finally:
        await close(client)
    assert [cid for cid, _ in got] == ["q1", "q2", "q3"]
    assert got[0][1].usage.input_tokens == 9
    assert job.items == 3
    assert job.cost.total == expected_cost()
    assert sorted(r.tags["custom_id"] for r in rows(client)) == ["q1", "q2", "q3"]
    assert caplog.text.count("repeats custom_id 'q1'") == 2


HOSTILE_LINES = [  # (a line of a requests file, what the refusal says)
    (b'{"custom_id": "q1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "8"}',
     "max_tokens must be a whole number of tokens"),
    (b'{"custom_id": "q1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -8}',
     "max_tokens must be a whole number of tokens"),
    (b'{"custom_id": "q1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": true}',
     "max_tokens must be a whole number of tokens"),
    (b'{"custom_id": "q1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "temperature": NaN}',
     "NaN is not a JSON value"),
    (b'{"custom_id": "q1", "messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 8}',
     "not valid Unicode"),
    (b'{"custom_id": "q\\u0000", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}',
     "holds a NUL character"),
    (b'{"custom_id": "q1", "messages": [{"role": "user", "content": "caf\xe9"}], "max_tokens": 8}', "not UTF-8"),
    (b'{"custom_id": "q1", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"custom_id": "q1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "extra_body": [1]}',
     "extra_body must be an object"),
]


@both
@pytest.mark.parametrize(("bad", "said"), HOSTILE_LINES, ids=[
    "max_tokens-string", "max_tokens-negative", "max_tokens-boolean", "nan", "lone-surrogate", "nul-custom_id",
    "not-utf8", "nested", "extra_body-list"])
async def test_hostile_request_lines_are_refused_by_line_before_anything_is_sent(
    faults: Any, waits: Waits, is_async: bool, tmp_path: Path, bad: bytes, said: str
) -> None:
    """Each line a careless or hostile requests file can hold is an InvalidRequestError naming its line (never a
    raw TypeError, ValidationError, UnicodeEncodeError or RecursionError): nothing uploaded, nothing reserved."""
    path = tmp_path / "requests.jsonl"
    path.write_bytes(json.dumps(REQUESTS[1]).encode() + b"\n" + bad + b"\n")
    srv = faults([Reply(500, "never asked")])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}", budget=BUDGET)
    try:
        with pytest.raises(ck.InvalidRequestError, match=f"nothing uploaded: line 2: .*{said}"):
            await run(client.batch(MODEL, str(path)))
        assert budget_state(client) == (0, 0)
    finally:
        await close(client)
    assert srv.hits == 0


@both
async def test_a_requests_file_over_the_providers_size_is_refused_in_bounded_memory(
    faults: Any, waits: Waits, is_async: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line of 64 MiB with no newline, and a file of lines four times the provider's size limit: each is
    refused with what to fix, having kept no more than the lines up to the limit, nothing sent."""
    import tracemalloc

    from computekit.adapters import openai as openai_adapter

    limit = 4 * 1024 * 1024
    monkeypatch.setattr(openai_adapter, "OPENAI_BATCH_MAX_BYTES", limit)
    one_line = tmp_path / "one-line.jsonl"
    with one_line.open("wb") as fh:
        fh.write(json.dumps(REQUESTS[0]).encode() + b"\n" + b'{"custom_id": "q2", "prompt": "')
        for _ in range(64):
            fh.write(b"x" * (1024 * 1024))
    many = tmp_path / "many.jsonl"
    text = "y" * 1000
    many.write_text("".join(json.dumps({"custom_id": f"q{i}", "prompt": text, "max_tokens": 8}) + "\n"
                            for i in range(4 * limit // 1000)))
    srv = faults([Reply(500, "never asked")])
    client = make_client(is_async, srv.url, waits)
    try:
        for path, said in ((one_line, "line 2: longer than 4,194,304 bytes"), (many, "bytes; openai takes at most")):
            tracemalloc.start()
            try:
                with pytest.raises(ck.InvalidRequestError, match=said):
                    await run(client.batch(MODEL, str(path)))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 5 * limit, path.name  # the lines kept up to the limit, in three forms
    finally:
        await close(client)
    assert srv.hits == 0


@both
@pytest.mark.parametrize("ref", ["../../v1/files/file-other", "file-other/content?x=", "..", "file other"])
async def test_a_result_file_id_that_points_elsewhere_is_never_downloaded(faults: Any, waits: Waits, is_async: bool,
                                                                         tmp_path: Path, ref: str) -> None:
    """A batch object whose output_file_id is not one path segment (dot segments, a slash and a query, a space)
    would send the download, with the key, to another resource of the host, whose lines would then be recorded
    as this batch's: it is a MalformedResponseError, nothing is downloaded, nothing recorded."""
    srv = faults([*SUBMIT, batch("completed", output_file_id=ref, completed_at=1_764_240_060),
                  Reply(200, OUTPUT)])
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        job = await run(client.batch(MODEL, REQUESTS))
        with pytest.raises(ck.MalformedResponseError, match=r"output_file_id .* is not an id"):
            await run(client.batches.wait(job, poll_interval=0))
    finally:
        await close(client)
    assert paths(srv) == ["POST /v1/files", "POST /v1/batches", f"GET /v1/batches/{BATCH_ID}"]
    assert rows(client) == []
