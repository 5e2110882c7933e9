"""What ``ck.instrument`` adds to an openai SDK call: instrumented vs plain client, same run, same server.

Both clients are ``openai.OpenAI`` (sequential) or ``openai.AsyncOpenAI`` (100 calls in flight), each with its
default HTTP client, against the loopback server of ``server.py`` (its own process). The instrumented one records
every call in a SQLite ledger in a temporary directory, with pricing on (a call it could not price stops the
run). The two are measured in alternating rounds (the order flipped each round), so drift hits both alike; the
numbers are medians, and the ratio is the median of the rounds' instrumented / plain time per call (target:
<= 1.05).

    python benchmarks/instrument.py            # 30 rounds of 100 sequential calls, then of 300 async calls each
    python benchmarks/instrument.py --quick    # 6 rounds
    python benchmarks/instrument.py --alone    # computekit's own work per call, without the SDK or the network
    python benchmarks/instrument.py --ablate tee   # where the floor is (diagnostics; see --help)
    python benchmarks/instrument.py --count    # instructions per call, counted by valgrind (no timing noise)
    python benchmarks/instrument.py --ops      # Python bytecode instructions per call, by function (where it goes)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai
from server import start_in_subprocess

import computekit as ck

MODEL = "gpt-4o-mini"
API_KEY = "sk-bench-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "hi"}]
TARGET = 1.05
ABLATED = ""
RECORDER_DIR = ""
"""With ``--ablate recorder``: the folder of the recorder process's ledger."""


ABLATIONS = {
    "tee": "the metered transport only: each answer's body passed through a tee that does nothing",
    "request": "computekit's request side and tee, the answers' bookkeeping skipped (no rows)",
    "minimal": "the bookkeeping cut to its least: the answer's usage, priced for the request's model, one row "
               "(no Completion, no attempt; OpenAI chat only)",
    "floor": "the least that writes an exact row of this call: the request's model read from its body, the answer's "
             "usage, priced for that model, one row (none of the request's other reading, no attempt's facts; "
             "OpenAI chat only)",
    "recorder": "another design: each answer's bookkeeping handed (32 at a time, pickled, over a pipe) to a recorder "
                "process that parses, prices and records it with the same code, on the other core",
}
"""Diagnostic runs (``--ablate``) that take parts of the instrumented call away, to show what each part costs in
place: not computekit's behaviour (the numbers they print are not the instrumented call's)."""


_RECORDER_BATCH = 32


def _recorder(conn: Any, ledger: str) -> None:
    """The recorder process of ``--ablate recorder``: the requests and answers it is handed, metered as the
    instrumented client would meter them (the same ``_Meter``), into its own client's ledger."""
    import pickle

    import httpx2

    from computekit._instrument_meter import _Meter
    from computekit._instrument_sdks import SDKS

    client = ck.Client(config=None, ledger=ledger)
    meter = _Meter(client._core, SDKS["openai"])
    while (message := conn.recv_bytes()) != b"close":
        for method, url, body, started, t0, status, head, chunks, tags in pickle.loads(message):
            u = httpx2.URL(url)
            t = meter.begin(method, u, lambda body=body: body)
            assert t is not None
            t.tags = tags
            t.sent(method, u)
            t.started, t.t0 = started, t0
            t.answered(status, httpx2.Headers(head))
            for data in chunks:
                t.feed(data)
            t.finish()
    client.close()
    conn.send_bytes(b"closed")


class _Handoff:
    """What ``--ablate recorder`` puts in place of the instrumented client's deferred bookkeeping."""

    def __init__(self, ledger: str) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_recorder, args=(child, ledger), daemon=True)
        self.proc.start()
        self.pending: list[tuple[Any, ...]] = []

    def later(self, t: Any) -> None:
        import pickle

        method, url, body = t.unread
        self.pending.append((method, str(url), body, t.started, t.t0, t.status, t.head.raw, t.body, t.tags))
        if len(self.pending) >= _RECORDER_BATCH:
            self.conn.send_bytes(pickle.dumps(self.pending, protocol=5))
            self.pending = []

    def close(self) -> None:
        import pickle

        if self.pending:
            self.conn.send_bytes(pickle.dumps(self.pending, protocol=5))
        self.conn.send_bytes(b"close")
        self.conn.recv_bytes()
        self.proc.join()


