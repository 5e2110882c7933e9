"""Profile computekit's per-call path against the loopback server (cProfile).

    python benchmarks/profile_calls.py seq   [--calls 2000] [--ledger none] [--sort tottime] [--top 40]
    python benchmarks/profile_calls.py async [--calls 2000] [--concurrency 100]
    python benchmarks/profile_calls.py seq --kind openai      # the same loop through the openai SDK

Prints the top functions, and a per-call attribution of the time spent under a few functions of interest
(cumulative time / calls), so a change can be judged in microseconds per call. ``--dump FILE`` keeps the raw
stats for snakeviz / pstats.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import start_in_subprocess

MODEL = "gpt-4o-mini"

# (file suffix, function name) -> label: where the per-call time is attributed.
INTEREST = [
    ("computekit/_client.py", "complete", "Client.complete (whole call)"),
    ("computekit/_core.py", "targets", "Core.targets"),
    ("computekit/_core.py", "complete_request", "Core.complete_request (pydantic CompleteRequest)"),
    ("computekit/adapters/openai.py", "build_complete", "OpenAIWire.build_complete"),
    ("computekit/adapters/_base.py", "body", "HTTPRequest.body (json.dumps)"),
    ("computekit/_retry.py", "retrying", "RetryPolicy.retrying (tenacity.Retrying per call)"),
    ("computekit/_retry.py", "aretrying", "RetryPolicy.aretrying (tenacity.AsyncRetrying per call)"),
    ("tenacity/__init__.py", "__iter__", "tenacity Retrying.__iter__"),
    ("tenacity/asyncio/__init__.py", "__anext__", "tenacity AsyncRetrying.__anext__"),
    ("computekit/_transport.py", "send", "Transport.send (HTTP round trip, whole)"),
    ("computekit/_transport.py", "_timeout", "_transport._timeout (httpx.Timeout per call)"),
    ("computekit/_transport.py", "_head", "_transport._head (headers -> dict)"),
    ("httpx/_client.py", "request", "httpx Client.request"),
    ("httpx/_client.py", "build_request", "httpx build_request"),
    ("httpx/_client.py", "send", "httpx send"),
    ("httpcore/_sync/connection_pool.py", "handle_request", "httpcore pool.handle_request (sync)"),
    ("httpcore/_async/connection_pool.py", "handle_async_request", "httpcore pool.handle_async_request"),
    ("httpcore/_async/connection_pool.py", "_assign_requests_to_connections", "httpcore pool assign (async)"),
    ("httpcore/_sync/connection_pool.py", "_assign_requests_to_connections", "httpcore pool assign (sync)"),
    ("computekit/adapters/openai.py", "parse_complete", "OpenAIWire.parse_complete (json + pydantic types)"),
    ("computekit/_core.py", "succeeded", "Core.succeeded (price + Attempt + ledger)"),
    ("computekit/_core.py", "price", "Core.price"),
    ("computekit/pricing/_book.py", "token_cost", "PriceBook.token_cost"),
    ("computekit/_core.py", "record", "Core.record (LedgerRow + backend)"),
    ("computekit/ledger/_sqlite.py", "record", "SQLiteLedger.record"),
    ("pydantic/main.py", "__init__", "pydantic BaseModel.__init__ (all models)"),
    ("openai/resources/chat/completions/completions.py", "create", "openai chat.completions.create"),
    ("openai/_base_client.py", "_build_request", "openai _build_request"),
    ("openai/_base_client.py", "_process_response", "openai _process_response"),
]


def _client(kind: str, url: str, ledger: str, is_async: bool) -> Any:
    if kind == "computekit":
        import computekit as ck

        kw: dict[str, Any] = {"providers": {"openai": {"base_url": url, "api_key": "sk-bench"}}, "ledger": ledger}
        return ck.AsyncClient(None, **kw) if is_async else ck.Client(None, **kw)
    import openai

    if is_async:
        return openai.AsyncOpenAI(base_url=url, api_key="sk-bench")
    return openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)


def _call(kind: str, client: Any) -> Any:
    if kind == "computekit":
        return client.complete(f"openai:{MODEL}", "hi")
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])


def attribution(stats: pstats.Stats, calls: int) -> list[tuple[str, float, int]]:
    out = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for suffix, name, label in INTEREST:
        cum = 0.0
        n = 0
        for (file, _line, fn), (_cc, nc, _tt, ct, _callers) in raw.items():
            if fn == name and file.endswith(suffix):
                cum += ct
                n += nc
        if n:
            out.append((label, cum / calls * 1e6, n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["seq", "async"])
    ap.add_argument("--kind", choices=["computekit", "openai"], default="computekit")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--ledger", default=None, help='"none" or a sqlite URL (default: a temp SQLite file)')
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--dump", default=None)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ck-prof-")
    ledger = args.ledger or f"sqlite:///{tmp}/ledger.db"
    prof = cProfile.Profile()
    with start_in_subprocess() as server:
        if args.mode == "seq":
            client = _client(args.kind, server.url, ledger, False)
            for _ in range(100):
                _call(args.kind, client)
            prof.enable()
            for _ in range(args.calls):
                _call(args.kind, client)
            prof.disable()
        else:

            async def run() -> None:
                client = _client(args.kind, server.url, ledger, True)
                left = args.calls

                async def worker() -> None:
                    nonlocal left
                    while left > 0:
                        left -= 1
                        await _call(args.kind, client)

                await asyncio.gather(*(worker() for _ in range(args.concurrency)))  # warm the pool
                left = args.calls
                prof.enable()
                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                prof.disable()

            asyncio.run(run())

    stats = pstats.Stats(prof)
    if args.dump:
        stats.dump_stats(args.dump)
    total = sum(tt for (_cc, _nc, tt, _ct, _c) in stats.stats.values())  # type: ignore[attr-defined]
    print(f"\n{args.kind} {args.mode}: {args.calls} calls, profiled CPU {total / args.calls * 1e6:.0f} µs/call "
          "(cProfile inflates absolute numbers; compare shares)\n")
    print(f"{'where':60s} {'µs/call (cum)':>14s} {'calls':>8s}")
    for label, us, n in attribution(stats, args.calls):
        print(f"{label:60s} {us:14.1f} {n:8d}")
    print()
    stats.sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
