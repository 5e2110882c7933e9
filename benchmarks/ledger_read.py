"""Reading a large ledger back: time and peak RSS of each way to read 1,000,000 attempts, on SQLite and PostgreSQL.

    python benchmarks/ledger_read.py make --sqlite /tmp/big.db --postgres URL --rows 1000000
    python benchmarks/ledger_read.py measure --sqlite /tmp/big.db --postgres URL --code /path/to/computekit-checkout

``make`` writes synthetic attempts (several providers and models, tags, errors, one in ten unpriced, spread over
30 days) through the ledger's own ``record_many``. ``measure`` runs each scenario in a **fresh subprocess** of the
checkout given by ``--code`` (so the same script measures the code before and after a change) and reports its
wall time and ``ru_maxrss`` (the child's own peak RSS): the CLI's ``report --calls --format csv/json``,
``--plot`` and ``--html`` (output to files), ``Ledger.rows()``, and ``Ledger.iter_rows()`` where the checkout has
it. Results go to stdout as markdown and to ``--out`` as JSON. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

_TARGETS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-3-5-haiku-latest"),
            ("groq", "llama-3.1-8b-instant"), ("mistral", "mistral-small-latest")]
_START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
_BATCH = 10_000


def _rows(n: int, first: int) -> list[Any]:
    from computekit.ledger import LedgerRow

    out = []
    for i in range(first, first + n):
        provider, model = _TARGETS[i % len(_TARGETS)]
        error = i % 17 == 0
        out.append(LedgerRow(
            ts=_START + dt.timedelta(seconds=i * 30 * 86400 // 1_000_000), verb="complete", provider=provider,
            model=model, outcome="error" if error else "success", latency_ms=100.0 + i % 900,
            input_tokens=100 + i % 1000, output_tokens=20 + i % 300,
            cost=None if i % 10 == 0 else Decimal(f"0.{i % 99991:07d}") if not error else Decimal(0),
            price_source="genai-prices (benchmark)", request_id=f"req_{i:016d}",
            error_type="RateLimitError" if error else None, status=429 if error else None,
            tags={"customer": f"c{i % 50}", "feature": ("search", "chat", "=cmd")[i % 3]},
        ))
    return out


def make(url: str, n: int) -> None:
    from computekit.ledger import open_ledger

    ledger = open_ledger(url)
    try:
        t0 = time.perf_counter()
        for first in range(0, n, _BATCH):
            ledger.record_many(_rows(min(_BATCH, n - first), first))
        print(f"wrote {n:,} rows to {ledger!r} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    finally:
        ledger.close()


_PY_SCENARIOS = {
    "rows()": "n = len(ledger.rows())",
    "iter_rows()": "n = sum(1 for _ in ledger.iter_rows())",
}


def _run(code: Path, argv: list[str], out: Path | None) -> dict[str, Any]:
    """Run ``argv`` with ``code`` first on the path, in a fresh process; its wall time and peak RSS."""
    # No computekit.toml (a fresh folder as the working directory), and the ledger named on the command line.
    env = {k: v for k, v in os.environ.items() if k not in ("COMPUTEKIT_CONFIG", "COMPUTEKIT_LEDGER")}
    env["PYTHONPATH"] = str(code)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    with open(out or os.devnull, "w") as sink:
        done = subprocess.run(argv, env=env, stdout=sink, stderr=subprocess.PIPE, text=True,
                              cwd=tempfile.mkdtemp(prefix="ck-read-bench-cwd-"))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else str(done.returncode)}
    # RUSAGE_CHILDREN keeps the largest child's peak: a smaller one after a bigger one is hidden, so each
    # scenario also reports its own peak from inside (see _measure_child), which is what the table shows.
    return {"seconds": wall, "maxrss_children_kib": max(peak, before), "stderr": done.stderr}


_CHILD = """
import resource, sys, time
t0 = time.perf_counter()
{body}
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t0, file=sys.stderr)
"""


def _peak(res: dict[str, Any]) -> dict[str, Any]:
    for line in res.pop("stderr", "").splitlines():
        if line.startswith("PEAK "):
            _, kib, _secs = line.split()
            res["peak_mib"] = int(kib) / 1024
    return res


def measure(code: Path, urls: dict[str, str], scenarios: list[str]) -> dict[str, Any]:
    has_iter = "def iter_rows" in (code / "computekit" / "ledger" / "_base.py").read_text()
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="ck-read-bench-"))
    for label, url in urls.items():
        results[label] = {}
        cli = [f"from computekit.cli import app; sys.argv = ['computekit', 'report', '--ledger', {url!r}, *{{}}]",
               "try:\n    app()\nexcept SystemExit as e:\n    if e.code:\n        raise"]
        todo: dict[str, tuple[str, Path | None]] = {
            "report --calls --format csv": ("\n".join(cli).format(["--calls", "--format", "csv"]), None),
            "report --calls --format json": ("\n".join(cli).format(["--calls", "--format", "json"]), None),
            "report --plot": ("\n".join(cli).format(["--plot", str(tmp / "cost.png"), "--format", "json"]), None),
            "report --html": ("\n".join(cli).format(["--html", str(tmp / "r.html"), "--format", "json"]), None),
        }
        for name, body in _PY_SCENARIOS.items():
            if name == "iter_rows()" and not has_iter:
                continue
            todo[name] = (f"from computekit.ledger import open_ledger\nledger = open_ledger({url!r})\n{body}\n"
                          "ledger.close()", None)
        for name, (body, out) in todo.items():
            if scenarios and name not in scenarios:
                continue
            print(f"{label}: {name}", file=sys.stderr, flush=True)
            res = _peak(_run(code, [sys.executable, "-c", _CHILD.format(body=body)], out))
            results[label][name] = res
            print(f"  {res}", file=sys.stderr, flush=True)
    return results


def render(results: dict[str, Any]) -> str:
    lines = ["| backend | scenario | time | peak RSS |", "|---|---|---:|---:|"]
    for label, by in results.items():
        for name, r in by.items():
            if "error" in r:
                lines.append(f"| {label} | `{name}` | failed: {r['error']} | |")
            else:
                lines.append(f"| {label} | `{name}` | {r['seconds']:.1f} s | {r.get('peak_mib', 0):,.0f} MiB |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["make", "measure"])
    ap.add_argument("--sqlite", help="a SQLite ledger file")
    ap.add_argument("--postgres", help="a PostgreSQL ledger URL (a schema of its own: ?options=-csearch_path%%3D...)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="the computekit checkout to measure (default: this one)")
    ap.add_argument("--only", action="append", default=[], help="a scenario to run (repeatable; default: all)")
    ap.add_argument("--out", default="/tmp/computekit-ledger-read-bench.json")
    args = ap.parse_args()
    urls = {}
    if args.sqlite:
        urls["SQLite"] = f"sqlite:///{args.sqlite}"
    if args.postgres:
        urls["PostgreSQL"] = args.postgres
    if args.what == "make":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        for url in urls.values():
            make(url, args.rows)
        return
    results = measure(args.code.resolve(), urls, args.only)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(render(results))


if __name__ == "__main__":
    main()
