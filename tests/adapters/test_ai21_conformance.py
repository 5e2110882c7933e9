"""Conformance: every real AI21 recording in ``shared/conformance/ai21/`` is exercised or listed with its reason.

There is no public recording of AI21's own API (``api.ai21.com``; see SOURCES.md, "Coverage gaps"). The one file
is a J2 completion through AWS Bedrock: a different transport (Bedrock's ``/model/{id}/invoke``, SigV4 auth, token
counts in ``X-Amzn-Bedrock-*`` headers) and a retired model family (J2), neither of which computekit serves. It is
listed here with the reason; a new file in the folder fails :func:`test_every_file_is_exercised_or_listed` until
it is exercised or listed.
"""

from __future__ import annotations

import pytest
from _conformance import Collection, load, require_conformance_dir

pytestmark = pytest.mark.conformance

FOLDER = "ai21"

UNSUPPORTED: dict[str, str] = {
    "ai21/j2-mid-complete-via-bedrock.yaml": (
        "AI21 J2 (retired model family) through AWS Bedrock's InvokeModel (bedrock-runtime /model/{id}/invoke, "
        "SigV4, usage in X-Amzn-Bedrock-*-Token-Count headers): computekit's ai21 adapter speaks AI21's own "
        "Jamba chat API at api.ai21.com and has no Bedrock transport"
    ),
}
# A listed file may only hold exchanges on these hosts (so an api.ai21.com recording cannot hide in the list).
UNSUPPORTED_HOST_SUFFIXES = (".amazonaws.com",)


ALL_FILES = Collection.of(FOLDER, unsupported=UNSUPPORTED).files


def test_conformance_directory_present() -> None:
    d = require_conformance_dir()
    assert (d / FOLDER).is_dir(), f"{d / FOLDER} is missing"
    assert ALL_FILES, "no ai21 fixture files found"


def test_unsupported_list_names_real_files() -> None:
    require_conformance_dir()
    stale = sorted(set(UNSUPPORTED) - set(ALL_FILES))
    assert not stale, f"UNSUPPORTED lists files that no longer exist: {stale}"


@pytest.mark.parametrize("rel", ALL_FILES or [pytest.param(None, id="conformance-dir-missing")])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    assert rel in UNSUPPORTED, (
        f"{rel} is a new AI21 recording: exercise it through AI21Adapter here, or list it in UNSUPPORTED with why"
    )
    assert UNSUPPORTED[rel].strip()
    exchanges = load(rel)
    assert exchanges, f"{rel} holds no exchanges"
    for ex in exchanges:
        assert ex.host.endswith(UNSUPPORTED_HOST_SUFFIXES), (
            f"{ex.id} is on {ex.host}: a host computekit may support, so it must be exercised, not listed"
        )
        assert "/model/ai21.j2-" in ex.path, f"{ex.id}: not the J2-on-Bedrock exchange the reason describes"


def test_counts() -> None:
    """The tally for the summary: 0 AI21 files exercised, 1 listed with its reason."""
    require_conformance_dir()
    exercised = [f for f in ALL_FILES if f not in UNSUPPORTED]
    assert (len(exercised), len(UNSUPPORTED)) == (0, 1)
    assert len(exercised) + len(UNSUPPORTED) == len(ALL_FILES)
