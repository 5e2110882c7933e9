"""computekit's overhead benchmarks against the vendor SDK, on loopback only.

    python benchmarks/run.py            # full run (a few minutes)
    python benchmarks/run.py --quick    # smaller counts, one round (about a minute)
    python benchmarks/run.py --out results.json

Every scenario runs in a fresh subprocess (so peak RSS belongs to that scenario alone), scenarios are interleaved
round by round (so a noisy neighbour slows all of them alike), and the server runs in its own process. The table
shows medians over all repetitions and the ratios against the openai SDK; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL = "gpt-4o-mini"
PROMPT = "hi"
API_KEY = "sk-bench"

TARGETS = {
    "import": 0.25,  # computekit import time / openai import time, at most
    "import_rss_mb": 50.0,  # RSS after `import computekit`, at most
    "seq": 0.5,  # computekit per-call time / openai SDK per-call time, at most
    "async": 4.0,  # computekit calls/s / openai SDK calls/s, at least
}

SEQ_KINDS = ("computekit", "computekit-noledger", "openai", "httpx", "httpx2", "computekit-responses",
             "openai-responses")
ASYNC_KINDS = ("computekit", "computekit-noledger", "openai", "httpx", "httpx2", "aiohttp")
# Optional references: measured only when importable. httpx2 (pydantic's fork, with the fixed connection pool)
# is what recent openai SDKs send with; computekit uses httpx.
OPTIONAL = {"httpx2": "httpx2", "aiohttp": "aiohttp"}


# ------------------------------------------------------------------------------------------------ helpers


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _vmrss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_mb()


def _git_rev() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ------------------------------------------------------------------------------------------------ workers
# Each worker runs in its own subprocess and prints one JSON line on stdout.


def _computekit_client(url: str, ledger_dir: str, *, ledger: bool, is_async: bool) -> Any:
    import computekit as ck

    kwargs: dict[str, Any] = {
        "providers": {"openai": {"base_url": url, "api_key": API_KEY}},
        "ledger": f"sqlite:///{ledger_dir}/ledger.db" if ledger else "none",
    }
    return ck.AsyncClient(None, **kwargs) if is_async else ck.Client(None, **kwargs)


def _check_computekit(r: Any) -> None:
    # The benchmark is only fair if pricing really runs: a None total would mean it was skipped.
    if r.cost is None or r.cost.total is None or not r.text:
        raise SystemExit(f"computekit did not price the call: {r.cost!r}")


def _seq_caller(kind: str, url: str, ledger_dir: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    if kind == "computekit-responses":  # the Responses wire format, ledger on: against openai-responses
        client = _computekit_client(url, ledger_dir, ledger=True, is_async=False)
        _check_computekit(client.complete(f"openai:{MODEL}", PROMPT, api="responses"))
        return (lambda: client.complete(f"openai:{MODEL}", PROMPT, api="responses")), client.close
    if kind == "openai-responses":
        import openai

        orc = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
        return (lambda: orc.responses.create(model=MODEL, input=PROMPT)), orc.close
    if kind.startswith("computekit"):
        ledger = kind == "computekit"
        client = _computekit_client(url, ledger_dir, ledger=ledger, is_async=False)
        _check_computekit(client.complete(f"openai:{MODEL}", PROMPT))
        return (lambda: client.complete(f"openai:{MODEL}", PROMPT)), client.close
    if kind == "openai":
        import openai

        oc = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
        messages = [{"role": "user", "content": PROMPT}]
        return (lambda: oc.chat.completions.create(model=MODEL, messages=messages)), oc.close  # type: ignore[arg-type]
    if kind in ("httpx", "httpx2"):
        import importlib

        hc = importlib.import_module(kind).Client()
        endpoint = f"{url}/chat/completions"
        headers = {"authorization": f"Bearer {API_KEY}"}
        body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
        return (lambda: hc.post(endpoint, json=body, headers=headers).json()), hc.close
    raise SystemExit(f"unknown sequential kind {kind!r}")


def worker_seq(kind: str, url: str, calls: int, reps: int, warmup: int) -> dict[str, Any]:
    ledger_dir = tempfile.mkdtemp(prefix="ck-bench-")
    try:
        call, close = _seq_caller(kind, url, ledger_dir)
        for _ in range(warmup):
            call()
        per_call = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(calls):
                call()
            per_call.append((time.perf_counter() - t0) / calls)
        close()
        return {"per_call_s": per_call, "maxrss_mb": _maxrss_mb()}
    finally:
        shutil.rmtree(ledger_dir, ignore_errors=True)


async def _async_caller(kind: str, url: str, ledger_dir: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    if kind.startswith("computekit"):
        ledger = kind == "computekit"
        client = _computekit_client(url, ledger_dir, ledger=ledger, is_async=True)
        _check_computekit(await client.complete(f"openai:{MODEL}", PROMPT))
        return (lambda: client.complete(f"openai:{MODEL}", PROMPT)), client.aclose
    if kind == "openai":
        import openai

        oc = openai.AsyncOpenAI(base_url=url, api_key=API_KEY)  # the default client, as users get it
        messages = [{"role": "user", "content": PROMPT}]
        return (lambda: oc.chat.completions.create(model=MODEL, messages=messages)), oc.close  # type: ignore[arg-type]
    endpoint = f"{url}/chat/completions"
    headers = {"authorization": f"Bearer {API_KEY}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    if kind in ("httpx", "httpx2"):
        import importlib

        hx = importlib.import_module(kind)
        hc = hx.AsyncClient(limits=hx.Limits(max_connections=1000, max_keepalive_connections=100))

        async def hcall() -> Any:
            r = await hc.post(endpoint, json=body, headers=headers)
            return r.json()

        return hcall, hc.aclose
    if kind == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

        async def acall() -> Any:
            async with session.post(endpoint, json=body, headers=headers) as r:
                return await r.json()

        return acall, session.close
    raise SystemExit(f"unknown async kind {kind!r}")


async def _batch(call: Callable[[], Any], n: int, concurrency: int) -> float:
    """``n`` calls with exactly ``concurrency`` in flight (workers pulling from one counter); returns seconds."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    import asyncio

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def _worker_async(kind: str, url: str, calls: int, reps: int, concurrency: int) -> dict[str, Any]:
    ledger_dir = tempfile.mkdtemp(prefix="ck-bench-")
    try:
        call, close = await _async_caller(kind, url, ledger_dir)
        await _batch(call, max(concurrency * 2, calls // 4), concurrency)  # warm up: opens the pool
        rates = []
        for _ in range(reps):
            rates.append(calls / await _batch(call, calls, concurrency))
        await close()
        return {"calls_per_s": rates, "maxrss_mb": _maxrss_mb()}
    finally:
        shutil.rmtree(ledger_dir, ignore_errors=True)


def worker_async(kind: str, url: str, calls: int, reps: int, concurrency: int) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_worker_async(kind, url, calls, reps, concurrency))


def worker_ledger(rows: int) -> dict[str, Any]:
    import datetime as dt
    from decimal import Decimal

    from computekit.ledger import LedgerRow, SQLiteLedger

    d = tempfile.mkdtemp(prefix="ck-bench-")
    try:
        ledger = SQLiteLedger(Path(d) / "ledger.db")
        row = LedgerRow(
            ts=dt.datetime.now(dt.UTC), verb="complete", provider="openai", model=MODEL, outcome="success",
            latency_ms=1.25, input_tokens=8, output_tokens=10, cost=Decimal("0.0000072"),
            price_source="genai-prices 0.2.3 (2025-01-01)", request_id="req_0123456789abcdef",
        )
        for _ in range(50):
            ledger.record(row)
        each = []
        for _ in range(rows):
            t0 = time.perf_counter()
            ledger.record(row)
            each.append(time.perf_counter() - t0)
        ledger.close()
        return {"record_s": each, "maxrss_mb": _maxrss_mb()}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def worker_import(module: str, url: str | None = None) -> dict[str, Any]:
    """Time ``import module``; with ``url``, also the first call (client construction included)."""
    t0 = time.perf_counter()
    __import__(module)
    took = time.perf_counter() - t0
    out: dict[str, Any] = {"import_s": took, "rss_mb": _vmrss_mb()}
    if url is not None:
        t1 = time.perf_counter()
        if module == "computekit":
            import computekit as ck

            with ck.Client(None, providers={"openai": {"base_url": url, "api_key": API_KEY}}, ledger="none") as c:
                c.complete(f"openai:{MODEL}", PROMPT)
        else:
            import openai

            with openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0) as oc:
                oc.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
        out["first_call_s"] = time.perf_counter() - t1
    return out


