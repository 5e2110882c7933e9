"""Where the test data lives, and the key a recording uses: shared by the conftest and any test module.

A module of its own (not ``conftest``): with both ``tests/`` and ``tests/faults/`` on ``sys.path``, ``from conftest
import X`` could find the fault suite's conftest instead of this folder's.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CASSETTES", "ROOT", "real_key"]

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"


def real_key(env: str, placeholder: str) -> str:
    """The real key when recording (set in the environment), else a placeholder for replay."""
    return os.environ.get(env) or placeholder
