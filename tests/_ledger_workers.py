"""Functions the multi-process ledger and budget tests run in child processes (``spawn``: importable by name).

Each takes plain arguments (URLs, counts), opens its own ledger or client, and returns plain data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from decimal import Decimal
from typing import Any

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def row_cost(worker: int, j: int) -> Decimal:
    """A distinct, exact cost per row, so that totals check every digit."""
    return Decimal(f"0.{worker:02d}{j:04d}1")


def make_row(worker: int, j: int) -> Any:
    from computekit.ledger import LedgerRow

    return LedgerRow(
        ts=T0 + dt.timedelta(microseconds=worker * 10_000 + j), verb="complete", provider="openai",
        model="gpt-4o-mini", outcome="success", latency_ms=1.0, input_tokens=j, output_tokens=worker,
        cost=row_cost(worker, j), request_id=f"w{worker}-{j}",
    )


def write_rows(url: str, worker: int, n: int, start: Any = None) -> int:
    """Record ``n`` rows one by one (each its own transaction), after ``start`` (a barrier) opens."""
    from computekit.ledger import open_ledger

    ledger = open_ledger(url)
    try:
        if start is not None:
            start.wait()
        for j in range(n):
            ledger.record(make_row(worker, j))
    finally:
        ledger.close()
    return n


def write_batches_until_killed(url: str, batch: int, conn: Any) -> None:
    """Commit batches of ``batch`` rows forever, telling the parent after each commit how many rows are in."""
    from computekit.ledger import open_ledger

    ledger = open_ledger(url)
    done = 0
    k = 0
    while True:
        ledger.record_many([make_row(1, done + j) for j in range(batch)])
        done += batch
        k += 1
        conn.send(done)


def kill_self_mid_batch(url: str, committed: int, queued: int) -> None:
    """Commit ``committed`` rows, queue ``queued`` more on a buffered ledger, then die by SIGKILL at once."""
    from computekit.ledger import open_ledger

    plain = open_ledger(url)
    plain.record_many([make_row(2, j) for j in range(committed)])
    plain.close()
    buffered = open_ledger(url, buffered=True)
    for j in range(queued):
        buffered.record(make_row(3, j))
    os.kill(os.getpid(), signal.SIGKILL)


def reserve_many(url: str, n: int, amount: str, limit: str, start: Any = None) -> int:
    """Try ``n`` reservations of ``amount`` against a daily budget of ``limit``; how many were granted."""
    import computekit as ck
    from computekit.ledger import Charge, open_ledger
    from computekit.ledger._budgets import period_start

    now = dt.datetime.now(dt.UTC)
    charge = Charge(name="default", limit=Decimal(limit), period="day", start=period_start("day", now),
                    amount=Decimal(amount), target="openai:gpt-4o-mini")
    ledger = open_ledger(url)
    try:
        if start is not None:
            start.wait()
        granted = 0
        for _ in range(n):
            try:
                ledger.reserve([charge], now=now, ttl_s=60)
                granted += 1
            except ck.BudgetExceededError:
                pass
        return granted
    finally:
        ledger.close()


def budget_calls(ledger_url: str, base_url: str, n: int, limit: str, max_tokens: int, start: Any = None,
                 ) -> tuple[int, int, list[str]]:
    """``n`` concurrent async completions through the public API under one budget: (answered, refused,
    the refusals' budget names)."""
    import computekit as ck

    async def main() -> tuple[int, int, list[str]]:
        client = ck.AsyncClient(
            config=None, ledger=ledger_url, budget={"limit_usd": limit, "period": "day"},
            providers={"openai": {"base_url": base_url, "api_key": "sk-budget-0123456789abcdef"}},
            retry={"max_retries": 0},
        )
        try:
            if start is not None:
                start.wait()
            results = await asyncio.gather(
                *(client.complete("openai:gpt-4o-mini", "hi", max_tokens=max_tokens) for _ in range(n)),
                return_exceptions=True,
            )
        finally:
            await client.aclose()
            client.ledger.close()
        answered = sum(1 for r in results if isinstance(r, ck.Completion))
        refused = [r for r in results if isinstance(r, ck.BudgetExceededError)]
        others = [r for r in results if not isinstance(r, ck.Completion | ck.BudgetExceededError)]
        if others:
            raise RuntimeError(f"unexpected results: {others[:3]!r}")
        return answered, len(refused), [e.budget for e in refused]

    return asyncio.run(main())


def _call(out: Any, index: int, fn: Any, args: tuple[Any, ...]) -> None:
    try:
        out.put((index, fn(*args), None))
    except BaseException as e:  # reported to the parent, which fails the test
        out.put((index, None, repr(e)))


def in_processes(fn: Any, args: list[tuple[Any, ...]], *, together: bool = True, timeout: float = 120) -> list[Any]:
    """Run ``fn(*a)`` for each ``a`` in its own (spawned) process, started together behind a barrier when
    ``together`` (the barrier is passed as the last argument); their results in order."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Barrier(len(args)) if together else None
    procs = [ctx.Process(target=_call, args=(out, i, fn, (*a, start) if together else a))
             for i, a in enumerate(args)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in procs:
            i, value, err = out.get(timeout=timeout)
            if err is not None:
                errors.append(err)
            results[i] = value
    finally:
        for p in procs:
            p.join(timeout)
            if p.is_alive():
                p.kill()
    if errors:
        raise AssertionError(f"a child process failed: {errors}")
    return [results[i] for i in range(len(args))]


# ============================================================================================= durability at exit

_cached_client: Any = None


def fake_calls(url: str, n: int, tag: str, is_async: bool = False, flush_interval: float = 30.0,
               **ledger: Any) -> Any:
    """``n`` calls to a fake provider through a client whose ledger is ``url`` (no budget: rows are queued and
    committed within ``flush_interval``, 30 s by default so that they are still queued when the process ends).
    Returns the client, still open."""
    import computekit as ck
    from computekit.testing import FakeProvider

    FakeProvider()  # mounted at inproc://fake: every prompt is echoed
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, ledger={"url": url, "flush_interval": flush_interval, **ledger})

    async def calls() -> None:
        for i in range(n):
            await client.complete("fake:echo", f"hi {i}", tags={"run": tag})

    if is_async:
        asyncio.run(calls())
    else:
        for i in range(n):
            client.complete("fake:echo", f"hi {i}", tags={"run": tag})
    return client


def worker_calls(url: str, n: int, tag: str) -> None:
    """A multiprocessing worker: ``n`` calls, then it returns without closing anything."""
    fake_calls(url, n, tag)


def pool_task(url: str, n: int, tag: str) -> int:
    """A pool task: ``n`` calls on the worker process's one client (made by its first task, never closed)."""
    global _cached_client
    import computekit as ck

    if _cached_client is None:
        from computekit.testing import FakeProvider

        FakeProvider()
        _cached_client = ck.Client(config=None, ledger={"url": url, "flush_interval": 30.0})
    for i in range(n):
        _cached_client.complete("fake:echo", f"hi {i}", tags={"run": tag})
    return n


def sigterm_handler_after_calls(url: str) -> str:
    """The SIGTERM handler of a worker after it made calls through a buffered ledger."""
    fake_calls(url, 3, "child")
    handler = signal.getsignal(signal.SIGTERM)
    return "SIG_DFL" if handler is signal.SIG_DFL else repr(handler)


# ============================================================================================= keyed reservations


def settle_items(url: str, key: str, n: int, part: str, end: bool, start: Any = None) -> int:
    """Settle items 0..n-1 of the reservation named ``key`` (each a row with its own ``once_key``) by ``part``
    each, as a process reading a batch's results does, then release the rest when ``end``."""
    from computekit.ledger import LedgerRow, open_ledger

    ledger = open_ledger(url)
    try:
        if start is not None:
            start.wait()
        for j in range(n):
            ledger.settle_part(key, LedgerRow(ts=T0, verb="batch", provider="openai", model="gpt-4o-mini",
                                              outcome="success", latency_ms=1.0, cost=Decimal("0.01"),
                                              reserved=Decimal(part), once_key=f"{key}:{j}"), Decimal(part))
        if end:
            ledger.release(key)
        return n
    finally:
        ledger.close()


def settle_job(url: str, key: str, cost: str, start: Any = None) -> int:
    """Settle the reservation named ``key`` with the job's one row (``once_key`` = ``key``), as each process that
    sees a job end does."""
    from computekit.ledger import LedgerRow, open_ledger

    ledger = open_ledger(url)
    try:
        if start is not None:
            start.wait()
        ledger.settle(key, LedgerRow(ts=T0, verb="finetune", provider="openai", model="gpt-4o-mini",
                                     outcome="success", latency_ms=1.0, cost=Decimal(cost), once_key=key))
        return 1
    finally:
        ledger.close()