# ------------------------------------------------------------------------------------------------ driver


def _run_worker(args: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args],
        capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir(), env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _bytecode_env(cache_dir: str | None) -> dict[str, str]:
    """The environment for import workers: with ``cache_dir``, bytecode is cached there (as for an installed
    wheel, whose .pyc files pip writes), even when PYTHONDONTWRITEBYTECODE is set (an editable checkout otherwise
    recompiles every computekit module on every import, which no installed user pays)."""
    env = dict(os.environ)
    if cache_dir is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache_dir
    return env


def measure_imports(n: int, url: str, log: Callable[[str], None]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    mods = ["computekit", "openai", "litellm"]
    cache = tempfile.mkdtemp(prefix="ck-bench-pyc-")
    env = _bytecode_env(cache)
    try:
        for m in mods:
            if not _installed(m):
                res[m] = {"installed": False}
                continue
            _run_worker(["import", m], env=env)  # writes the bytecode cache: a warm disk, a cold process
        samples: dict[str, list[dict[str, Any]]] = {m: [] for m in mods if m not in res}
        first: dict[str, list[float]] = {m: [] for m in ("computekit", "openai") if m in samples}
        nopyc: list[float] = []
        base = []
        for _ in range(n):  # interleaved, so drift hits every module alike
            for m in samples:
                samples[m].append(_run_worker(["import", m], env=env))
            for m in first:
                r = _run_worker(["import", m, url], env=env)
                first[m].append(r["import_s"] + r["first_call_s"])
            nopyc.append(_run_worker(["import", "computekit"], env=_bytecode_env(None))["import_s"])
            base.append(_run_worker(["import", "sys"], env=env)["rss_mb"])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for m, ss in samples.items():
        res[m] = {
            "installed": True,
            "import_s": [s["import_s"] for s in ss],
            "median_import_s": _median([s["import_s"] for s in ss]),
            "median_rss_mb": _median([s["rss_mb"] for s in ss]),
        }
        if m in first:
            res[m]["import_and_first_call_s"] = first[m]
            res[m]["median_import_and_first_call_s"] = _median(first[m])
        log(f"  import {m}: {res[m]['median_import_s'] * 1000:.1f} ms, RSS {res[m]['median_rss_mb']:.1f} MB")
    if "computekit" in samples:
        res["computekit"]["no_bytecode_cache_import_s"] = nopyc
        res["computekit"]["median_no_bytecode_cache_import_s"] = _median(nopyc)
    res["bare_interpreter_rss_mb"] = _median(base)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description="computekit overhead benchmarks (loopback only)")
    ap.add_argument("--quick", action="store_true", help="smaller counts and one round")
    ap.add_argument("--out", default="/tmp/computekit-bench.json", help="where to write the JSON results")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        w = args.worker
        if w[0] == "import":
            r = worker_import(w[1], w[2] if len(w) > 2 else None)
        elif w[0] == "seq":
            r = worker_seq(w[1], w[2], int(w[3]), int(w[4]), int(w[5]))
        elif w[0] == "async":
            r = worker_async(w[1], w[2], int(w[3]), int(w[4]), int(w[5]))
        elif w[0] == "ledger":
            r = worker_ledger(int(w[1]))
        else:
            raise SystemExit(f"unknown worker {w}")
        print(json.dumps(r))
        return

    quick = args.quick
    cfg = {
        "import_runs": 5 if quick else 15,
        "rounds": 1 if quick else 5,
        "seq_calls": 200 if quick else 500,
        "seq_reps": 2,
        "seq_warmup": 30 if quick else 100,
        "async_calls": 1000,
        "async_reps": 2,
        "concurrency": 100,
        "ledger_rows": 2000,
    }

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    sys.path.insert(0, str(HERE))
    from server import start_in_subprocess

    log(f"computekit benchmarks ({'quick' if quick else 'full'}): {cfg}")
    results: dict[str, Any] = {
        "config": cfg,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "git": _git_rev(),
        },
        "versions": {},
    }
    for mod in ("computekit", "openai", "httpx", "httpcore", "httpx2", "pydantic", "tenacity", "aiohttp", "litellm"):
        try:
            from importlib.metadata import version

            results["versions"][mod] = version(mod)
        except Exception:
            results["versions"][mod] = None

    seq_kinds = [k for k in SEQ_KINDS if k not in OPTIONAL or _installed(OPTIONAL[k])]
    async_kinds = [k for k in ASYNC_KINDS if k not in OPTIONAL or _installed(OPTIONAL[k])]
    seq: dict[str, dict[str, list[float]]] = {k: {"per_call_s": [], "maxrss_mb": []} for k in seq_kinds}
    asy: dict[str, dict[str, list[float]]] = {k: {"calls_per_s": [], "maxrss_mb": []} for k in async_kinds}
    ledger_s: list[float] = []

    with start_in_subprocess() as server:
        log(f"server at {server.url} (pid {server.proc.pid})")
        log("import time ...")
        results["import"] = measure_imports(cfg["import_runs"], server.url, log)
        for rnd in range(cfg["rounds"]):
            log(f"round {rnd + 1}/{cfg['rounds']}")
            # Rotate the order every round: on a noisy machine, the position in a round matters.
            for k in seq_kinds[rnd % len(seq_kinds):] + seq_kinds[:rnd % len(seq_kinds)]:
                r = _run_worker(["seq", k, server.url, str(cfg["seq_calls"]), str(cfg["seq_reps"]),
                                 str(cfg["seq_warmup"])])
                seq[k]["per_call_s"] += r["per_call_s"]
                seq[k]["maxrss_mb"].append(r["maxrss_mb"])
                log(f"  seq   {k:20s} {statistics.median(r['per_call_s']) * 1e6:8.0f} µs/call")
            for k in async_kinds[rnd % len(async_kinds):] + async_kinds[:rnd % len(async_kinds)]:
                r = _run_worker(["async", k, server.url, str(cfg["async_calls"]), str(cfg["async_reps"]),
                                 str(cfg["concurrency"])])
                asy[k]["calls_per_s"] += r["calls_per_s"]
                asy[k]["maxrss_mb"].append(r["maxrss_mb"])
                log(f"  async {k:20s} {statistics.median(r['calls_per_s']):8.0f} calls/s")
            r = _run_worker(["ledger", str(cfg["ledger_rows"])])
            ledger_s += r["record_s"]
            log(f"  ledger record {statistics.median(r['record_s']) * 1e6:.1f} µs")

    results["sequential"] = {
        k: {**v, "median_per_call_s": _median(v["per_call_s"]), "median_maxrss_mb": _median(v["maxrss_mb"])}
        for k, v in seq.items()
    }
    results["async"] = {
        k: {**v, "median_calls_per_s": _median(v["calls_per_s"]), "median_maxrss_mb": _median(v["maxrss_mb"])}
        for k, v in asy.items()
    }
    for k in OPTIONAL:
        if k in SEQ_KINDS and k not in seq:
            results["sequential"][k] = {"installed": False}
        if k not in asy:
            results["async"][k] = {"installed": False}
    results["ledger"] = {
        "rows": len(ledger_s),
        "median_record_s": _median(ledger_s),
        "p90_record_s": statistics.quantiles(ledger_s, n=10)[-1] if len(ledger_s) > 10 else None,
        # The mean carries what the median hides: SQLite's WAL auto-checkpoint (every 1000 pages, so about
        # every 1000 single-row commits) fsyncs, and one slow fsync is paid by one unlucky call.
        "mean_record_s": statistics.fmean(ledger_s) if ledger_s else None,
        "max_record_s": max(ledger_s) if ledger_s else None,
    }

    imp = results["import"]
    sq = results["sequential"]
    az = results["async"]
    ratios = {
        "import": _ratio(imp["computekit"].get("median_import_s"), imp["openai"].get("median_import_s")),
        "seq": _ratio(sq["computekit"]["median_per_call_s"], sq["openai"]["median_per_call_s"]),
        "seq_vs_httpx": _ratio(sq["computekit"]["median_per_call_s"], sq["httpx"]["median_per_call_s"]),
        "seq_responses": _ratio(sq["computekit-responses"]["median_per_call_s"],
                                sq["openai-responses"]["median_per_call_s"]),
        "async": _ratio(az["computekit"]["median_calls_per_s"], az["openai"]["median_calls_per_s"]),
        "async_vs_httpx": _ratio(az["computekit"]["median_calls_per_s"], az["httpx"]["median_calls_per_s"]),
    }
    results["ratios"] = ratios
    results["targets"] = TARGETS
    results["met"] = {
        "import": ratios["import"] is not None and ratios["import"] <= TARGETS["import"],
        "import_rss_mb": imp["computekit"]["median_rss_mb"] <= TARGETS["import_rss_mb"],
        "seq": ratios["seq"] is not None and ratios["seq"] <= TARGETS["seq"],
        "seq_responses": ratios["seq_responses"] is not None and ratios["seq_responses"] <= TARGETS["seq"],
        "async": ratios["async"] is not None and ratios["async"] >= TARGETS["async"],
    }

    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(render(results))
    log(f"\nwrote {args.out}")