_handoffs: list[_Handoff] = []


def _ablate(what: str) -> None:
    from computekit import _instrument_meter as meter

    if what == "recorder":
        original = meter._Meter.later

        def later(self: Any, t: Any) -> None:
            if not _handoffs:
                _handoffs.append(_Handoff(f"sqlite:///{RECORDER_DIR}/ledger.db"))
            _handoffs[0].later(t) if t.unread is not None else original(self, t)

        meter._Meter.later = later  # type: ignore[method-assign]
    elif what == "request":
        meter._Try.finish_later = lambda self: None  # type: ignore[method-assign]
    elif what == "minimal":
        from computekit.ledger import LedgerRow

        def finish_later(self: Any) -> None:
            target, core = self.target, self.meter.core
            data = json.loads(b"".join(self.body))
            usage = target.adapter.usage(data.get("usage"))
            cost = core.prices.token_cost(target.adapter.price_ref(target.model), usage, self.started)
            core.ledger.record(LedgerRow(
                ts=self.started, verb="complete", provider=target.provider, model=target.model, outcome="success",
                latency_ms=(self.ended - self.t0) * 1000, input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens, cost=cost.total, price_source=str(cost.price_source),
                request_id=target.adapter.request_id(self.head), tags=dict(self.tags or {})))

        meter._Try.finish_later = finish_later  # type: ignore[method-assign]
    elif what == "floor":
        from computekit.ledger import LedgerRow

        def floor(self: Any) -> None:
            _, url, content = self.unread
            model = json.loads(content)["model"]
            adapter, core = self.meter._adapter(url, None), self.meter.core
            usage = adapter.usage(json.loads(b"".join(self.body)).get("usage"))
            cost = core.prices.token_cost(adapter.price_ref(model), usage, self.started)
            core.ledger.record(LedgerRow(
                ts=self.started, verb="complete", provider=adapter.provider, model=model, outcome="success",
                latency_ms=(self.ended - self.t0) * 1000, input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens, cost=cost.total, price_source=str(cost.price_source),
                request_id=adapter.request_id(self.head), tags=dict(self.tags or {})))

        meter._Try.finish_later = floor  # type: ignore[method-assign]
    elif what == "tee":
        import httpx2

        class Tee(httpx2.SyncByteStream):
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            def __iter__(self) -> Any:
                yield from self.inner

            def close(self) -> None:
                self.inner.close()

        def handle_request(self: Any, request: Any) -> Any:
            response = self.inner.handle_request(request)
            response.stream = Tee(response.stream)
            return response

        metered, _ = meter._classes(httpx2)
        metered.handle_request = handle_request


def _computekit(ledger_dir: str, is_async: bool) -> Any:
    cls = ck.AsyncClient if is_async else ck.Client
    return cls(config=None, ledger=f"sqlite:///{ledger_dir}/ledger.db")


def _seq(url: str, calls: int, rounds: int, ledger_dir: str) -> dict[str, list[float]]:
    plain = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
    metered_ck = _computekit(ledger_dir, False)
    metered = ck.instrument(openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0), using=metered_ck)
    clients: dict[str, Callable[[], Any]] = {
        "plain": lambda: plain.chat.completions.create(model=MODEL, messages=MESSAGES),  # type: ignore[arg-type]
        "instrumented": lambda: metered.chat.completions.create(model=MODEL, messages=MESSAGES),  # type: ignore[arg-type]
    }
    for call in clients.values():  # warm-up
        for _ in range(50):
            call()
    _check(metered_ck)
    out: dict[str, list[float]] = {k: [] for k in [*clients, *(f"{k} cpu" for k in clients)]}
    for r in range(rounds):
        for name in (list(clients) if r % 2 == 0 else list(reversed(clients))):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(calls):
                clients[name]()
            out[name].append((time.perf_counter() - t0) / calls)
            out[f"{name} cpu"].append((time.process_time() - c0) / calls)
    metered_ck.close()
    return out


