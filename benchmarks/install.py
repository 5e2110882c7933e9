"""What a user installs and what `import computekit` costs, next to the openai SDK, in fresh virtualenvs.

    python benchmarks/install.py                  # the working tree: wheel, size, import ratio (a few minutes)
    python benchmarks/install.py --ref v0.1.0     # the same for a git revision (for before/after figures)
    python benchmarks/install.py --runs 21 --out install.json

Steps, all in a temporary directory:

1. build the wheel (`python -m build --wheel`) from the working tree, or from `git archive REF`;
2. a fresh venv with that wheel installed (`pip install computekit-*.whl`, the core dependencies only): the size
   of its site-packages, minus what an empty venv holds (pip), and the distributions it added;
3. a second fresh venv with `openai` alone, for the reference import;
4. `import computekit` and `import openai`, each timed inside fresh interpreters (interpreter start-up excluded,
   bytecode cache warm as for an installed wheel), alternated run by run; medians and their ratio. computekit
   loads its client on first use, so the import plus the client class (`computekit.Client`, `openai.OpenAI`) is
   measured too: what a program pays before its first call.

Nothing here is editable: the wheel is what `pip install computekit` would get. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"core_site_packages_mb": 60.0, "import_ratio": 0.25}
TIMER = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
# What a program pays before its first call: the import, then the client class (computekit loads it on first use).
CLIENT_TIMER = "import time; t = time.perf_counter(); import {m}; {m}.{cls}; print(time.perf_counter() - t)"
MEASURES = {  # label -> (python key, code)
    "computekit": ("computekit", TIMER.format(m="computekit")),
    "computekit + Client": ("computekit", CLIENT_TIMER.format(m="computekit", cls="Client")),
    "openai": ("openai", TIMER.format(m="openai")),
    "openai + OpenAI": ("openai", CLIENT_TIMER.format(m="openai", cls="OpenAI")),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(*args: str | Path, cwd: Path | None = None) -> str:
    out = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(map(str, args))}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout


def build_wheel(ref: str | None, tmp: Path) -> Path:
    src = ROOT
    if ref is not None:
        src = tmp / "src"
        src.mkdir()
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    dist = tmp / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, src)
    [wheel] = dist.glob("computekit-*.whl")
    return wheel


def venv(path: Path, *requirements: str | Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    python = path / "bin" / "python"
    if requirements:
        run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements)
    return python


def site_packages(python: Path) -> Path:
    return Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def distributions(sp: Path) -> set[str]:
    return {p.name.split("-")[0].lower() for p in sp.glob("*.dist-info")}


def import_times(pythons: dict[str, Path], runs: int) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    times: dict[str, list[float]] = {label: [] for label in MEASURES}
    for key, code in MEASURES.values():  # warm-up: writes the bytecode cache, as an installed wheel has one
        subprocess.run([pythons[key], "-c", code], env=env, capture_output=True, check=True)
    for i in range(runs):
        order = list(MEASURES) if i % 2 == 0 else list(reversed(MEASURES))
        for label in order:
            key, code = MEASURES[label]
            out = subprocess.run([pythons[key], "-c", code], env=env, capture_output=True, text=True,
                                 check=True, cwd=tempfile.gettempdir())
            times[label].append(float(out.stdout.strip()))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", help="a git revision to build instead of the working tree")
    ap.add_argument("--runs", type=int, default=15, help="fresh interpreters per import measurement")
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "computekit-install.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="computekit-install-") as tmp_s:
        tmp = Path(tmp_s)
        log(f"building the wheel ({args.ref or 'working tree'}) ...")
        wheel = build_wheel(args.ref, tmp)
        log("empty venv ...")
        empty = site_packages(venv(tmp / "empty"))
        log(f"venv with {wheel.name} ...")
        ck_python = venv(tmp / "core", wheel)
        ck_sp = site_packages(ck_python)
        log("venv with openai ...")
        oa_python = venv(tmp / "openai", "openai")
        oa_sp = site_packages(oa_python)
        added = sorted(distributions(ck_sp) - distributions(empty))
        core_mb = (tree_bytes(ck_sp) - tree_bytes(empty)) / 1e6
        openai_mb = (tree_bytes(oa_sp) - tree_bytes(empty)) / 1e6
        versions = run(oa_python, "-c", "import openai; print(openai.__version__)").strip()
        log(f"timing imports ({args.runs} fresh interpreters each) ...")
        times = import_times({"computekit": ck_python, "openai": oa_python}, args.runs)

    med = {m: statistics.median(ts) for m, ts in times.items()}
    ratio = med["computekit"] / med["openai"]
    client_ratio = med["computekit + Client"] / med["openai + OpenAI"]
    result: dict[str, Any] = {
        "ref": args.ref or "working tree",
        "wheel": wheel.name,
        "python": platform.python_version(),
        "openai": versions,
        "core_site_packages_mb": round(core_mb, 1),
        "core_distributions": added,
        "openai_site_packages_mb": round(openai_mb, 1),
        "import_s": times,
        "median_import_ms": {m: round(v * 1000, 1) for m, v in med.items()},
        "import_ratio": round(ratio, 3),
        "import_and_client_ratio": round(client_ratio, 3),
        "targets": TARGETS,
    }
    Path(args.out).write_text(json.dumps(result, indent=1), "utf-8")
    size_ok = "yes" if core_mb <= TARGETS["core_site_packages_mb"] else "NO"
    ratio_ok = "yes" if ratio <= TARGETS["import_ratio"] else "NO"
    print(f"| metric | computekit | openai | target | met |\n|---|---:|---:|---:|:-:|\n"
          f"| site-packages of a fresh venv with the wheel (MB, net of pip) | {core_mb:.1f} | {openai_mb:.1f} "
          f"| <= {TARGETS['core_site_packages_mb']:.0f} MB | {size_ok} |\n"
          f"| distributions installed | {len(added)} | | | |\n"
          f"| cold `import` (median of {args.runs} fresh processes) | {med['computekit'] * 1000:.0f} ms "
          f"| {med['openai'] * 1000:.0f} ms | <= {TARGETS['import_ratio']}x | {ratio_ok} ({ratio:.2f}x) |\n"
          f"| ↳ `import` + the client class (`ck.Client` / `openai.OpenAI`) "
          f"| {med['computekit + Client'] * 1000:.0f} ms | {med['openai + OpenAI'] * 1000:.0f} ms | | "
          f"({client_ratio:.2f}x) |")
    log(f"core distributions: {', '.join(added)}")
    log(f"JSON: {args.out} ({time.strftime('%Y-%m-%d')}, openai {versions}, Python {platform.python_version()})")


if __name__ == "__main__":
    main()
