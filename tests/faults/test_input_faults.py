"""Fault catalogue: bad configuration files and arguments. Each is a ConfigError or an InvalidRequestError that
names what to fix, raised before anything is sent (the fault server must see no request) — never a raw
UnicodeDecodeError, RecursionError, TypeError, AttributeError or a hang on ``inf``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_server import Waits, chat, close, make_client, run

import computekit as ck

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
CHAT = "openai:gpt-4o-mini"


# ============================================================================================= config files


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "computekit.toml"
    path.write_bytes(b'timeout = 30\n# caf\xe9 in Latin-1\n[retry]\nmax_retries = 1\n')
    with pytest.raises(ck.ConfigError, match=r"not UTF-8 text \(byte 19, line 2\): save it as UTF-8") as info:
        ck.Client(config=path, ledger="none")
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)  # the cause is kept


@pytest.mark.parametrize("value", ["[" * 3000 + "]" * 3000, "{a=" * 3000 + "1" + "}" * 3000],
                         ids=["arrays", "inline-tables"])
def test_config_file_nested_too_deeply(tmp_path: Path, value: str) -> None:
    path = tmp_path / "computekit.toml"
    path.write_text(f"x = {value}\n")
    with pytest.raises(ck.ConfigError, match="nested too deeply"):
        ck.Client(config=path, ledger="none")


def test_settings_mapping_nested_too_deeply() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ck.ConfigError, match=r"(?m)^  x: unknown key"):  # named at its top: no recursion
        ck.Client(config=deep, ledger="none")
    with pytest.raises(ck.ConfigError, match="nested too deeply"):  # merging arguments over a file recurses
        ck.Client(config=deep, ledger="none", x=deep["x"])


@pytest.mark.parametrize(("settings", "key"), [
    ({"timeout": float("inf")}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"timeout": 1e300}, "timeout"),
    ({"retry": {"backoff_initial": float("inf")}}, "retry.backoff_initial"),
    ({"retry": {"backoff_max": float("inf")}}, "retry.backoff_max"),
    ({"retry": {"retry_after_cap": float("nan")}}, "retry.retry_after_cap"),
    ({"routing": {"deadline_s": float("inf")}}, "routing.deadline_s"),
    ({"routing": {"cooldown_s": float("inf")}}, "routing.cooldown_s"),
    ({"providers": {"openai": {"timeout": float("inf")}}}, "providers.openai.timeout"),
    ({"routes": {"r": {"targets": ["openai:a", "openai:b"], "strategy": "weighted",
                       "weights": [float("nan"), 1.0]}}}, "routes.r.weights.0"),
    ({"routes": {"r": {"targets": ["openai:a", "openai:b"], "strategy": "weighted",
                       "weights": [1.0, float("inf")]}}}, "routes.r.weights.1"),
], ids=["timeout-inf", "timeout-nan", "timeout-1e300", "backoff-initial-inf", "backoff-max-inf",
        "retry-after-cap-nan", "deadline-inf", "cooldown-inf", "provider-timeout-inf", "weight-nan", "weight-inf"])
def test_durations_and_weights_must_be_finite(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ck.ConfigError, match=rf"(?m)^  {key}: Input should be (a finite number|less than)"):
        ck.Client(config=None, ledger="none", **settings)


def test_infinite_values_in_a_toml_file_name_their_key(tmp_path: Path) -> None:
    path = tmp_path / "computekit.toml"
    path.write_text("[retry]\nbackoff_max = inf\n[routes.r]\ntargets = ['openai:a', 'openai:b']\n"
                    "strategy = 'weighted'\nweights = [nan, 1.0]\n")
    with pytest.raises(ck.ConfigError) as info:
        ck.Client(config=path, ledger="none")
    assert "retry.backoff_max: Input should be a finite number" in str(info.value)
    assert "routes.r.weights.0: Input should be a finite number" in str(info.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v1", "https://api.example.com:-1/v1",
                                 "http://127.0.0.1:http/v1"])
def test_base_url_port_out_of_range(url: str) -> None:
    with pytest.raises(ck.ConfigError, match=r"providers\.openai\.base_url: .*is not a port: use a number from 1 "
                                              r"to 65535"):
        ck.Client(config=None, ledger="none", providers={"openai": {"base_url": url}})


def test_ledger_url_port_out_of_range() -> None:
    with pytest.raises(ck.ConfigError, match=r"ledger\.url: .*'70000' .*is not a port"):
        ck.Client(config=None, ledger="postgresql://app@db:70000/spend")


# ============================================================================================= arguments


@both
@pytest.mark.parametrize("model", [None, 42, ["openai:gpt-4o-mini", None], "openai:gpt-4o\x00mini",
                                   "openai:gpt-4o\ud800", "openai:gpt-4o-mini\n", "openai: gpt-4o-mini",
                                   " openai:gpt-4o-mini", "openai:gpt-4o\tmini"],
                         ids=["None", "int", "list-with-None", "nul", "lone-surrogate", "newline", "space-inside",
                              "space-before", "tab"])
async def test_model_that_is_not_a_model_id(faults: Any, waits: Waits, is_async: bool, model: Any) -> None:
    """Also a model id no ledger can store (a NUL character, which PostgreSQL refuses; a lone surrogate, which
    cannot even be sent): its attempt's row would be lost; and one with spaces or a line break around a name (read
    from a file or a variable), which was sent as written and escaped a budget scoped to the model."""
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits)
    try:
        for call in (lambda: client.complete(model, "hi"), lambda: client.embed(model, ["a"])):
            with pytest.raises(ck.InvalidRequestError, match="'provider:model'"):
                await run(call())
    finally:
        await close(client)
    assert srv.hits == 0


async def _refused_before_sending(faults: Any, waits: Waits, is_async: bool, tmp_path: Path,
                                  calls: list[Callable[[Any], Any]], match: str, cause: type[Exception]) -> None:
    """Each of ``calls`` (given the client) is an ``InvalidRequestError`` matching ``match``, raised from ``cause``:
    nothing sent, no row, and the budget's reservation not left held."""
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'l.db'}",
                         budget={"limit_usd": "5"})
    try:
        for call in calls:
            with pytest.raises(ck.InvalidRequestError, match=match) as caught:
                await run(call(client))
            assert isinstance(caught.value.__cause__, cause)
        (status,) = client.budget_status().values()
        assert (status.reserved, status.spent) == (0, 0)
        assert client.ledger.rows() == []
    finally:
        await close(client)
    assert srv.hits == 0