def _check(client: Any) -> None:
    client._core.flush()
    if ABLATED:
        return
    row = client.ledger.rows()[-1]
    if row.cost is None:
        raise SystemExit(f"the instrumented call was not priced: {row!r}")


async def _async(url: str, calls: int, rounds: int, ledger_dir: str, concurrency: int) -> dict[str, list[float]]:
    plain = openai.AsyncOpenAI(base_url=url, api_key=API_KEY)
    metered_ck = _computekit(ledger_dir, True)
    metered = ck.instrument(openai.AsyncOpenAI(base_url=url, api_key=API_KEY), using=metered_ck)
    clients = {"plain": plain, "instrumented": metered}

    async def batch(client: Any, n: int) -> tuple[float, float]:
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await client.chat.completions.create(model=MODEL, messages=MESSAGES)

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n

    for client in clients.values():
        await batch(client, 200)
    out: dict[str, list[float]] = {k: [] for k in [*clients, *(f"{k} cpu" for k in clients)]}
    for r in range(rounds):
        for name in (list(clients) if r % 2 == 0 else list(reversed(clients))):
            wall, cpu = await batch(clients[name], calls)
            out[name].append(wall)
            out[f"{name} cpu"].append(cpu)
    await metered_ck.aclose()
    _check(metered_ck)
    return out


def _check_recorder(calls: int) -> None:
    """The recorder process recorded every one of the ``calls`` instrumented calls, each priced."""
    _handoffs[0].close()
    ledger = ck.ledger.open_ledger(f"sqlite:///{RECORDER_DIR}/ledger.db")
    try:
        rows = ledger.rows()
    finally:
        ledger.close()
    unpriced = [r for r in rows if r.cost is None]
    print(f"the recorder process recorded {len(rows)} calls, {len(unpriced)} unpriced")
    if unpriced or len(rows) != calls:
        raise SystemExit(f"the recorder did not record and price every call ({calls})")


def alone(calls: int = 3000) -> float:
    """computekit's own work on one instrumented chat call, without the SDK or the network: reading the request,
    reserving, parsing the answer with the adapter, pricing it and queueing its ledger row (µs per call)."""
    import httpx2

    from computekit._instrument_meter import _Meter
    from computekit._instrument_sdks import SDKS

    body = json.dumps({"model": MODEL, "messages": MESSAGES}).encode()
    answer = json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
    }).encode()
    url = httpx2.URL("http://127.0.0.1:1/v1/chat/completions")
    headers = httpx2.Headers({"content-type": "application/json", "x-request-id": "req_1"})
    ledger_dir = tempfile.mkdtemp(prefix="ck-bench-instrument-")
    try:
        client = _computekit(ledger_dir, False)
        meter = _Meter(client._core, SDKS["openai"])

        def one() -> None:
            t = meter.begin("POST", url, lambda: body)
            assert t is not None
            meter.reserve(t)
            t.sent("POST", url)
            t.answered(200, headers)
            t.feed(answer)
            t.finish()

        for _ in range(300):
            one()
        t0 = time.perf_counter()
        for _ in range(calls):
            one()
        per_call = (time.perf_counter() - t0) / calls
        _check(client)
        client.close()
        return per_call
    finally:
        shutil.rmtree(ledger_dir, ignore_errors=True)


