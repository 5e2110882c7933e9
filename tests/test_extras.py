"""Optional packages: ``import computekit`` loads none of them, the SDK conversions import theirs on first use,
and a missing one is named with the extra that brings it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import computekit as ck
from computekit._extras import require
from computekit.adapters import anthropic, openai, replicate

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
OPTIONAL = ("openai", "anthropic", "cohere", "replicate", "httpx", "matplotlib", "pandas", "psycopg", "tiktoken",
            "botocore", "google.auth")


def body(cassette: str, index: int = 0) -> Any:
    """The JSON response body of one interaction of an (authored) cassette."""
    data = yaml.safe_load((CASSETTES / cassette).read_text("utf-8"))
    return json.loads(data["interactions"][index]["response"]["body"]["string"])


def test_import_computekit_loads_no_optional_package() -> None:
    code = (
        "import sys, computekit, computekit.adapters.openai, computekit.adapters.anthropic, "
        "computekit.adapters.cohere, computekit.adapters.replicate, computekit.cli\n"
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_a_missing_package_names_its_extra() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'computekit\[nothere\]'") as info:
        require("computekit_no_such_package", "nothere", "the test")
    assert info.value.name == "computekit_no_such_package"


def test_openai_to_sdk() -> None:
    raw = body("test_openai/chat.yaml")
    sdk = openai.to_sdk(ck.Completion(provider="openai", model=raw["model"], raw=raw))
    assert type(sdk).__module__.startswith("openai.")
    assert sdk.id == raw["id"]
    assert sdk.usage.prompt_tokens == raw["usage"]["prompt_tokens"]
    assert sdk.choices[0].message.content == raw["choices"][0]["message"]["content"]
    emb = body("test_openai/embeddings.yaml")
    vectors = openai.to_sdk(ck.Embeddings(provider="openai", model=emb["model"], raw=emb))
    assert [d.embedding for d in vectors.data] == [d["embedding"] for d in emb["data"]]


def test_anthropic_to_sdk() -> None:
    raw = body("test_anthropic/caching.yaml")
    sdk = anthropic.to_sdk(ck.Completion(provider="anthropic", model=raw["model"], raw=raw))
    assert type(sdk).__module__.startswith("anthropic.")
    assert (sdk.id, sdk.stop_reason) == (raw["id"], raw["stop_reason"])
    assert sdk.usage.cache_read_input_tokens == raw["usage"].get("cache_read_input_tokens")


def test_replicate_to_sdk() -> None:
    raw = body("test_replicate/deployment_hardware.yaml", 2)
    p = ck.Prediction(provider="replicate", model=raw["model"], id=raw["id"], status="queued", raw=raw)
    sdk = replicate.to_sdk(p)
    assert type(sdk).__module__.startswith("replicate.")
    assert (sdk.id, sdk.status, sdk.input) == (raw["id"], raw["status"], raw["input"])


def test_a_streamed_completion_has_nothing_to_convert() -> None:
    with pytest.raises(ValueError, match="no single response body"):
        openai.to_sdk(ck.Completion(provider="openai", model="gpt-4o-mini"))


def test_import_computekit_loads_the_client_on_first_use() -> None:
    code = (
        "import sys, computekit as ck\n"
        "before = sorted(m for m in ('pydantic', 'computekit._client', 'computekit._types') if m in sys.modules)\n"
        "client = ck.Client\n"
        "print(before, client.__module__, 'computekit._client' in sys.modules, sorted(ck.__all__) == "
        "sorted(n for n in dir(ck) if n in ck.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[] computekit True True"


def test_every_public_name_resolves() -> None:
    for name in ck.__all__:
        assert getattr(ck, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        ck.Clinet  # noqa: B018
