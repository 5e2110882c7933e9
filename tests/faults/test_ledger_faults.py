"""Fault catalogue: the ledger's files and durability — who can read the file, and what survives a process that
ends abruptly (SIGTERM, ``os._exit``, a multiprocessing worker's end) or a row that cannot be written.

The process cases run real subprocesses (``sys.executable``) against a real SQLite file.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_server import Waits, chat, close, make_client, run

from computekit.ledger import SQLiteLedger

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: the modes below come from computekit, not from a cautious umask of the machine running tests."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# ============================================================================================= file modes


@posix_only
@both
async def test_default_ledger_is_private_to_its_owner(faults: Any, waits: Waits, is_async: bool, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, open_umask: None) -> None:
    """The per-user default ledger: its folder 0700, the file and its -wal/-shm 0600, even under umask 0."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("COMPUTEKIT_LEDGER", raising=False)
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits, ledger=None)
    try:
        r = await run(client.complete("openai:gpt-4o-mini", "hi", tags={"customer": "acme-42"}))
        assert r.text == "Hello"
        assert [row.tags for row in client.ledger.rows()] == [{"customer": "acme-42"}]
        folder = tmp_path / "xdg" / "computekit"
        files = {p.name: mode(p) for p in folder.iterdir()}  # while open: the WAL files exist
    finally:
        await close(client)
    assert mode(folder) == 0o700
    assert files == {"ledger.db": 0o600, "ledger.db-wal": 0o600, "ledger.db-shm": 0o600}


@posix_only
def test_ledger_in_a_new_folder_of_the_users_choice_is_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "a" / "b" / "spend.db"
    lg = SQLiteLedger(db, buffered=True)
    try:
        lg.rows()
        assert {p.name: mode(p) for p in db.parent.iterdir()} == {
            "spend.db": 0o600, "spend.db-wal": 0o600, "spend.db-shm": 0o600}
        assert mode(db.parent) == 0o700
    finally:
        lg.close()


@posix_only
def test_existing_ledger_file_and_folder_keep_their_modes(tmp_path: Path, open_umask: None) -> None:
    """A file the user made group-readable on purpose (a shared reporting group) stays so, as does its folder."""
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    db = folder / "ledger.db"
    SQLiteLedger(db).close()
    db.chmod(0o640)
    lg = SQLiteLedger(db)
    try:
        lg.rows()
        assert mode(db) == 0o640
        assert mode(Path(f"{db}-wal")) == 0o640  # SQLite follows the database file
        assert mode(folder) == 0o750
    finally:
        lg.close()