COUNTED = ("plain", "instrumented", "tee", "request", "minimal", "floor", "async plain", "async instrumented")
"""What ``--count`` runs: the sequential call, plain, instrumented and under four ablations, and the async one."""
_COUNT_CALLS = (100, 300)
"""``--count``: each variant runs twice, with this many measured calls after its warm-up: the difference of the
two runs' instruction counts, over the difference of calls, is the variant's per call (start-up and warm-up
cancel out)."""


def _count_child(variant: str, calls: int, url: str) -> None:
    """One counted run (``--count-child``, under valgrind): 100 warm-up calls, then ``calls`` calls."""
    is_async, _, kind = variant.rpartition(" ")
    if kind not in ("plain", "instrumented"):
        global ABLATED
        ABLATED = kind
        _ablate(kind)
    ledger_dir = tempfile.mkdtemp(prefix="ck-bench-count-")
    metered_ck = None if kind == "plain" else _computekit(ledger_dir, bool(is_async))
    try:
        if is_async:
            async def run() -> None:
                client = openai.AsyncOpenAI(base_url=url, api_key=API_KEY)
                if metered_ck is not None:
                    client = ck.instrument(client, using=metered_ck)
                for n in (100, calls):  # warm-up, then the counted calls, 100 in flight
                    left = n

                    async def worker() -> None:
                        nonlocal left
                        while left > 0:
                            left -= 1
                            await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

                    await asyncio.gather(*(worker() for _ in range(100)))
                if metered_ck is not None:
                    await metered_ck.aclose()

            asyncio.run(run())
        else:
            client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
            if metered_ck is not None:
                client = ck.instrument(client, using=metered_ck)
            for _ in range(100 + calls):
                client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            if metered_ck is not None:
                metered_ck.close()
    finally:
        shutil.rmtree(ledger_dir, ignore_errors=True)


