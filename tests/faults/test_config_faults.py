"""Fault catalogue: configuration a careless or hostile user writes (D19). A key or header no HTTP request can
carry, a name no adapter serves, a budget scope no call can match, a limit that would lower a worst case: each is
a ``ConfigError`` (or, for a call's own arguments, a typed error) that names the key and what to write, raised
before anything is sent, and never showing a secret.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pytest
from fault_server import Waits, chat, close, policy, run

import computekit as ck

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
CHAT = "openai:gpt-4o-mini"
KEY = "sk-fault-0123456789abcdef"


def _client(is_async: bool, url: str, waits: Waits, **settings: Any) -> Any:
    cls = ck.AsyncClient if is_async else ck.Client
    settings.setdefault("ledger", "none")
    settings.setdefault("providers", {"openai": {"base_url": url}})
    return cls(config=None, retry_policy=policy(waits), **settings)


def _shown(error: BaseException) -> str:
    """Everything a traceback or a log of ``error`` shows, its causes included."""
    return "".join(traceback.format_exception(error)) + repr(error)


@both
@pytest.mark.parametrize("around", ["\n", "\r\n", " ", "\t \n"], ids=["lf", "crlf", "space", "mixed"])
async def test_d19_whitespace_around_a_key_in_the_environment_is_not_sent(
    faults: Any, waits: Waits, is_async: bool, monkeypatch: pytest.MonkeyPatch, around: str
) -> None:
    """A secret mounted from a file ends in a newline: the key goes alone (before, a raw ValueError quoting it)."""
    srv = faults(chat("Hello"))
    monkeypatch.setenv("OPENAI_API_KEY", f"{around}{KEY}{around}")
    client = _client(is_async, srv.url, waits)
    try:
        assert (await run(client.complete(CHAT, "hi"))).text == "Hello"
    finally:
        await close(client)
    assert [r.headers["authorization"] for r in srv.requests] == [f"Bearer {KEY}"]


@both
@pytest.mark.parametrize("bad", ["sk-fault-0123\n456789abcdef", "sk-fault-0123 456789abcdef",
                                 "sk-fault\u20130123456789abcdef"], ids=["line-break", "space", "en-dash"])
@pytest.mark.parametrize("where", ["environment", "call"])
async def test_d19_a_key_no_header_can_carry_is_refused_unsent_and_unshown(
    faults: Any, waits: Waits, is_async: bool, monkeypatch: pytest.MonkeyPatch, bad: str, where: str
) -> None:
    srv = faults(chat("Hello"))
    monkeypatch.setenv("OPENAI_API_KEY", bad if where == "environment" else KEY)
    client = _client(is_async, srv.url, waits)
    try:
        with pytest.raises(ck.MissingAPIKeyError) as info:
            await run(client.complete(CHAT, "hi", **({"api_key": bad} if where == "call" else {})))
    finally:
        await close(client)
    message = str(info.value)
    assert ("$OPENAI_API_KEY" if where == "environment" else "api_key=") in message
    assert "which no HTTP header can carry" in message
    assert info.value.provider == "openai"
    assert "0123" not in _shown(info.value)  # no piece of the key
    assert srv.hits == 0


@pytest.mark.parametrize(("provider", "key", "shown"), [
    ({"api_key": "sk-fault-0123\n456789abcdef"}, "providers.openai.api_key",
     "it holds a control character at character 14"),
    ({"headers": {"X-Gateway-Key": "gw-0123\r\nX-Evil: 1"}}, "providers.openai.headers",
     "the value of header 'X-Gateway-Key' holds a control character"),
    ({"headers": {"X Gateway": "gw-0123"}}, "providers.openai.headers", "'X Gateway' is not a header name"),
    ({"idempotency_header": "Idempotency Key"}, "providers.openai.idempotency_header",
     "'Idempotency Key' is not a header name"),
    # The key pasted where its variable's name goes: the MissingAPIKeyError said "set sk-fault-0123...".
    ({"api_key_env": "sk-fault-0123456789abcdef"}, "providers.openai.api_key_env",
     "it is not the name of an environment variable"),
    ({"api_key_env": "${MY_0123_KEY}"}, "providers.openai.api_key_env",
     "write the variable's name without the $: 'MY_0123_KEY'"),
], ids=["key", "header-value", "header-name", "idempotency-header", "key-as-variable", "dollar-variable"])
def test_d19_a_configured_key_or_header_no_request_can_carry_is_a_config_error(
    provider: dict[str, Any], key: str, shown: str
) -> None:
    """Before, accepted, and then a raw ValueError on the first call quoting the whole header (the key)."""
    with pytest.raises(ck.ConfigError) as info:
        ck.Client(config=None, ledger="none", providers={"openai": {"base_url": "https://api.openai.com/v1",
                                                                    **provider}})
    assert f"  {key}: Value error, {shown}" in str(info.value)
    if "$" not in shown:
        assert "0123" not in _shown(info.value)


def test_d19_a_configured_key_is_sent_without_the_whitespace_around_it(faults: Any, waits: Waits) -> None:
    srv = faults(chat("Hello"))
    client = _client(False, srv.url, waits, providers={"openai": {"base_url": srv.url, "api_key": f" {KEY}\n"}})
    try:
        client.complete(CHAT, "hi")
    finally:
        client.close()
    assert srv.requests[0].headers["authorization"] == f"Bearer {KEY}"


URL = "https://llm.example.com/v1"


@pytest.mark.parametrize(("settings", "line"), [
    # A misspelt provider table was silently unused: calls went to the provider's own host, not the proxy.
    ({"providers": {"opnai": {"base_url": URL}}},
     "providers.opnai: unknown provider 'opnai' (did you mean 'openai'?)"),
    ({"providers": {"gw": {"adapter": "openai-compatable", "base_url": URL}}},
     "providers.gw.adapter: unknown provider 'openai-compatable'"),
    # A budget scoped to a provider no call names covered nothing: every call went through, unbudgeted.
    ({"budget": {"limit_usd": "1", "provider": "OpenAI"}},
     "budget.provider: unknown provider 'OpenAI' (did you mean 'openai'"),
    ({"budgets": {"team": {"limit_usd": "1", "model": "opnai:gpt-4o-mini"}}},
     "budgets.team.model: unknown provider 'opnai' (did you mean 'openai'?)"),
    ({"budgets": {"team": {"limit_usd": "1", "model": "openai:"}}},
     "budgets.team.model: Value error, 'openai:' is not a model id"),
    ({"budgets": {"team": {"limit_usd": "1", "model": "gpt-4o-mini "}}},
     "budgets.team.model: Value error, 'gpt-4o-mini ' has spaces around a name"),
    # A route's bad target failed only when the route was called.
    ({"routes": {"chat": {"targets": [CHAT, "opnai:gpt-4o"]}}},
     "routes.chat.targets.1: unknown provider 'opnai' (did you mean 'openai'?)"),
    ({"routes": {"chat": {"targets": [CHAT, ":gpt-4o"]}}},
     "routes.chat.targets: Value error, ':gpt-4o' is not a model id"),
    ({"routes": {"chat": {"targets": ["openai: gpt-4o-mini"]}}},
     "routes.chat.targets: Value error, 'openai: gpt-4o-mini' has spaces around a name"),
    ({"routes": {"chat": {"targets": [CHAT, "groq:llama-3.1-8b-instant", CHAT]}}},
     f"routes.chat.targets: Value error, '{CHAT}' is listed twice"),
    # A budget's worst case reserves this many output tokens: a negative count lowered it below zero.
    ({"providers": {"openai": {"max_output_tokens": {"gpt-4o-mini": -100000}}}},
     "providers.openai.max_output_tokens: Value error, gpt-4o-mini: -100000 tokens cannot bound an answer"),
    # A URL no transport speaks failed each call as a connection error, retried.
    ({"providers": {"openai": {"base_url": "ftp://llm.example.com/v1"}}},
     "providers.openai.base_url: Value error, 'ftp://llm.example.com/v1' is not a URL computekit can call"),
    ({"providers": {"openai": {"base_url": "llm.example.com/v1"}}},
     "providers.openai.base_url: Value error, 'llm.example.com/v1' is not a URL computekit can call"),
    # A price near Decimal's largest exponent: a raw decimal.Overflow when a budget's worst case was multiplied out.
    ({"prices": {CHAT: {"input_mtok": "9e999999", "output_mtok": "1"}}},
     f"prices: Value error, {CHAT}.input_mtok: 9E+999999 USD is not a price"),
], ids=["provider-table", "adapter", "budget-provider", "budget-model-provider", "budget-model-empty",
        "budget-model-spaces", "route-provider", "route-empty-provider", "route-spaces", "route-duplicate",
        "max-output-tokens", "base-url-scheme", "base-url-no-scheme", "price-overflow"])
def test_d19_a_name_or_limit_no_call_can_use_is_a_config_error_when_the_client_is_made(
    settings: dict[str, Any], line: str
) -> None:
    with pytest.raises(ck.ConfigError) as info:
        ck.Client(config=None, ledger="sqlite://:memory:", **settings)
    assert f"\n  {line}" in str(info.value)


def test_d19_names_of_the_users_own_providers_are_known(faults: Any, waits: Waits) -> None:
    """A provider named by its own table serves routes and budget scopes, as before."""
    srv = faults(chat("Hello"))
    client = _client(False, srv.url, waits, ledger="sqlite://:memory:",
                     providers={"myhost": {"adapter": "openai-compatible", "base_url": srv.url, "api_key": KEY}},
                     routes={"chat": {"targets": ["myhost:gpt-4o-mini"]}},
                     budgets={"mine": {"limit_usd": "5", "provider": "myhost", "unknown_price": "allow"},
                              "model": {"limit_usd": "5", "model": "myhost:gpt-4o-mini", "unknown_price": "allow"}})
    try:
        with pytest.warns(ck.UnknownPriceWarning):  # no price for a host of one's own: allowed by the budgets
            assert client.complete("chat", "hi").provider == "myhost"
        assert {s.name for s in client.budget_status().values()} == {"mine", "model"}
    finally:
        client.close()


@pytest.mark.parametrize(("settings", "line"), [
    ({"budget": {"limit": "5"}}, "budget.limit: unknown key (did you mean 'limit_usd'?)"),
    ({"budjet": {"limit_usd": "5"}}, "budjet: unknown key (did you mean 'budget' or 'budgets'?)"),
    ({"routing": {"deadline": 30}}, "routing.deadline: unknown key (did you mean 'deadline_s'?)"),
    ({"retry": {"max_retry": 1}}, "retry.max_retry: unknown key (did you mean 'max_retries'?)"),
    ({"routes": {"chat": {"targets": [CHAT], "stratgy": "cheapest"}}},
     "routes.chat.stratgy: unknown key (did you mean 'strategy'?)"),
    ({"providers": {"azure": {"api_verison": "2024-10-21"}}},
     "providers.azure.api_verison: unknown key (did you mean 'api_version'?)"),
    ({"providers": {"azure": {"api_version": "2024-10-21", "timout": 5}}},
     "providers.azure.timout: unknown key (did you mean 'timeout'?)"),
], ids=["budget", "top-level", "routing", "retry", "route", "adapter-key", "common-key-beside-adapter-key"])
def test_d19_an_unknown_key_names_the_key_it_is_close_to(settings: dict[str, Any], line: str) -> None:
    with pytest.raises(ck.ConfigError) as info:
        ck.Client(config=None, ledger="sqlite://:memory:", **settings)
    assert f"\n  {line}" in str(info.value)


def test_d19_a_ledger_variable_ending_in_a_newline_opens_the_ledger_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, ``ledger.db\\n`` was opened: a file of its own, so two processes counted a budget apart."""
    monkeypatch.setenv("COMPUTEKIT_LEDGER", f"sqlite:///{tmp_path / 'ledger.db'}\n")
    client = ck.Client(config=None, budget={"limit_usd": "1"})
    try:
        assert client.settings.ledger.url == f"sqlite:///{tmp_path / 'ledger.db'}"
        client.budget_status()
    finally:
        client.close()
    names = [p.name for p in tmp_path.iterdir()]
    assert "ledger.db" in names
    assert not any("\n" in name for name in names)
    monkeypatch.setenv("COMPUTEKIT_LEDGER", f"sqlite:///{tmp_path / 'led'}\nger.db")
    with pytest.raises(ck.ConfigError, match=r"keyword arguments \+ \$COMPUTEKIT_LEDGER:\n  ledger\.url: .*holds a "
                                             r"control character"):
        ck.Client(config=None)


