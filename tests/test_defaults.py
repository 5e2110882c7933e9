"""The module-level verbs: the full typed signatures of their Client methods, and clear errors for arguments
they do not take or of the wrong type. (``tests/typing/verbs.py`` is the type checker's half: mypy in CI.)"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest

import computekit as ck
from computekit import _defaults
from computekit.testing import FakeProvider

VERBS = ["complete", "stream", "embed", "rerank", "predict", "finetune"]


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("is_async", [False, True])
def test_each_verb_has_its_client_method_s_signature(verb: str, is_async: bool) -> None:
    fn = getattr(ck, ("a" if is_async else "") + verb)
    method = getattr(ck.AsyncClient if is_async else ck.Client, verb)
    mine = inspect.signature(fn)
    theirs = inspect.signature(method)
    params = list(mine.parameters.values())
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    assert params[-1].annotation == "Never"
    assert params == list(theirs.parameters.values())[1:]  # names, kinds, annotations and defaults
    assert mine.return_annotation == theirs.return_annotation
    assert inspect.iscoroutinefunction(fn) == inspect.iscoroutinefunction(method)
    assert "**kwargs" not in str(mine)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(_defaults, "_sync", None)
    monkeypatch.setattr(_defaults, "_async", None)
    with FakeProvider(["ok"] * 5, price_in="1", price_out="1") as f:
        monkeypatch.setattr(_defaults, "_sync", f.client(ledger="none"))
        monkeypatch.setattr(_defaults, "_async", f.async_client(ledger="none"))
        yield f


def test_the_verbs_call_the_default_client(fake: FakeProvider) -> None:
    assert ck.complete("fake:m", "hi", max_tokens=5).text == "ok"
    assert fake.calls[0].body["max_tokens"] == 5


async def test_the_async_verbs_call_the_default_async_client(fake: FakeProvider) -> None:
    assert (await ck.acomplete("fake:m", prompt="hi", temperature=0.5)).text == "ok"
    assert fake.calls[0].body["temperature"] == 0.5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_tokns": 60}, r"max_tokns= \(did you mean max_tokens=\?\)"),
    ({"n": 2}, r"n= \(computekit returns one choice per call: call it n times"),
    ({"max_completion_tokens": 9}, r"use max_tokens="),
    ({"zzz": 1}, r"zzz= \(it takes model, prompt, messages, max_tokens"),
])
def test_an_argument_the_verb_does_not_take_names_the_fix(fake: FakeProvider, kwargs: dict[str, Any],
                                                          message: str) -> None:
    with pytest.raises(ck.InvalidRequestError, match=message):
        ck.complete("fake:m", "hi", **kwargs)
    assert fake.calls == []


async def test_the_async_twin_refuses_them_alike(fake: FakeProvider) -> None:
    with pytest.raises(ck.InvalidRequestError, match=r"temprature= \(did you mean temperature=\?\)"):
        await ck.acomplete("fake:m", "hi", temprature=0.1)  # type: ignore[arg-type]
    with pytest.raises(ck.InvalidRequestError, match=r"dimension= \(did you mean dimensions=\?\)"):
        await ck.aembed("fake:m", "x", dimension=3)  # type: ignore[arg-type]


CLIENT_CALLS = [
    ("complete", ("fake:m", "hi"), {"n": 2}, r"complete\(\) got an argument it does not take: n= \(computekit returns"),
    ("stream", ("fake:m", "hi"), {"max_tokns": 5}, r"stream\(\) .*max_tokns= \(did you mean max_tokens=\?\)"),
    ("embed", ("fake:m", "x"), {"dimension": 3}, r"embed\(\) .*dimension= \(did you mean dimensions=\?\)"),
    ("rerank", ("fake:m", "q", ["a"]), {"top_k": 1}, r"rerank\(\) .*top_k= \(did you mean top_n=\?\)"),
    ("predict", ("fake:m", {"x": 1}), {"harware": "gpu"}, r"predict\(\) .*harware= \(did you mean hardware=\?\)"),
    ("finetune", ("fake:m",), {"training_file": "t.jsonl", "epoch": 2},
     r"finetune\(\) .*epoch= \(did you mean epochs=\?\)"),
    ("complete", ("fake:m", "hi"), {"zzz": 1}, r"zzz= \(it takes model, prompt, messages, max_tokens"),
]


async def _called(method: Any, *args: Any, **kwargs: Any) -> Any:
    got = method(*args, **kwargs)
    return await got if inspect.isawaitable(got) else got


@pytest.mark.parametrize(("verb", "args", "kwargs", "message"), CLIENT_CALLS)
async def test_client_methods_refuse_an_argument_they_do_not_take_alike(
        fake: FakeProvider, verb: str, args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    """The client methods, sync and async, raise the module-level verbs' InvalidRequestError (not a TypeError),
    before anything is sent."""
    for client in (fake.client(ledger="none"), fake.async_client(ledger="none")):
        with pytest.raises(ck.InvalidRequestError, match=message):
            await _called(getattr(client, verb), *args, **kwargs)
        if isinstance(client, ck.AsyncClient):
            await client.aclose()
        else:
            client.close()
    assert fake.calls == []


def test_the_check_costs_nothing_when_every_argument_is_known() -> None:
    """The refusal runs only when something landed in ``**unknown``: a known call never builds a signature."""
    import computekit._arguments as arguments

    calls: list[str] = []
    real = arguments.refuse
    with FakeProvider(["ok"], price_in="1", price_out="1") as f, pytest.MonkeyPatch.context() as mp:
        mp.setattr("computekit._client.refuse", lambda *a: calls.append("refuse") or real(*a))
        client = f.client(ledger="none")
        assert client.complete("fake:m", "hi", max_tokens=5).text == "ok"
        client.close()
    assert calls == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_tokens": "sixty"}, r"max_tokens must be a whole number, not str 'sixty': e\.g\. max_tokens=60"),
    ({"max_tokens": "60"}, r"max_tokens must be a whole number, not str '60': pass max_tokens=60"),
    ({"max_tokens": True}, r"max_tokens must be a whole number, not bool"),
    ({"max_tokens": 0}, r"max_tokens must be at least 1"),
    ({"temperature": "hot"}, r"temperature must be a number, not str 'hot'"),
    ({"stop": 5}, r"stop must be a string or a list of strings"),
    ({"seed": 1.5}, r"seed must be a whole number, not float"),
])
def test_a_wrong_argument_type_names_the_fix(fake: FakeProvider, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ck.InvalidRequestError, match=message):
        ck.complete("fake:m", "hi", **kwargs)
    with pytest.raises(ck.InvalidRequestError, match=message):
        ck.Client(None, ledger="none").stream("openai:gpt-4o-mini", "hi", **kwargs)
    assert fake.calls == []


def test_a_list_as_prompt_names_messages(fake: FakeProvider) -> None:
    with pytest.raises(ck.InvalidRequestError, match=r"prompt must be a str, not list: for a conversation pass "
                                                     r"messages="):
        ck.complete("fake:m", ["a", "b"])  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ck.complete("fake:m", messages=[{"role": "user", "content": "a"}]).text == "ok"
