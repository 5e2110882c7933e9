"""The pure core: model ids, message normalisation, target resolution, settings per provider, bookkeeping."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from _support import KEY

import computekit as ck
from computekit import _bookkeeping
from computekit._attempt import AttemptFacts
from computekit._constants import NOT_GIVEN
from computekit._core import Core, Target, call_options, flatten_prompt, normalise_messages
from computekit._http import HTTPRequest
from computekit._targets import split_model_id
from computekit.adapters.openai import OpenAIAdapter
from computekit.adapters.openai_compatible import OpenAICompatibleAdapter
from computekit.ledger import NullLedger, SQLiteLedger


def _core(**settings: Any) -> Core:
    settings.setdefault("providers", {"openai": {"api_key": KEY}})
    return Core(None, **settings)


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("replicate:owner/name:version123", ("replicate", "owner/name:version123")),
        ("ollama:llama3.2:1b", ("ollama", "llama3.2:1b")),
        ("together:meta-llama/Llama-3-8b", ("together", "meta-llama/Llama-3-8b")),
    ],
)
def test_split_model_id_at_the_first_colon(model_id: str, expected: tuple[str, str]) -> None:
    assert split_model_id(model_id) == expected


@pytest.mark.parametrize("bad", ["gpt-4o", "openai:", ":gpt-4o", "", ":"])
def test_split_model_id_rejects(bad: str) -> None:
    with pytest.raises(ck.InvalidRequestError, match="provider:model"):
        split_model_id(bad)


def test_normalise_messages_prompt_only() -> None:
    assert normalise_messages("hi", NOT_GIVEN) == [{"role": "user", "content": "hi"}]


def test_normalise_messages_messages_then_prompt() -> None:
    msgs = [ck.Message(role="system", content="sys"), {"role": "assistant", "content": "a"}]
    out = normalise_messages("q", msgs)
    assert out == [{"role": "system", "content": "sys"}, {"role": "assistant", "content": "a"},
                   {"role": "user", "content": "q"}]


def test_normalise_messages_message_objects_drop_nones() -> None:
    out = normalise_messages(NOT_GIVEN, [ck.Message(role="user", content=[ck.TextPart(text="x")])])
    assert out == [{"role": "user", "content": [{"type": "text", "text": "x"}]}]


@pytest.mark.parametrize(
    ("prompt", "messages", "words"),
    [
        (NOT_GIVEN, NOT_GIVEN, "nothing to send"),
        (None, None, "nothing to send"),
        (NOT_GIVEN, [], "nothing to send"),
        (NOT_GIVEN, "hi", "must be a list"),
        (NOT_GIVEN, {"role": "user"}, "must be a list"),
        (NOT_GIVEN, [{"role": "bot", "content": "x"}], "messages[0] has role 'bot'"),
        (NOT_GIVEN, [{"role": "user", "content": "x"}, 3], "messages[1] must be a dict"),
        (b"bytes", NOT_GIVEN, "prompt must be a str"),
    ],
)
def test_normalise_messages_errors(prompt: Any, messages: Any, words: str) -> None:
    with pytest.raises(ck.InvalidRequestError) as info:
        normalise_messages(prompt, messages)
    assert words in str(info.value)


def test_flatten_prompt() -> None:
    msgs = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Part A "}, {"type": "image_url", "url": "x"},
                                     {"type": "text", "text": "part B"}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "Last"},
    ]
    assert flatten_prompt(msgs) == "Be terse.\n\nPart A part B\n\nLast"


def test_call_options_drops_not_given() -> None:
    assert call_options(a=1, b=NOT_GIVEN, c=None) == {"a": 1, "c": None}


def test_targets_single_list_and_route() -> None:
    core = _core(routes={"chat": {"targets": ["openai:gpt-4o-mini", "ollama:llama3.2"]}})
    [t] = core.targets("openai:gpt-4o")
    assert (t.provider, t.model) == ("openai", "gpt-4o")
    assert isinstance(t.adapter, OpenAIAdapter)
    ts = core.targets("chat")
    assert [(t.provider, t.model) for t in ts] == [("openai", "gpt-4o-mini"), ("ollama", "llama3.2")]
    assert isinstance(ts[1].adapter, OpenAICompatibleAdapter)
    ts = core.targets(["ollama:a", "openai:b"])
    assert [t.model for t in ts] == ["a", "b"]
    with pytest.raises(ck.InvalidRequestError, match="empty"):
        core.targets([])


def test_adapters_are_cached_unless_overridden() -> None:
    core = _core()
    a = core.adapter("openai")
    assert core.adapter("openai") is a
    b = core.adapter("openai", api_key="sk-other-123456789")
    assert b is not a
    assert core.adapter("openai") is a  # the override did not replace the cached one


def test_provider_settings_defaults() -> None:
    core = _core(timeout=42)
    cls, ps = core.provider_settings("openai")
    assert cls is OpenAIAdapter
    assert ps.base_url == "https://api.openai.com/v1"
    assert ps.api_key is not None
    assert ps.api_key.get_secret_value() == KEY
    assert ps.timeout == 42
    assert ps.key_env_vars == ("OPENAI_API_KEY",)
    assert KEY not in repr(ps)


def test_provider_settings_provider_timeout_wins() -> None:
    core = _core(timeout=42, providers={"openai": {"api_key": KEY, "timeout": 7}})
    assert core.provider_settings("openai")[1].timeout == 7


def test_provider_settings_profile() -> None:
    core = _core()
    cls, ps = core.provider_settings("ollama")
    assert cls is OpenAICompatibleAdapter
    assert ps.base_url == "http://localhost:11434/v1"
    assert ps.api_key is None


@pytest.mark.parametrize(
    ("base_url", "keeps_key"),
    [
        ("https://api.openai.com/v2", True),
        ("https://API.OPENAI.COM/v1", True),
        ("https://api.openai.com.evil.net/v1", False),
        ("https://evil.net/api.openai.com/v1", False),
        ("http://localhost:8000/v1", False),
    ],
)
def test_per_call_base_url_host_rule(base_url: str, keeps_key: bool) -> None:
    core = _core()
    _, ps = core.provider_settings("openai", base_url=base_url)
    assert ps.base_url == base_url
    assert (ps.api_key is not None) is keeps_key
    _, ps2 = core.provider_settings("openai", base_url=base_url, api_key="sk-given-123456")
    assert ps2.api_key is not None
    assert ps2.api_key.get_secret_value() == "sk-given-123456"


def test_what_each_error_means_for_the_plan() -> None:
    from computekit.routing import Action

    router = _core().router
    assert router.action(ck.ServerError("x", provider="p", status=500)) is Action.FALLBACK
    assert router.action(ck.RateLimitError("x", provider="p", status=429)) is Action.FALLBACK
    assert router.action(ck.AuthenticationError("x", provider="p", status=401)) is Action.FALLBACK
    assert router.action(ck.APIConnectionError("x", provider="p")) is Action.FALLBACK
    assert router.action(ck.BadRequestError("x", provider="p", status=400)) is Action.RAISE
    assert router.action(ck.ContextWindowExceededError("x", provider="p", status=400)) is Action.LARGER_CONTEXT
    assert router.action(ck.ContentFilteredError("x", provider="p", status=400)) is Action.RAISE


def test_complete_request_for_text_models() -> None:
    core = _core()
    [t] = core.targets("openai:gpt-3.5-turbo-instruct")
    req = core.complete_request(t, [{"role": "user", "content": "hi"}], {"max_tokens": 3}, stream=False)
    assert req.prompt == "hi"
    assert req.messages == []
    assert req.max_tokens == 3
    [t2] = core.targets("openai:gpt-4o-mini")
    req2 = core.complete_request(t2, [{"role": "user", "content": "hi"}], {}, stream=True)
    assert req2.prompt is None
    assert req2.stream is True


def test_ledger_setting_forms(tmp_path: Any) -> None:
    assert isinstance(Core(None, ledger="none").ledger, NullLedger)
    c = Core(None, ledger=f"sqlite:///{tmp_path / 'a' / 'l.db'}")
    assert isinstance(c.ledger, SQLiteLedger)
    assert (tmp_path / "a" / "l.db").exists()
    c2 = Core(None, ledger={"url": "sqlite://:memory:"})
    assert isinstance(c2.ledger, SQLiteLedger)
    assert c2.ledger.path == ":memory:"


def test_default_ledger_from_env(tmp_path: Any) -> None:
    core = Core(None)  # conftest points $COMPUTEKIT_LEDGER into tmp_path
    core.ledger.rows()
    assert (tmp_path / "ledger.db").exists()


def test_failed_and_succeeded_bookkeeping() -> None:
    core = _core(ledger="sqlite://:memory:")
    [t] = core.targets("openai:gpt-4o-mini")
    attempts: list[ck.Attempt] = []
    started = dt.datetime.now(dt.UTC)
    err = ck.RateLimitError("slow", provider="openai", model="gpt-4o-mini", status=429, request_id="r1")
    http = HTTPRequest(method="POST", url="https://api.openai.com/v1/chat/completions", headers={})
    facts = AttemptFacts("complete", t, None, http, attempts, {"a": "b"}, started=started, t0=time.perf_counter())
    _bookkeeping.failed(core, facts, err)
    result = ck.Completion(provider="openai", model="gpt-4o-mini", usage=ck.Usage(input_tokens=10, output_tokens=2),
                           request_id="r2")
    facts = AttemptFacts("complete", t, None, http, attempts, None, started=started, t0=time.perf_counter())
    _bookkeeping.succeeded(core, facts, result, _bookkeeping.price_success(core, facts, result))
    assert result.attempts is attempts
    assert [a.outcome for a in attempts] == ["error", "success"]
    assert attempts[0].error == str(err)
    assert attempts[0].error_type == "RateLimitError"
    assert attempts[0].cost is not None
    assert attempts[0].cost.total == 0  # an error response is not billed
    assert result.cost.total is not None
    assert result.cost.total > 0
    rows = core.ledger.rows()
    assert [(r.outcome, r.status, r.request_id, r.tags) for r in rows] == [
        ("error", 429, "r1", {"a": "b"}), ("success", None, "r2", {})]
    assert rows[1].cost == result.cost.total


def test_target_provider() -> None:
    core = _core()
    t = Target(core.adapter("openai"), "m")
    assert t.provider == "openai"
