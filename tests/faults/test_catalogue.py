"""The catalogue (``README.md`` here) and the fault tests agree: every test of this folder has a row, every test a
row names exists, and no case is listed twice."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
README = HERE / "README.md"
_ROW = re.compile(r"^\| *(?P<case>[^|]+?) *\| *(?P<what>[^|]+?) *\| *(?P<tests>[^|]+?) *\|$", re.MULTILINE)
_NODE = re.compile(r"`(tests/faults/[\w/]+\.py::\w+)`")


def rows() -> dict[str, list[str]]:
    """Case -> the test node ids its row names."""
    out: dict[str, list[str]] = {}
    for m in _ROW.finditer(README.read_text("utf-8")):
        if m["case"] in ("Case", "---"):
            continue
        assert m["case"] not in out, f"case {m['case']} is listed twice"
        out[m["case"]] = _NODE.findall(m["tests"])
        assert out[m["case"]], f"case {m['case']} names no test"
    return out


def fault_tests() -> set[str]:
    """The node id of every test function in this folder's test modules (parametrised ids left out)."""
    found = set()
    for path in sorted(HERE.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        for node in ast.parse(path.read_text("utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                found.add(f"{path.relative_to(ROOT).as_posix()}::{node.name}")
    return found


def test_every_fault_test_is_in_the_catalogue() -> None:
    listed = {node for nodes in rows().values() for node in nodes}
    assert sorted(fault_tests() - listed) == [], "add these tests to tests/faults/README.md"


def test_every_test_the_catalogue_names_exists() -> None:
    listed = {node for nodes in rows().values() for node in nodes}
    assert sorted(listed - fault_tests()) == [], "tests/faults/README.md names tests that do not exist"


def test_the_numbered_cases_are_all_there() -> None:
    """The reliability catalogue is numbered 1 to 29 with no gap; a numbered test sits in its own case's row."""
    cases = rows()
    assert [c for c in cases if c.isdigit()] == [str(n) for n in range(1, 30)]
    for case, nodes in cases.items():
        for node in nodes:
            number = re.search(r"::test_case_(\d+)_", node)
            assert number is None or int(number[1]) == int(case), f"{node} is listed under case {case}"
