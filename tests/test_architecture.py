"""The package's import graph: no cycles, and lower layers never import upper ones.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a computekit module,
those written inside functions included (a function-level import still ties the two modules together, it only
runs later). Imports under ``if TYPE_CHECKING:`` are left out: they never run. A package's ``__init__`` is not an
edge of its submodules (Python runs it first, whatever they import).

The layers, lowest first, are drawn in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "computekit"

# Lowest first. A module may import its own layer and the layers below it, never one above. A module is placed by
# the pattern that matches its dotted name (without the leading "computekit."); a new private module of the
# top-level package that no pattern names is taken as part of the client layer, so no lower layer can reach it.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", [r"_version", r"_constants", r"_exceptions", r"_money", r"_extras", r"_arguments"]),
    ("vocabulary", [r"_http", r"_urls", r"_targets", r"_tags", r"_schema", r"_sse", r"_inprocess", r"_outputs",
                    r"webhooks", r"_display", r"ledger\._row", r"ledger\._budgets"]),
    ("data types", [r"_types", r"_structured", r"_background"]),
    ("pricing", [r"pricing(\..*)?"]),
    ("adapters", [r"adapters(\..*)?"]),
    ("settings", [r"_config"]),
    ("services", [r"_retry", r"routing(\..*)?", r"_budget", r"_costs", r"ledger(\..*)?", r"_transport", r"_otel",
                  r"_finetune", r"_progress"]),
    ("core", [r"_core", r"_batch"]),
    ("calls", [r"_plan", r"_plans", r"_attempt", r"_driver", r"_bookkeeping"]),
    ("client", [r"_client", r"_streaming", r"_predictions", r"_finetune_client", r"_background_client", r"_defaults",
                r"_instrument(_sdks|_meter)?"]),
    ("entry points", [r"", r"cli", r"testing(\..*)?", r"_docgen", r"_demo"]),
]
NEW_MODULES = ("client", r"_[a-z_]+")
RANK = {layer: i for i, (layer, _) in enumerate(LAYERS)}

# The modules that must never reach the client, whatever the layer table says.
NO_CLIENT = re.compile(r"(adapters|pricing|ledger|routing)(\..*)?")


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name (relative to the package, ``""`` for the package itself) -> source file."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports_of(name: str, path: Path, modules: Mapping[str, Path], package: str) -> set[str]:
    """The modules of ``package`` that ``name`` imports, anywhere in the file but under ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text("utf-8"))
    skip = _type_checking_only(tree)
    here = name.split(".") if name else []
    if path.name != "__init__.py":
        here = here[:-1]  # the package a relative import starts from
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                parent = ".".join([package, *base, *([node.module] if node.module else [])])
            else:
                parent = node.module or ""
            # "from pkg import module" imports that module; "from module import name", the module.
            found.update(f"{parent}.{a.name}" if _dotted(f"{parent}.{a.name}", package) in modules else parent
                         for a in node.names)
    out = set()
    for full in found:
        if full != package and not full.startswith(package + "."):
            continue
        dotted = _dotted(full, package)
        while dotted not in modules and dotted:
            dotted = dotted.rpartition(".")[0]
        if dotted in modules and dotted != name and not _is_parent_package(dotted, name):
            out.add(dotted)
    return out


def _dotted(full: str, package: str) -> str:
    return full[len(package) + 1:] if full != package else ""


def _is_parent_package(candidate: str, name: str) -> bool:
    """Whether ``candidate`` is a package ``name`` sits in (Python imports it first anyway)."""
    return candidate == "" or name.startswith(candidate + ".")