@both
async def test_text_that_is_not_valid_unicode_is_refused_before_it_is_sent(faults: Any, waits: Waits, is_async: bool,
                                                                          tmp_path: Path) -> None:
    """A lone surrogate in a prompt (text decoded with ``surrogateescape``, or cut in the middle of a pair) cannot
    be encoded: an ``InvalidRequestError`` naming it, nothing sent, and a budget's reservation not left held."""
    await _refused_before_sending(faults, waits, is_async, tmp_path, [
        lambda client: client.complete("openai:gpt-4o-mini", "caf\udce9"),
        lambda client: client.embed("openai:text-embedding-3-small", ["ok", "caf\udce9"]),
    ], "not valid Unicode", UnicodeEncodeError)


@both
@pytest.mark.parametrize(("kwargs", "where"), [({"temperature": float("nan")}, "nan at temperature"),
                                               ({"top_p": float("inf")}, "inf at top_p"),
                                               ({"extra_body": {"metadata": {"w": [1.0, -float("inf")]}}},
                                                r"-inf at metadata\.w\[1\]")],
                         ids=["temperature-nan", "top-p-inf", "extra-body-minus-inf"])
async def test_numbers_json_cannot_carry_are_refused_before_they_are_sent(faults: Any, waits: Waits, is_async: bool,
                                                                          tmp_path: Path, kwargs: dict[str, Any],
                                                                          where: str) -> None:
    """``json.dumps`` writes NaN and Infinity as bare words, which are not JSON: sent, the provider answers 400.
    An ``InvalidRequestError`` naming where the number is, nothing sent, and a budget's reservation not left held."""
    await _refused_before_sending(faults, waits, is_async, tmp_path, [
        lambda client: client.complete("openai:gpt-4o-mini", "hi", **kwargs),
    ], f"number JSON cannot carry \\({where}\\)", ValueError)


@both
@pytest.mark.parametrize("schema", [{"type": "object", "default": {1, 2}}, {"type": "object", "x": object()},
                                    {"type": "number", "maximum": float("nan")}],
                         ids=["set", "object", "nan"])
async def test_tool_schema_that_is_not_json(faults: Any, waits: Waits, is_async: bool, schema: Any) -> None:
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits)
    tools = [{"type": "function", "function": {"name": "ok_tool", "parameters": {"type": "object"}}},
             {"type": "function", "function": {"name": "get_weather", "parameters": schema}}]
    try:
        with pytest.raises(ck.InvalidRequestError, match=r"tools\[1\] \('get_weather'\) cannot be sent as JSON"):
            await run(client.complete(CHAT, "hi", tools=tools))
        with pytest.raises(ck.InvalidRequestError, match="tools must be a list"):
            await run(client.complete(CHAT, "hi", tools="get_weather"))
    finally:
        await close(client)
    assert srv.hits == 0


