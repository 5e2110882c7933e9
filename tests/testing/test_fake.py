"""FakeProvider: scripted replies, usage, errors, latency and streams, through the real client path (retries,
fallbacks, pricing, ledger), sync and async alike."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path

import pytest
from _fakes import both, call, client, stream
from _support import Waits

import computekit as ck
from computekit.testing import Fail, FakeProvider, Reply, Run, ScriptExhaustedError, Spend

# Unpriced fakes warn as any unpriced model does; tests that care assert the warning themselves.
pytestmark = pytest.mark.filterwarnings("ignore::computekit.UnknownPriceWarning")

MTOK = Decimal(1_000_000)
PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.60")  # the prices the test names for its fake


def priced(usage: ck.Usage) -> Decimal:
    return usage.input_tokens * PRICE_IN / MTOK + usage.output_tokens * PRICE_OUT / MTOK


@pytest.fixture
def fake() -> FakeProvider:
    with FakeProvider(price_in=PRICE_IN, price_out=PRICE_OUT) as f:
        yield f


# --------------------------------------------------------------------------------------------- replies


@both
def test_replies_in_order_with_scripted_usage_and_named_price(fake: FakeProvider, mode: str) -> None:
    fake.script("first", Reply("second", usage=(120, 30)))
    c = client(fake, mode)
    r1 = call(c, "complete", "fake:small", "hello there")
    r2 = call(c, "complete", "fake:small", "again")
    assert (r1.text, r2.text) == ("first", "second")
    assert (r2.usage.input_tokens, r2.usage.output_tokens) == (120, 30)
    assert r2.cost.total == priced(r2.usage) == Decimal("0.0000360")
    assert r1.cost.total == priced(r1.usage)
    assert r1.usage.input_tokens > 0
    assert r1.usage.output_tokens > 0
    assert r1.provider == "fake"
    assert r1.model == "small"
    assert [call_.prompt for call_ in fake.calls] == ["hello there", "again"]


@both
def test_unpriced_fake_costs_none_never_zero(mode: str) -> None:
    with FakeProvider(["x"]) as f, pytest.warns(ck.UnknownPriceWarning, match="fake:m"):
        r = call(client(f, mode), "complete", "fake:m", "hi")
    assert r.cost.total is None


@both
def test_config_prices_win_over_the_stated_price(fake: FakeProvider, mode: str) -> None:
    fake.script(Reply("x", usage=(1000, 1000)))
    r = call(client(fake, mode, prices={"fake:m": {"input_mtok": "1", "output_mtok": "2"}}), "complete", "fake:m",
             "hi")
    assert r.cost.total == Decimal(1000) * 1 / MTOK + Decimal(1000) * 2 / MTOK
    assert r.cost.price_source is not None
    assert r.cost.price_source.table == "config"


@both
def test_tool_calls(fake: FakeProvider, mode: str) -> None:
    fake.script(Reply(tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}}]))
    tools = [{"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    r = call(client(fake, mode), "complete", "fake:m", "weather?", tools=tools)
    assert r.finish_reason == "tool_calls"
    assert [(t.name, t.parsed_arguments()) for t in r.tool_calls] == [("weather", {"city": "Paris"})]
    assert fake.calls[0].body["tools"][0]["function"]["name"] == "weather"


def test_echo_without_a_script_and_callable_and_per_model_scripts() -> None:
    with FakeProvider() as f:
        assert f.client().complete("fake:m", "say this back").text == "say this back"
    with FakeProvider({"a": ["from a"], "*": [lambda c: f"you said {c.prompt}"]}) as f:
        c = f.client()
        assert c.complete("fake:b", "hi").text == "you said hi"
        assert c.complete("fake:a", "hi").text == "from a"


def test_exhausted_script_fails_the_test_without_retrying() -> None:
    with FakeProvider(["only one"]) as f:
        c = client(f, "sync")
        c.complete("fake:m", "1")
        with pytest.raises(ScriptExhaustedError, match="no scripted reply left for call 2"):
            c.complete("fake:m", "2")
    assert len(f.calls) == 2  # not retried: it is not a provider error


# --------------------------------------------------------------------------------------------- errors


@both
def test_rate_limit_is_retried_after_its_retry_after(fake: FakeProvider, mode: str) -> None:
    fake.script(Fail(ck.RateLimitError, retry_after=7), "ok")
    sleeps = Waits()
    r = call(client(fake, mode, sleeps), "complete", "fake:m", "hi")
    assert r.text == "ok"
    assert sleeps.waits == [7.0]
    assert [(a.outcome, a.error_type, a.status) for a in r.attempts] == [
        ("error", "RateLimitError", 429), ("success", None, None)]
    assert r.attempts[0].cost is not None
    assert r.attempts[0].cost.total == 0


@both
def test_failing_target_falls_back_after_its_retries(mode: str) -> None:
    with FakeProvider({"a": [Fail(ck.ServerError)] * 3, "b": ["from b"]}, price_in=1, price_out=1) as f:
        r = call(client(f, mode, max_retries=2), "complete", ["fake:a", "fake:b"], "hi")
    assert (r.text, r.model) == ("from b", "b")
    assert [(a.model, a.error_type) for a in r.attempts] == [("a", "ServerError")] * 3 + [("b", None)]


@both
def test_typed_errors_keep_their_kind_and_are_not_retried(fake: FakeProvider, mode: str) -> None:
    fake.script(Fail(ck.ContextWindowExceededError, "too long"), Fail(ck.AuthenticationError))
    c = client(fake, mode)
    with pytest.raises(ck.ContextWindowExceededError, match="too long") as e:
        call(c, "complete", "fake:m", "hi")
    assert (e.value.status, e.value.provider, e.value.request_id is not None) == (400, "fake", True)
    with pytest.raises(ck.AuthenticationError):
        call(c, "complete", "fake:m", "hi")
    assert len(fake.calls) == 2


@both
def test_all_targets_failing_is_one_error_with_every_attempt(mode: str) -> None:
    script = {"a": [Fail(ck.RateLimitError)], "b": [ck.OverloadedError]}
    with FakeProvider(script) as f, pytest.raises(ck.AllTargetsFailedError) as e:
        call(client(f, mode, max_retries=0), "complete", ["fake:a", "fake:b"], "hi")
    assert [type(x) for x in e.value.exceptions] == [ck.RateLimitError, ck.OverloadedError]
    assert e.value.exceptions[1].status == 529
    assert len(e.value.attempts) == 2


@both
@pytest.mark.parametrize("kind", [ck.APITimeoutError, ck.APIConnectionError, ck.MalformedResponseError])
def test_transport_failures(fake: FakeProvider, mode: str, kind: type[ck.ProviderError]) -> None:
    fake.script(Fail(kind))
    with pytest.raises(kind):
        call(client(fake, mode, max_retries=0), "complete", "fake:m", "hi")


# --------------------------------------------------------------------------------------------- latency


@both
def test_latency_waits_on_the_injected_sleep_and_beyond_the_timeout_times_out(mode: str) -> None:
    sleeps = Waits()
    with FakeProvider(["fast", Reply("slow", latency=30)], latency=0.25, sleep=sleeps, asleep=sleeps.asleep) as f:
        c = client(f, mode, max_retries=0, timeout=10)
        assert call(c, "complete", "fake:m", "hi").text == "fast"
        with pytest.raises(ck.APITimeoutError, match="took 30"):
            call(c, "complete", "fake:m", "hi")
    assert sleeps.waits == [0.25, 10.0]  # the slow answer is given up on at the 10 s timeout


# --------------------------------------------------------------------------------------------- streams


@both
def test_stream_chunks_and_result_cost(fake: FakeProvider, mode: str) -> None:
    fake.script(Reply("never used"), Reply("ignored", chunks=["Hel", "lo", "!"], usage=(10, 3)))
    c = client(fake, mode)
    call(c, "complete", "fake:m", "warm up")
    chunks, result = stream(c, "fake:m", "hi")
    assert [x.text for x in chunks if x.text] == ["Hel", "lo", "!"]
    assert result.text == "Hello!"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (10, 3)
    assert result.cost.total == priced(result.usage)
    assert fake.calls[-1].verb == "stream"


@both
def test_stream_cut_short_is_an_error_and_does_not_fall_back(mode: str) -> None:
    with FakeProvider({"a": [Reply("one two three", cut_after=2)], "b": ["unused"]}) as f:
        c = client(f, mode)
        with pytest.raises(ck.APIConnectionError, match="ended before its last event"):
            stream(c, ["fake:a", "fake:b"], "hi")
    assert [x.model for x in f.calls] == ["a"]


@both
def test_stream_tool_calls(fake: FakeProvider, mode: str) -> None:
    fake.script(Reply(tool_calls=[ck.ToolCall(id="c1", name="f", arguments='{"x": 1}')]))
    _, result = stream(client(fake, mode), "fake:m", "hi", tools=[{"name": "f", "parameters": {}}])
    assert [(t.id, t.name, t.arguments) for t in result.tool_calls] == [("c1", "f", '{"x": 1}')]


# --------------------------------------------------------------------------------------------- embed, predict


@both
def test_embeddings_are_deterministic_and_priced(fake: FakeProvider, mode: str) -> None:
    fake.script("not consumed by embed")
    c = client(fake, mode)
    e1 = call(c, "embed", "fake:emb", ["alpha", "beta"])
    e2 = call(c, "embed", "fake:emb", "alpha", dimensions=4)
    assert len(e1.vectors) == 2
    assert len(e1.vectors[0]) == 8
    assert e2.vectors[0] == e1.vectors[0][:4]
    assert e1.cost.total == e1.usage.input_tokens * PRICE_IN / MTOK
    assert call(c, "complete", "fake:m", "hi").text == "not consumed by embed"


@both
def test_predict_polls_until_done_and_is_priced_per_second(mode: str) -> None:
    sleeps = Waits()
    with FakeProvider([Run(output=["out.png"], polls=2, gpu_seconds=3.5)]) as f:
        c = client(f, mode, sleeps, prices={"fake:gpu-t4": {"per_second": "0.0002"}})
        p = call(c, "predict", "fake:owner/model", {"prompt": "x"}, hardware="gpu-t4")
    assert (p.status, p.output, p.usage.gpu_seconds) == ("succeeded", ["out.png"], Decimal("3.5"))
    assert p.cost.total == Decimal("3.5") * Decimal("0.0002")
    assert [x.verb for x in f.calls] == ["predict", "predict.get", "predict.get"]
    assert len(sleeps.waits) == 2  # two polls, no real sleeping


@both
def test_failed_prediction_is_typed_and_billed(mode: str) -> None:
    with FakeProvider([Run(status="failed", error="CUDA out of memory", units={"images": 1})],
                      price={"images": "0.003"}) as f, pytest.raises(ck.PredictionFailedError, match="CUDA") as e:
        call(client(f, mode), "predict", "fake:owner/model", {"prompt": "x"})
    # The failed run still reported its billed units: they are priced (no hardware price is needed for them).
    assert e.value.prediction.cost.total == Decimal("0.003")
    with FakeProvider([Run(status="failed", error="CUDA out of memory")], price={"images": "0.003"}) as f, \
            pytest.raises(ck.PredictionFailedError) as e:
        call(client(f, mode), "predict", "fake:owner/model", {"prompt": "x"})
    assert e.value.prediction.cost.total is None  # GPU time reported but no hardware price named
    with FakeProvider([Run(output="img", gpu_seconds=None, units={"images": 2})], price={"images": "0.003"}) as f:
        p = call(client(f, mode), "predict", "fake:owner/model", {"prompt": "x"})
    assert p.cost.total == 2 * Decimal("0.003")


@both
def test_runs_of_two_fakes_sharing_one_ledger_are_both_recorded(mode: str, tmp_path: Path) -> None:
    # Each FakeProvider numbers its runs from 1 (fake-run-1): its ids are not unique, so they are not once-only keys.
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    for _ in range(2):
        with FakeProvider([Run(output="img", gpu_seconds=1.0)]) as f:
            c = client(f, mode, ledger=ledger)
            call(c, "predict", "fake:owner/model", {"prompt": "x"}, hardware="gpu-t4")
            c.ledger.flush()
    rows = ck.Client(config=None, ledger=ledger).ledger.rows()
    assert [(r.request_id, r.once_key) for r in rows] == [("fake-run-1", None)] * 2


# --------------------------------------------------------------------------------------------- wiring


def test_unmounted_fake_fails_to_connect_and_names_the_fix() -> None:
    f = FakeProvider(["x"], name="gone")
    f.close()
    with pytest.raises(ck.APIConnectionError, match=r"FakeProvider\(name='gone'\)"):
        client(f, "sync", max_retries=0).complete("gone:m", "hi")


def test_a_second_fake_by_name_for_fallback_across_providers() -> None:
    with FakeProvider([Fail(ck.RateLimitError)], name="primary") as p, FakeProvider(["backup"], name="backup") as b:
        c = p.client(providers=b.provider_config(), retry={"max_retries": 0})
        r = c.complete(["primary:m", "backup:m"], "hi")
    assert (r.provider, r.text) == ("backup", "backup")


def test_module_level_calls_reach_the_fixture_fake(computekit_fake: FakeProvider,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from computekit import _defaults

    monkeypatch.setattr(_defaults, "_sync", None)  # a default client made for this test only
    computekit_fake.script("from the fixture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ck.UnknownPriceWarning)
        assert ck.complete("fake:any", "hi").text == "from the fixture"
    assert json.loads(json.dumps(computekit_fake.calls[0].body))["model"] == "any"


def test_every_attempt_reaches_the_ledger_and_the_spend(fake: FakeProvider) -> None:
    fake.script(Fail(ck.RateLimitError), "ok")
    with Spend() as spend:
        r = client(fake, "sync", ledger="sqlite:///ledger.db").complete("fake:m", "hi")
    assert [c.outcome for c in spend.calls] == ["error", "success"]
    assert spend.total == r.cost.total


def test_the_docs_example_runs() -> None:
    """docs/testing-your-app.md's FakeProvider example, run as written."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "testing-your-app.md").read_text("utf-8")
    code = page.split("## FakeProvider: fully offline unit tests")[1].split("```python")[1].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "testing-your-app.md", "exec"), namespace)  # noqa: S102 - our own docs
    namespace["test_falls_back_on_rate_limit"]()  # type: ignore[operator]