def import_graph(root: Path = PACKAGE, package: str = "computekit") -> dict[str, set[str]]:
    modules = module_names(root)
    return {name: imports_of(name, path, modules, package) for name, path in modules.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str:
    for layer, patterns in [*LAYERS, (NEW_MODULES[0], [NEW_MODULES[1]])]:
        if any(re.fullmatch(p, module) for p in patterns):
            return layer
    raise AssertionError(f"computekit.{module} is in no layer: add it to LAYERS in tests/test_architecture.py")


def _path(graph: Mapping[str, Iterable[str]], start: str, end: str) -> list[str]:
    """One import path from ``start`` back to itself through ``end`` (for the failure message)."""
    seen = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w not in seen:
                seen[w] = [*seen[v], w]
                queue.append(w)
    return seen.get(end, [])


# --------------------------------------------------------------------------------------------- the package


GRAPH = import_graph()


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(GRAPH)
    explained = []
    for component in found:
        a, b = component[:2]
        explained.append(" -> ".join(_path(GRAPH, a, b) + _path(GRAPH, b, a)[1:]))
    assert found == [], "import cycles (function-level imports count):\n" + "\n".join(explained)


def test_every_module_is_in_a_layer() -> None:
    assert {m: layer_of(m) for m in GRAPH}  # raises, naming the module, for one in no layer


def test_lower_layers_never_import_upper_ones() -> None:
    upward = [
        f"computekit.{m or '__init__'} ({layer_of(m)}) imports computekit.{d} ({layer_of(d)})"
        for m, deps in sorted(GRAPH.items())
        for d in sorted(deps)
        if RANK[layer_of(d)] > RANK[layer_of(m)]
    ]
    assert upward == []


def test_adapters_pricing_ledger_and_routing_never_import_the_client() -> None:
    lower = [m for m in GRAPH if NO_CLIENT.fullmatch(m)]
    assert any(m.startswith("adapters.") for m in lower)
    assert any(m.startswith("ledger.") for m in lower)
    reach = {m: sorted(_reachable(m) & _client_side()) for m in lower}
    assert {m: r for m, r in reach.items() if r} == {}


def _client_side() -> set[str]:
    return {m for m in GRAPH if layer_of(m) in ("core", "client", "entry points")}


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in GRAPH.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_vocabulary_modules_are_leaves_of_the_package() -> None:
    """The shared vocabulary (version, HTTP types, targets) imports nothing above the foundation."""
    for leaf in ("_version", "_http", "_targets", "ledger._row"):
        assert {layer_of(d) for d in GRAPH[leaf]} <= {"foundation"}, leaf


def test_the_architecture_page_names_every_module() -> None:
    """``docs/architecture.md`` describes every module (a provider's adapter is ``adapters/<provider>``)."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text("utf-8")
    named = set(re.findall(r"`([\w/<>]+)`", page))
    # "`ledger/_null`, `_sqlite`" names ledger/_sqlite too.
    for package, first, rest in re.findall(r"`(\w+)/(_\w+)`((?:, `_\w+`)+)", page):
        named |= {f"{package}/{m}" for m in [first, *re.findall(r"`(_\w+)`", rest)]}
    providers = {m for m in GRAPH if m.startswith("adapters.") and not m.startswith("adapters._")}
    missing = [m.replace(".", "/") or "computekit" for m in GRAPH if m not in providers]
    assert [m for m in missing if m not in named] == [], "describe these modules in docs/architecture.md"
    assert "adapters/<provider>" in named


def test_the_diagram_draws_the_layer_table() -> None:
    """Each module drawn in the page's diagram sits in the layer it is drawn in, and every layer is drawn."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text("utf-8")
    diagram = page.split("```text\n", 1)[1].split("```", 1)[0]
    drawn: dict[str, str] = {}
    layer = ""
    for line in diagram.splitlines():
        row = re.fullmatch(r" │ (.{13})(.*)│", line.rstrip())
        if row is None:
            continue
        layer = row[1].strip() or layer
        for name in re.sub(r"\([^)]*\)", "", row[2]).split():  # "(the contract)" and such are notes
            module = "" if name == "computekit" else name.replace("/", ".").replace("<provider>", "openai")
            drawn[name] = layer
            assert layer_of(module) == layer, f"{name} is drawn in {layer!r}, the table says {layer_of(module)!r}"
    assert set(drawn.values()) == set(RANK)
    assert len(drawn) > 30


# --------------------------------------------------------------------------------------------- the checker


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return import_graph(root, "pkg")


def test_checker_counts_imports_inside_functions(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "a.py": "from . import b\n",
        "b.py": "def later():\n    from .a import thing\n    return thing\n",
    })
    assert graph["b"] == {"a"}
    assert cycles(graph) == [["a", "b"]]


def test_checker_leaves_out_type_checking_imports(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "a.py": "from .b import B\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\nclass B: ...\n",
        "c.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg.a\n",
    })
    assert graph["b"] == set()
    assert graph["c"] == set()
    assert cycles(graph) == []


def test_checker_resolves_relative_absolute_and_subpackage_imports(tmp_path: Path) -> None:
    graph = _package(tmp_path, {
        "sub/__init__.py": "from .x import X\n",
        "sub/x.py": "from ..top import T\nclass X: ...\n",
        "top.py": "import pkg.sub.x\nfrom pkg import other\nT = 1\n",
        "other.py": "from .sub import X\n",
    })
    assert graph["sub.x"] == {"top"}  # its own package (pkg.sub) is not an edge
    assert graph["top"] == {"sub.x", "other"}
    assert graph["other"] == {"sub"}
    assert cycles(graph) == [["other", "sub", "sub.x", "top"]]  # other -> sub -> sub.x -> top -> other


@pytest.mark.parametrize(("module", "layer"), [("_http", "vocabulary"), ("adapters.openai", "adapters"),
                                                ("ledger._report", "services"), ("_client", "client"),
                                                ("_some_new_module", "client"), ("", "entry points")])
def test_layer_table(module: str, layer: str) -> None:
    assert layer_of(module) == layer


def test_no_test_module_imports_a_conftest() -> None:
    """``from conftest import X`` resolves to whichever folder's conftest pytest put on ``sys.path`` first
    (``tests/faults`` has one too): shared test helpers live in uniquely named modules (``_paths``, ``_support``)."""
    tests = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n.split(".")[0] == "conftest" for n in names):
                offenders.append(f"{path.relative_to(tests)}:{node.lineno}")
    assert offenders == []