@both
@pytest.mark.parametrize(("kwargs", "name"), [({"timeout": float("inf")}, "timeout"),
                                              ({"timeout": float("nan")}, "timeout"),
                                              ({"timeout": -1}, "timeout"),
                                              ({"poll_interval": float("inf")}, "poll_interval")],
                         ids=["timeout-inf", "timeout-nan", "timeout-negative", "poll-interval-inf"])
async def test_predict_durations_must_be_finite(faults: Any, waits: Waits, is_async: bool, kwargs: dict[str, Any],
                                                name: str) -> None:
    srv = faults(chat("unused"))
    client = make_client(is_async, srv.url, waits)
    try:
        with pytest.raises(ck.InvalidRequestError, match=f"{name} must be a number of seconds"):
            await run(client.predict("fake:echo", {"prompt": "x"}, **kwargs))
    finally:
        await close(client)
    assert srv.hits == 0


@both
@pytest.mark.parametrize("since", [dt.date(2026, 1, 1), "2026-01-01"], ids=["date", "str"])
async def test_report_since_that_is_not_a_datetime(faults: Any, waits: Waits, is_async: bool, tmp_path: Path,
                                                   since: Any) -> None:
    srv = faults(chat("Hello"))
    client = make_client(is_async, srv.url, waits, ledger=f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        await run(client.complete(CHAT, "hi"))
        with pytest.raises(ck.InvalidRequestError, match=r"since must be a datetime, e.g. since=datetime\(2026, "):
            client.ledger.report(since=since)
        with pytest.raises(ck.InvalidRequestError, match="until must be a datetime"):
            client.ledger.rows(until=since)
        # What the message suggests works, and a time in another zone compares as the same instant.
        paris = dt.timezone(dt.timedelta(hours=1))
        assert client.ledger.report(since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).rows[0].calls == 1
        future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
        assert client.ledger.rows(since=future.astimezone(paris)) == []
        assert len(client.ledger.rows(until=future.astimezone(paris))) == 1
    finally:
        await close(client)


# ============================================================================================= training files

_EXAMPLE = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'


@both
@pytest.mark.parametrize(("bad", "said"), [
    (b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "yo"}]}',
     r"not UTF-8 \(byte 47 is b'\\xe9'\): save the file as UTF-8"),
    (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "x": NaN}]}, '
     b'{"role": "assistant", "content": "yo"}]}', "NaN is not a JSON value"),
    (b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "yo"}]}',
     "not valid Unicode"),
    (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
], ids=["not-utf8", "nan", "lone-surrogate", "nested"])
async def test_a_training_file_that_cannot_be_sent_names_its_line(faults: Any, waits: Waits, is_async: bool,
                                                                 tmp_path: Path, bad: bytes, said: str) -> None:
    """A training file's line that is not UTF-8 (once sent as U+FFFD), holds NaN (once uploaded as a line that is
    not JSON), a lone surrogate (once a UnicodeEncodeError) or JSON nested 100,000 deep (once a RecursionError):
    a TrainingDataError naming the line, for an estimate and a launch alike, nothing sent."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join([_EXAMPLE] * 10 + [bad]) + b"\n")
    srv = faults([chat("never asked")])
    client = make_client(is_async, srv.url, waits)
    try:
        for dry_run in (True, False):
            with pytest.raises(ck.TrainingDataError, match=said) as info:
                await run(client.finetune("openai:gpt-4o-mini-2024-07-18", training_file=str(path),
                                          dry_run=dry_run))
            assert info.value.line == 11
    finally:
        await close(client)
    assert srv.hits == 0


@both
async def test_a_training_file_is_checked_in_memory_near_its_size(faults: Any, waits: Waits, is_async: bool,
                                                                 tmp_path: Path) -> None:
    """A 1 MiB training file's estimate holds the file to upload, not every example parsed as well: peak memory
    under three times the file's size (it was 7.6 times), nothing sent."""
    import tracemalloc

    path = tmp_path / "train.jsonl"
    example = (b'{"messages": [{"role": "user", "content": "' + b"q " * 50 + b'"}, {"role": "assistant", '
               b'"content": "' + b"a " * 50 + b'"}]}\n')
    path.write_bytes(example * (1024 * 1024 // len(example)))
    size = path.stat().st_size
    srv = faults([chat("never asked")])
    client = make_client(is_async, srv.url, waits)
    try:
        await run(client.finetune("openai:gpt-4o-mini-2024-07-18", training_file=str(path), dry_run=True))
        tracemalloc.start()
        try:
            job = await run(client.finetune("openai:gpt-4o-mini-2024-07-18", training_file=str(path),
                                            dry_run=True))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        await close(client)
    assert job.estimate.total is not None
    assert peak < 3 * size
    assert srv.hits == 0