# ------------------------------------------------------------------------------------------------ table


def _f(v: float | None, fmt: str, scale: float = 1.0) -> str:
    return "—" if v is None else format(v * scale, fmt)


def _ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def render(res: dict[str, Any]) -> str:
    imp, sq, az, ld = res["import"], res["sequential"], res["async"], res["ledger"]
    ratios, met, cfg = res["ratios"], res["met"], res["config"]

    def gone(d: dict[str, Any]) -> bool:
        return not d or d.get("installed") is False

    def imp_ms(m: str) -> str:
        d = imp.get(m, {})
        return "not installed" if gone(d) else _f(d["median_import_s"], ".0f", 1000) + " ms"

    def imp_rss(m: str) -> str:
        d = imp.get(m, {})
        return "not installed" if gone(d) else _f(d["median_rss_mb"], ".1f") + " MB"

    def seq_us(k: str) -> str:
        d = sq.get(k, {})
        return "not installed" if gone(d) else _f(d["median_per_call_s"], ".0f", 1e6) + " µs"

    def rps(k: str) -> str:
        d = az.get(k, {})
        return "not installed" if gone(d) else _f(d["median_calls_per_s"], ",.0f") + "/s"

    def rss(d: dict[str, Any], k: str) -> str:
        v = d.get(k, {})
        return "—" if gone(v) else _f(v["median_maxrss_mb"], ".0f") + " MB"

    def x(v: float | None) -> str:
        return _f(v, ".2f") + "x"

    def row(*cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    seq_nl = _ratio(sq["computekit-noledger"]["median_per_call_s"], sq["openai"]["median_per_call_s"])
    az_nl = _ratio(az["computekit-noledger"]["median_calls_per_s"], az["openai"]["median_calls_per_s"])
    v = res["versions"]
    lines = [
        f"computekit {v['computekit']} ({res['machine']['git']}) · openai {v['openai']} · "
        f"httpx {v['httpx']} (httpcore {v['httpcore']}) · "
        f"httpx2 {v['httpx2']} · Python {res['machine']['python']} · {res['machine']['cpus']} CPUs · "
        "medians; server in its own process on 127.0.0.1",
        "",
        row("benchmark", "computekit", "openai SDK", "raw httpx", "raw httpx2", "ratio ck/openai", "target", "met"),
        "|---|---:|---:|---:|---:|---:|---:|:-:|",
        row(f"cold `import` (median of {cfg['import_runs']} fresh processes; litellm: {imp_ms('litellm')})",
            imp_ms("computekit"), imp_ms("openai"), "", "", x(ratios["import"]), "<= 0.3x", _ok(met["import"])),
        row("↳ same, without a bytecode cache (an editable checkout under PYTHONDONTWRITEBYTECODE)",
            _f(imp.get("computekit", {}).get("median_no_bytecode_cache_import_s"), ".0f", 1000) + " ms",
            "", "", "", "", "", ""),
        row("cold start: `import` + construct client + first call (fresh process)",
            _f(imp.get("computekit", {}).get("median_import_and_first_call_s"), ".0f", 1000) + " ms",
            _f(imp.get("openai", {}).get("median_import_and_first_call_s"), ".0f", 1000) + " ms", "", "",
            x(_ratio(imp.get("computekit", {}).get("median_import_and_first_call_s"),
                     imp.get("openai", {}).get("median_import_and_first_call_s"))), "", ""),
        row(f"RSS after `import` (bare python: {_f(imp['bare_interpreter_rss_mb'], '.1f')} MB)",
            imp_rss("computekit"), imp_rss("openai"), "", "", "", "<= 50 MB", _ok(met["import_rss_mb"])),
        row(f"sequential `complete`, per call ({cfg['seq_calls']} calls x {cfg['seq_reps'] * cfg['rounds']} reps)",
            seq_us("computekit"), seq_us("openai"), seq_us("httpx"), seq_us("httpx2"), x(ratios["seq"]),
            "<= 0.5x", _ok(met["seq"])),
        row('↳ computekit with `ledger="none"` (reference)', seq_us("computekit-noledger"), "", "", "",
            x(seq_nl), "", ""),
        row("sequential, the Responses API (`api=\"responses\"` vs `responses.create`), per call",
            seq_us("computekit-responses"), seq_us("openai-responses"), "", "", x(ratios["seq_responses"]),
            "<= 0.5x", _ok(met["seq_responses"])),
        row("sequential peak RSS", rss(sq, "computekit"), rss(sq, "openai"), rss(sq, "httpx"), rss(sq, "httpx2"),
            "", "", ""),
        row(f"async, {cfg['async_calls']} calls at {cfg['concurrency']} in flight "
            f"({cfg['async_reps'] * cfg['rounds']} reps; aiohttp: {rps('aiohttp')})",
            rps("computekit"), rps("openai"), rps("httpx"), rps("httpx2"), x(ratios["async"]), ">= 4x",
            _ok(met["async"])),
        row('↳ computekit with `ledger="none"` (reference)', rps("computekit-noledger"), "", "", "", x(az_nl), "", ""),
        row("async peak RSS", rss(az, "computekit"), rss(az, "openai"), rss(az, "httpx"), rss(az, "httpx2"),
            "", "", ""),
        row(f"`SQLiteLedger.record`, per row ({ld['rows']} rows, WAL; p90 {_f(ld['p90_record_s'], '.0f', 1e6)} µs, "
            f"mean {_f(ld.get('mean_record_s'), '.0f', 1e6)} µs, max {_f(ld.get('max_record_s'), '.1f', 1e3)} ms)",
            _f(ld["median_record_s"], ".0f", 1e6) + " µs", "", "", "", "", "", ""),
        "",
        f"computekit vs raw httpx: sequential {x(ratios['seq_vs_httpx'])} the time per call, "
        f"async {x(ratios['async_vs_httpx'])} the throughput.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
