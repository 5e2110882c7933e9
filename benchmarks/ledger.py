"""The ledger's own benchmarks: recording one attempt, many processes writing at once, and a budget's reserve +
settle, on SQLite and (when a server is given or can be started) PostgreSQL.

    python benchmarks/ledger.py                       # SQLite, plus PostgreSQL when one can be found
    python benchmarks/ledger.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/ledger.py --quick               # smaller counts

PostgreSQL: ``--postgres URL``, else ``$COMPUTEKIT_TEST_POSTGRES_DSN``, else a throwaway server started from the
installed PostgreSQL programs (as the tests do, ``tests/_postgres.py``), else it is skipped. Results (medians) go
to stdout as markdown and to ``--out`` as JSON. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))


def _row(i: int = 0) -> Any:
    from computekit.ledger import LedgerRow

    return LedgerRow(
        ts=dt.datetime.now(dt.UTC), verb="complete", provider="openai", model="gpt-4o-mini", outcome="success",
        latency_ms=1.25, input_tokens=8, output_tokens=10, cost=Decimal("0.0000072"),
        price_source="genai-prices 0.2.3 (as of 2025-01-01)", request_id=f"req_{i:016d}",
        tags={"feature": "search"},
    )


def record_times(url: str, rows: int, *, buffered: bool = False) -> list[float]:
    """Seconds each ``record()`` took (the caller's cost), after a warm-up."""
    from computekit.ledger import open_ledger

    ledger = open_ledger(url, buffered=buffered)
    try:
        for i in range(50):
            ledger.record(_row(i))
        ledger.flush()
        each = []
        for i in range(rows):
            row = _row(i)
            t0 = time.perf_counter()
            ledger.record(row)
            each.append(time.perf_counter() - t0)
        ledger.flush()
        return each
    finally:
        ledger.close()


def reserve_settle_times(url: str, n: int) -> list[float]:
    """Seconds of one reserve + settle cycle (what a budget adds to each attempt)."""
    from computekit.ledger import Charge, open_ledger
    from computekit.ledger._budgets import period_start

    ledger = open_ledger(url)
    now = dt.datetime.now(dt.UTC)
    charge = Charge(name=f"bench-{uuid.uuid4().hex[:6]}", limit=Decimal(10**9), period="day",
                    start=period_start("day", now), amount=Decimal("0.001"), target="openai:gpt-4o-mini")
    try:
        each = []
        for i in range(n + 20):
            t0 = time.perf_counter()
            rid = ledger.reserve([charge], now=now, ttl_s=60)
            row = _row(i)
            row.reserved = charge.amount
            ledger.settle(rid, row)
            if i >= 20:  # warm-up
                each.append(time.perf_counter() - t0)
        return each
    finally:
        ledger.close()


def _writer(url: str, rows: int, buffered: bool, start: Any, out: Any) -> None:
    from computekit.ledger import open_ledger

    ledger = open_ledger(url, buffered=buffered)
    start.wait()
    t0 = time.perf_counter()
    for i in range(rows):
        ledger.record(_row(i))
    ledger.flush()
    out.put((t0, time.perf_counter()))
    ledger.close()


def many_writers(url: str, processes: int, rows: int, *, buffered: bool = False) -> dict[str, float]:
    """``processes`` processes each record ``rows`` rows at once; total rows per second, from the first start to
    the last commit."""
    from computekit.ledger import open_ledger

    open_ledger(url).close()
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, rows, buffered, start, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return {"rows": processes * rows, "seconds": wall, "rows_per_s": processes * rows / wall}


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median_us": statistics.median(xs) * 1e6, "p90_us": statistics.quantiles(xs, n=10)[-1] * 1e6,
            "n": len(xs)}


def bench(url: str, label: str, cfg: dict[str, int], log: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    log(f"{label}: record")
    res["record"] = _stats(record_times(url, cfg["rows"]))
    log(f"{label}: record (buffered)")
    res["record_buffered"] = _stats(record_times(url, cfg["rows"], buffered=True))
    log(f"{label}: reserve + settle")
    res["reserve_settle"] = _stats(reserve_settle_times(url, cfg["budget_rows"]))
    for buffered in (False, True):
        runs = []
        for _ in range(cfg["rounds"]):
            log(f"{label}: {cfg['procs']} processes x {cfg['proc_rows']} rows (buffered={buffered})")
            runs.append(many_writers(url, cfg["procs"], cfg["proc_rows"], buffered=buffered))
        res["processes_buffered" if buffered else "processes"] = {
            "rows_per_s": statistics.median(r["rows_per_s"] for r in runs),
            "runs": runs,
        }
    return res


def _postgres(arg: str | None, log: Any) -> tuple[str | None, Any]:
    if arg:
        return arg, None
    env = os.environ.get("COMPUTEKIT_TEST_POSTGRES_DSN")
    if env:
        return env, None
    try:
        import psycopg  # noqa: F401
        from _postgres import _Throwaway

        server = _Throwaway(fsync=True)  # as a real server: commits reach the disk
        log(f"started a throwaway PostgreSQL on port {server.port}")
        return server.dsn, server
    except Exception as e:  # no server: SQLite only
        log(f"no PostgreSQL ({e}): skipped")
        return None, None


def _fresh_schema(dsn: str) -> str:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def render(results: dict[str, Any]) -> str:
    lines = ["| backend | `record()` median (p90) | buffered `record()` median | reserve + settle median |"
             f" {results['config']['procs']} processes, rows/s | ↳ buffered, rows/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, r in results["backends"].items():
        lines.append(
            f"| {label} | {r['record']['median_us']:.0f} µs ({r['record']['p90_us']:.0f}) "
            f"| {r['record_buffered']['median_us']:.1f} µs | {r['reserve_settle']['median_us']:.0f} µs "
            f"| {r['processes']['rows_per_s']:,.0f} | {r['processes_buffered']['rows_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--postgres", help="a PostgreSQL URL (default: $COMPUTEKIT_TEST_POSTGRES_DSN or a throwaway)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--out", default="/tmp/computekit-ledger-bench.json")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    cfg = {"rows": 1000 if args.quick else 5000, "budget_rows": 300 if args.quick else 2000, "procs": 8,
           "proc_rows": 250 if args.quick else 1000, "rounds": 1 if args.quick else 3}
    results: dict[str, Any] = {"config": cfg, "backends": {}, "python": sys.version.split()[0],
                               "cpus": os.cpu_count()}
    d = tempfile.mkdtemp(prefix="ck-ledger-bench-")
    server = None
    try:
        results["backends"]["SQLite (WAL)"] = bench(f"sqlite:///{d}/ledger.db", "sqlite", cfg, log)
        if not args.no_postgres:
            dsn, server = _postgres(args.postgres, log)
            if dsn:
                results["backends"]["PostgreSQL"] = bench(_fresh_schema(dsn), "postgres", cfg, log)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        if server is not None:
            server.stop()
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(render(results))


if __name__ == "__main__":
    main()