def test_d19_a_config_path_that_is_a_folder_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ck.ConfigError, match=r"is a folder: name the computekit\.toml file in it"):
        ck.Client(config=tmp_path, ledger="none")
    monkeypatch.setenv("COMPUTEKIT_CONFIG", str(tmp_path))
    with pytest.raises(ck.ConfigError, match=r"\$COMPUTEKIT_CONFIG points to .*which is a folder"):
        ck.Client(ledger="none")
    with pytest.raises(ck.ConfigError, match="cannot be looked at: File name too long"):
        ck.Client(config=tmp_path / ("x" * 5000), ledger="none")


def test_d19_a_shorthand_argument_keeps_the_files_other_settings(tmp_path: Path) -> None:
    """``Client(ledger="...")`` names the ledger, as ``$COMPUTEKIT_LEDGER`` does; before, it dropped the file's whole
    ``[ledger]`` table, so ``flush_on_sigterm = false`` was silently undone (and ``retry=5`` the file's backoff)."""
    path = tmp_path / "computekit.toml"
    path.write_text("[ledger]\nflush_on_sigterm = false\nflush_interval = 1\n[retry]\nbackoff_max = 2\n")
    settings = ck.Client(config=path, ledger=f"sqlite:///{tmp_path / 'l.db'}", retry=5).settings
    assert (settings.ledger.url, settings.ledger.flush_on_sigterm, settings.ledger.flush_interval) == (
        f"sqlite:///{tmp_path / 'l.db'}", False, 1)
    assert (settings.retry.max_retries, settings.retry.backoff_max) == (5, 2)


def test_d19_an_azure_endpoint_variable_ending_in_a_newline_is_called_as_written(
    faults: Any, waits: Waits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$AZURE_OPENAI_ENDPOINT`` is read like the vendors' other base-URL variables: stripped, without its last
    slash (before, an ``UnsafeURLError`` on every call)."""
    srv = faults(chat("Hello"))
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", srv.url.removesuffix("/v1") + "/\n")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    client = ck.Client(config=None, ledger="none", retry_policy=policy(waits),
                       providers={"azure": {"api_version": "2024-10-21"}})
    try:
        assert client.complete("azure:gpt-4o-mini", "hi").text == "Hello"
    finally:
        client.close()
    assert srv.requests[0].path == "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