def _instructions(variant: str, calls: int, url: str) -> int:
    """The instructions a counted run executes (every thread of its process), as valgrind counts them."""
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
         os.path.abspath(__file__), "--count-child", variant, str(calls), url],
        capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if found is None:
        raise SystemExit(f"valgrind gave no instruction count for {variant}: {out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def count() -> dict[str, float]:
    """Instructions per call of each variant of :data:`COUNTED` (two counted runs each, two at a time)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--count needs valgrind (apt-get install valgrind)")
    small, large = _COUNT_CALLS
    with start_in_subprocess() as server, ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        runs = {(v, n): pool.submit(_instructions, v, n, server.url) for v in COUNTED for n in (small, large)}
        return {v: (runs[v, large].result() - runs[v, small].result()) / (large - small) for v in COUNTED}


OPS_VARIANTS = ("plain", "instrumented", "tee", "request", "minimal", "floor")
"""What ``--ops`` runs: the sequential call, plain, instrumented and under four ablations."""
_OPS_CALLS = 300


def _ops_child(variant: str, calls: int, url: str) -> None:
    """One traced run (``--ops-child``): 200 warm-up calls, then ``calls`` calls whose Python bytecode
    instructions are counted by function, on every thread (the ledger's writer too); printed as JSON, per call."""
    if variant not in ("plain", "instrumented"):
        global ABLATED
        ABLATED = variant
        _ablate(variant)
    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes, frame.f_trace_lines = True, False
        code = frame.f_code
        key = f"{code.co_filename}:{code.co_firstlineno} {code.co_qualname}"

        def each(frame: Any, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[key] += 1
            return each

        return each

    ledger_dir = tempfile.mkdtemp(prefix="ck-bench-ops-")
    threading.settrace(tracer)  # the threads computekit starts (its ledger's writer) from here on
    sys.settrace(tracer)
    try:
        # Traced, a call takes ~50 times as long: with the ledger's usual 0.1 s flush interval its writer would
        # commit every call or two, not every ~60 calls as untraced. A long interval (commits at the flushes)
        # keeps the count to the work, not to the clock.
        metered_ck = None if variant == "plain" else ck.Client(config=None, ledger=ck.ledger.open_ledger(
            f"sqlite:///{ledger_dir}/ledger.db", buffered=True, flush_interval=60))
        client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
        if metered_ck is not None:
            client = ck.instrument(client, using=metered_ck)
        for _ in range(200):
            client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        if metered_ck is not None:
            metered_ck._core.flush()  # the warm-up's deferred bookkeeping, done before the count starts
        counts.clear()
        for _ in range(calls):
            client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        if metered_ck is not None:
            metered_ck._core.flush()  # the counted calls' deferred bookkeeping and rows, counted too
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
        shutil.rmtree(ledger_dir, ignore_errors=True)
    print(json.dumps({key: n / calls for key, n in counts.items()}))


def _where(key: str) -> str:
    """A function's file, shortened (``computekit/_costs.py``, ``httpx2/_models.py``, ``json/decoder.py``)."""
    path = key.rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/computekit/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return ("computekit/" + tail) if marker == "/computekit/" else tail.split("/", 1)[-1] \
                if marker == "/lib/python3" else tail
    return path


def ops() -> dict[str, dict[str, float]]:
    """Opcodes per call, by function, of each variant of :data:`OPS_VARIANTS` (one traced run each, two at a time)."""
    def run(variant: str, url: str) -> dict[str, float]:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--ops-child", variant, str(_OPS_CALLS),
                              url], capture_output=True, text=True, check=True)
        found: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return found

    with start_in_subprocess() as server, ThreadPoolExecutor(2) as pool:
        runs = {v: pool.submit(run, v, server.url) for v in OPS_VARIANTS}
        return {v: runs[v].result() for v in OPS_VARIANTS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--alone", action="store_true", help="only computekit's own work per call (no SDK, no network)")
    ap.add_argument("--ablate", choices=sorted(ABLATIONS), help="diagnostics: " + "; ".join(
        f"{k}: {v}" for k, v in ABLATIONS.items()) + " (sequential only)")
    ap.add_argument("--count", action="store_true",
                    help="instructions per call, plain, instrumented and ablated, counted by valgrind's cachegrind "
                         "(deterministic; a few minutes)")
    ap.add_argument("--count-child", nargs=3, metavar=("VARIANT", "CALLS", "URL"), help=argparse.SUPPRESS)
    ap.add_argument("--ops", action="store_true",
                    help="Python bytecode instructions per call, plain, instrumented and ablated, and where the "
                         "instrumented call's extra ones are (deterministic; a minute or two)")
    ap.add_argument("--ops-child", nargs=3, metavar=("VARIANT", "CALLS", "URL"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default="/tmp/computekit-bench-instrument.json")
    args = ap.parse_args()
    if args.count_child:
        variant, calls, url = args.count_child
        _count_child(variant, int(calls), url)
        return
    if args.ops_child:
        variant, calls, url = args.ops_child
        _ops_child(variant, int(calls), url)
        return
    if args.ops:
        by_variant = ops()
        totals = {v: sum(found.values()) for v, found in by_variant.items()}
        print("| variant (openai SDK chat call, sequential) | opcodes per call | over plain | ratio |")
        print("|---|---|---|---|")
        for v, n in totals.items():
            what = f" ({ABLATIONS[v]})" if v in ABLATIONS else ""
            print(f"| {v}{what} | {n:,.0f} | {n - totals['plain']:+,.0f} | {n / totals['plain']:.3f}x |")
        plain, metered = by_variant["plain"], by_variant["instrumented"]
        extra: collections.Counter[str] = collections.Counter()
        for key in plain.keys() | metered.keys():
            extra[_where(key)] += metered.get(key, 0.0) - plain.get(key, 0.0)
        print("\n| where the instrumented call's extra opcodes run (file) | opcodes per call |\n|---|---|")
        for where, n in sorted(extra.items(), key=lambda kv: -abs(kv[1]))[:25]:
            if abs(n) >= 1:
                print(f"| {where} | {n:+,.0f} |")
        Path(args.out).write_text(json.dumps({"opcodes_per_call": totals, "by_function": by_variant}, indent=1))
        return
    if args.count:
        per_call = count()
        print("| variant (openai SDK chat call) | instructions per call | ratio to its plain call |")
        print("|---|---|---|")
        for v, n in per_call.items():
            plain = per_call["async plain" if v.startswith("async") else "plain"]
            what = f" ({ABLATIONS[v]})" if v in ABLATIONS else ""
            print(f"| {v}{what} | {n:,.0f} | {n / plain:.3f}x |")
        Path(args.out).write_text(json.dumps({"instructions_per_call": per_call}, indent=1))
        return
    if args.ablate:
        global ABLATED, RECORDER_DIR
        ABLATED = args.ablate
        if ABLATED == "recorder":
            RECORDER_DIR = tempfile.mkdtemp(prefix="ck-bench-recorder-")
        _ablate(args.ablate)
    if args.alone:
        per_call = statistics.median(alone() for _ in range(5))
        print(f"computekit's work per instrumented call, alone: {per_call * 1e6:.0f} µs (median of 5 x 3000)")
        return
    rounds, seq_calls, async_calls = (6, 100, 300) if args.quick else (30, 100, 300)
    ledger_dir = tempfile.mkdtemp(prefix="ck-bench-instrument-")
    try:
        with start_in_subprocess() as server:
            seq = _seq(server.url, seq_calls, rounds, ledger_dir)
            shutil.rmtree(ledger_dir)
            ledger_dir = tempfile.mkdtemp(prefix="ck-bench-instrument-")
            # The ablations patch the sync transport only (the recorder's hand-off serves both).
            aio = None if ABLATED not in ("", "recorder") else asyncio.run(
                _async(server.url, async_calls, rounds, ledger_dir, 100))
        if _handoffs:  # every instrumented call: the warm-ups (50, 200) and the rounds'
            _check_recorder(50 + rounds * seq_calls + (0 if aio is None else 200 + rounds * async_calls))
    finally:
        shutil.rmtree(ledger_dir, ignore_errors=True)
        if RECORDER_DIR:
            shutil.rmtree(RECORDER_DIR, ignore_errors=True)
    if ABLATED:
        print(f"ABLATED ({ABLATED}: {ABLATIONS[ABLATED]}): not the instrumented call's figures")
    print(f"| openai {openai.__version__} | plain | instrumented | ratio (median of rounds) | target |")
    print("|---|---|---|---|---|")
    result: dict[str, Any] = {"rounds": rounds}
    for label, data in (("sequential", seq), ("async, 100 in flight", aio)):
        if data is None:
            continue
        plain, metered = statistics.median(data["plain"]), statistics.median(data["instrumented"])
        # Each round measures both back to back: the median of the per-round ratios is robust to the load of
        # other processes drifting between rounds (the two medians alone are not, on a shared machine).
        ratio = statistics.median(m / p for p, m in zip(data["plain"], data["instrumented"], strict=True))
        # The process's CPU time (its threads included) per call: what the machine's other load moves least.
        cpu = statistics.median(m / p for p, m in zip(data["plain cpu"], data["instrumented cpu"], strict=True))
        result[label] = {"plain_s": data["plain"], "instrumented_s": data["instrumented"], "ratio": ratio,
                         "plain_cpu_s": data["plain cpu"], "instrumented_cpu_s": data["instrumented cpu"],
                         "cpu_ratio": cpu}
        ok = "n/a (ablated)" if ABLATED else "ok" if ratio <= TARGET else "MISSED"
        print(f"| {label}, µs per call (medians) | {plain * 1e6:.0f} | {metered * 1e6:.0f} | {ratio:.3f}x "
              f"| <= {TARGET}x {ok} |")
        print(f"| {label}, CPU µs per call (medians) | {statistics.median(data['plain cpu']) * 1e6:.0f} "
              f"| {statistics.median(data['instrumented cpu']) * 1e6:.0f} | {cpu:.3f}x | |")
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
