"""Configuration: file discovery, keyword arguments over the file, validation errors that name the key, keys."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from _support import KEY, Server, chat_json, make_client, ok
from pydantic import ValidationError

import computekit as ck
from computekit import _config
from computekit._config import Settings, load_settings
from computekit._constants import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S
from computekit.adapters._registry import BUILTIN

FILE = """
timeout = 30

[providers.openai]
base_url = "https://proxy.example.com/v1"
timeout = 10
organization = "org-file"

[providers.together]
adapter = "openai-compatible"
base_url = "https://api.together.xyz/v1"
api_key_env = "TOGETHER_API_KEY"

[routes.chat]
targets = ["openai:gpt-4o-mini", "together:meta-llama/Llama-3-8b"]
strategy = "ordered"

[retry]
max_retries = 4

[budget]
period = "week"

[prices]
"openai:gpt-4o-mini" = { input_mtok = "0.15", output_mtok = "0.60" }
"""


def _check_file_settings(s: Settings) -> None:
    assert s.timeout == 30
    assert s.providers["openai"].base_url == "https://proxy.example.com/v1"
    assert s.providers["openai"].timeout == 10
    assert s.providers["together"].adapter == "openai-compatible"
    assert s.routes["chat"].targets == ["openai:gpt-4o-mini", "together:meta-llama/Llama-3-8b"]
    assert s.retry.max_retries == 4
    assert s.budget.limit_usd is None
    assert s.budget.period == "week"
    assert s.prices["openai:gpt-4o-mini"] == {"input_mtok": Decimal("0.15"), "output_mtok": Decimal("0.60")}


def test_defaults_without_a_file() -> None:
    s = load_settings(None)
    assert s.providers == {}
    assert s.routes == {}
    assert s.retry.max_retries == DEFAULT_MAX_RETRIES
    assert s.timeout == DEFAULT_TIMEOUT_S


def test_explicit_path(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "my.toml"
    p.parent.mkdir()
    p.write_text(FILE)
    _check_file_settings(load_settings(p))
    _check_file_settings(load_settings(str(p)))


def test_env_var_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "elsewhere.toml"
    p.write_text(FILE)
    monkeypatch.setenv("COMPUTEKIT_CONFIG", str(p))
    _check_file_settings(load_settings())


def test_env_var_wins_over_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "computekit.toml").write_text("timeout = 1")
    p = tmp_path / "elsewhere.toml"
    p.write_text(FILE)
    monkeypatch.setenv("COMPUTEKIT_CONFIG", str(p))
    assert load_settings().timeout == 30


def test_local_computekit_toml(tmp_path: Path) -> None:
    (tmp_path / "computekit.toml").write_text(FILE)  # cwd is tmp_path (conftest)
    _check_file_settings(load_settings())
    c = ck.Client(ledger="none")
    assert c.settings.retry.max_retries == 4


def test_none_ignores_the_local_file(tmp_path: Path) -> None:
    (tmp_path / "computekit.toml").write_text(FILE)
    assert load_settings(None).providers == {}


def test_mapping_config() -> None:
    s = load_settings({"retry": {"max_retries": 5}, "providers": {"openai": {"timeout": 3}}})
    assert s.retry.max_retries == 5
    assert s.providers["openai"].timeout == 3


def test_kwargs_merge_over_the_file_key_by_key(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(FILE)
    s = load_settings(p, providers={"openai": {"timeout": 20}}, retry={"backoff_max": 1.0})
    assert s.providers["openai"].timeout == 20  # overridden
    assert s.providers["openai"].base_url == "https://proxy.example.com/v1"  # kept from the file
    assert s.providers["openai"].options.organization == "org-file"
    assert "together" in s.providers
    assert s.retry.max_retries == 4
    assert s.retry.backoff_max == 1.0


def test_client_kwargs_merge_over_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(FILE)
    c = ck.Client(p, providers={"openai": {"api_key": KEY}}, ledger="none")
    assert c.settings.providers["openai"].base_url == "https://proxy.example.com/v1"
    assert c.settings.providers["openai"].api_key is not None
    assert c.settings.providers["openai"].api_key.get_secret_value() == KEY


def test_shorthands() -> None:
    s = load_settings(None, retry=0, ledger="none")
    assert s.retry.max_retries == 0
    assert s.ledger.url == "none"


def test_ledger_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMPUTEKIT_LEDGER", f"sqlite:///{tmp_path / 'x.db'}")
    assert load_settings(None).ledger.url == f"sqlite:///{tmp_path / 'x.db'}"
    assert load_settings(None, ledger="none").ledger.url == "none"  # a keyword argument wins


@pytest.mark.parametrize(
    ("settings", "dotted", "words"),
    [
        ({"providers": {"openai": {"timout": 3}}}, "providers.openai.timout", "unknown key"),
        ({"providers": {"openai": {"timeout": -1}}}, "providers.openai.timeout", "greater than 0"),
        ({"providers": {"openai": {"timeout": "soon"}}}, "providers.openai.timeout", "number"),
        ({"retry": {"max_retries": "lots"}}, "retry.max_retries", "integer"),
        ({"retry": {"max_retries": 99}}, "retry.max_retries", "20"),
        ({"retryy": {"max_retries": 1}}, "retryy", "unknown key"),
        ({"routes": {"chat": {"targets": ["gpt-4o"]}}}, "routes.chat.targets", "provider:model"),
        ({"routes": {"chat": {"targets": []}}}, "routes.chat.targets", "at least 1"),
        ({"routes": {"chat": {"targets": ["a:b"], "strategy": "random"}}}, "routes.chat.strategy", "ordered"),
        ({"routes": {"chat": {"targets": ["a:b"], "weights": [1.0]}}}, "routes.chat", "weighted"),
        ({"routes": {"chat": {"targets": ["a:b", "c:d"], "strategy": "weighted", "weights": [1.0]}}},
         "routes.chat", "one non-negative weight per target"),
        ({"budget": {"limit_usd": "-1"}}, "budget.limit_usd", "greater than or equal to 0"),
        ({"budget": {"limit_usd": "5", "unknown_price": "maybe"}}, "budget.unknown_price", "refuse"),
        ({"budgets": {"team": {"period": "day"}}}, "budgets.team", "limit_usd"),
        ({"budget": {"limit_usd": "1"}, "budgets": {"default": {"limit_usd": "2"}}}, "budgets.default", "rename"),
        ({"budget": {"limit_usd": "1"}, "ledger": "none"}, "a budget needs a ledger", "ledger = 'none'"),
        ({"ledger": "mysql://db"}, "ledger.url", "postgresql://"),
        ({"budget": {"period": "hour"}}, "budget.period", "day"),
        ({"prices": {"gpt-4o": {"input_mtok": "1"}}}, "prices", "provider:model"),
        ({"prices": {"openai:": {"input_mtok": "1"}}}, "'openai:'", "provider:model"),
        ({"prices": {":gpt-4o": {"input_mtok": "1"}}}, "':gpt-4o'", "provider:model"),
        ({"prices": {"openai:x": {"input_mtok": "-1"}}}, "prices", "negative"),
        ({"prices": {"openai:x": {"input_mtok": "cheap"}}}, "prices.openai:x.input_mtok", "decimal"),
        # A misspelled price key is not taken as the price of a unit no call reports: it names what to write.
        ({"prices": {"openai:x": {"cache_writes_mtok": "3.75"}}}, "openai:x.cache_writes_mtok", "cache_write_mtok"),
        ({"prices": {"openai:x": {"Input_MTOK": "1"}}}, "openai:x.Input_MTOK", "did you mean input_mtok"),
        ({"prices": {"openai:x": {"input_tokens": "1"}}}, "openai:x.input_tokens", "write input_mtok"),
        ({"prices": {"openai:x": {"input_text_mtok": "1"}}}, "openai:x.input_text_mtok", "output_reasoning_mtok"),
        ({"prices": {"replicate:gpu-t4": {"per_seconds": "1"}}}, "gpu-t4.per_seconds", "did you mean per_second"),
        ({"prices": {"openai:x": {"per_requests": "1"}}}, "openai:x.per_requests", "did you mean per_request"),
        ({"prices": {"openai:x": {"traning_mtok": "3"}}}, "openai:x.traning_mtok", "did you mean training_mtok"),
        ({"prices": {"openai:x": {"batch_imput_mtok": "1"}}}, "batch_imput_mtok", "did you mean batch_input_mtok"),
        ({"prices": {"openai:x": {"batch_search_units": "1"}}}, "batch_search_units", "batch_per_request"),
        # Keys an adapter declares are validated against its settings model, and named the same way.
        ({"providers": {"azure": {"api_version": 2024}}}, "providers.azure.api_version", "string"),
        ({"providers": {"azure": {"deployments": ["x"]}}}, "providers.azure.deployments", "dictionary"),
        ({"providers": {"openai": {"api_version": "2024-10-21"}}}, "providers.openai.api_version", "unknown key"),
        ({"providers": {"corp": {"adapter": "openai-compatible", "project": "p"}}}, "providers.corp.project",
         "unknown key"),
        ({"providers": {"nosuch": {"region": "x"}}}, "providers.nosuch.region", "unknown key"),
    ],
)
def test_invalid_settings_name_the_key(settings: dict, dotted: str, words: str) -> None:
    with pytest.raises(ck.ConfigError) as info:
        load_settings(None, **settings)
    msg = str(info.value)
    assert dotted in msg
    assert words in msg
    assert "keyword arguments" in msg


PASSWORD = "hunter2-ledger-password"


@pytest.mark.parametrize("settings", [
    {"ledger": f"mysql://bob:{PASSWORD}@db.example.com/costs"},  # a scheme refused
    {"ledger": f"postgresql://bob:{PASSWORD}@db.example.com:99999/costs"},  # a port out of range
    {"ledger": {"url": f"postgresql://bob:{PASSWORD}@db/costs", "flush_interval": "soon"}},  # a sibling wrong
    {"ledger": {"url": f"postgresql://bob:{PASSWORD}@db/costs", "nosuch": 1}},  # an unknown key beside it
    {"providers": {"openai": {"api_key": PASSWORD, "timeout": "never"}}},  # a key next to a bad setting
    {"providers": {"azure": {"api_key": PASSWORD, "api_version": 2024}}},  # ... and an adapter's own setting
])
def test_invalid_settings_are_raised_from_their_cause_without_a_secret(settings: dict) -> None:
    import traceback

    with pytest.raises(ck.ConfigError) as info:
        load_settings(None, **settings)
    cause = info.value.__cause__
    assert isinstance(cause, ValidationError)  # raised from the validation error, not from None
    assert cause.errors()  # ... which still says what is wrong
    text = "".join(traceback.format_exception(info.value))
    assert "ValidationError" in text
    for shown in (text, str(cause), repr(cause), repr(cause.errors())):
        assert PASSWORD not in shown


def test_invalid_key_in_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    p = tmp_path / "computekit.toml"
    p.write_text("[providers.openai]\nbase_ulr = 'https://x'\n")
    with pytest.raises(ck.ConfigError) as info:
        ck.Client(ledger="none")
    msg = str(info.value)
    assert str(p) in msg
    assert "providers.openai.base_ulr" in msg
    assert "unknown key" in msg


def test_bad_toml(tmp_path: Path) -> None:
    p = tmp_path / "computekit.toml"
    p.write_text("[providers.openai\nbase_url = ")
    with pytest.raises(ck.ConfigError, match="not valid TOML"):
        load_settings()


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ck.ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_missing_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMPUTEKIT_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ck.ConfigError, match=r"\$COMPUTEKIT_CONFIG"):
        load_settings()


def test_settings_are_frozen() -> None:
    s = load_settings(None)
    with pytest.raises(Exception):  # noqa: B017  (pydantic's frozen-instance error)
        s.timeout = 1  # type: ignore[misc]


def test_key_is_secret_in_settings_repr() -> None:
    s = load_settings(None, providers={"openai": {"api_key": KEY}})
    assert KEY not in repr(s)
    assert KEY not in str(s)
    assert KEY not in s.model_dump_json()


# ------------------------------------------------------------------------------------------------ keys


def test_missing_api_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = Server([ok(chat_json())])
    client = make_client(server, providers={})
    with pytest.raises(ck.MissingAPIKeyError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    assert "OPENAI_API_KEY" in str(info.value)
    assert info.value.env_vars == ("OPENAI_API_KEY",)
    assert server.hits == 0


def test_env_var_key_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1234567890")
    server = Server([ok(chat_json())])
    make_client(server, providers={}).complete("openai:gpt-4o-mini", "hi")
    assert server.seen[0].auth == "Bearer sk-from-env-1234567890"


def test_configured_key_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1234567890")
    server = Server([ok(chat_json())])
    make_client(server).complete("openai:gpt-4o-mini", "hi")
    assert server.seen[0].auth == f"Bearer {KEY}"


def test_api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-env-123456")
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-custom-env-1234567")
    server = Server([ok(chat_json())])
    make_client(server, providers={"openai": {"api_key_env": "MY_OPENAI_KEY"}}).complete("openai:gpt-4o-mini", "hi")
    assert server.seen[0].auth == "Bearer sk-custom-env-1234567"


def test_api_key_env_missing_names_that_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-env-123456")  # not read: api_key_env replaces it
    monkeypatch.delenv("MY_OPENAI_KEY", raising=False)
    server = Server([ok(chat_json())])
    client = make_client(server, providers={"openai": {"api_key_env": "MY_OPENAI_KEY"}})
    with pytest.raises(ck.MissingAPIKeyError) as info:
        client.complete("openai:gpt-4o-mini", "hi")
    assert "MY_OPENAI_KEY" in str(info.value)
    assert server.hits == 0


def test_per_call_base_url_on_another_host_gets_no_configured_key() -> None:
    server = Server([ok(chat_json())])
    client = make_client(server)
    with pytest.raises(ck.MissingAPIKeyError):
        client.complete("openai:gpt-4o-mini", "hi", base_url="https://evil.example.net/v1")
    assert server.hits == 0  # the configured key was not sent anywhere
    # A key given with the call goes with it.
    client.complete("openai:gpt-4o-mini", "hi", base_url="https://evil.example.net/v1", api_key="sk-other-12345678")
    assert server.seen[-1].url == "https://evil.example.net/v1/chat/completions"
    assert server.seen[-1].auth == "Bearer sk-other-12345678"


@pytest.mark.filterwarnings("ignore::computekit.pricing.UnknownPriceWarning")
def test_per_call_base_url_on_another_host_keyless_provider() -> None:
    server = Server([ok(chat_json())])
    providers = {"myhost": {"adapter": "openai-compatible", "base_url": "https://llm.example.com/v1", "api_key": KEY}}
    client = make_client(server, providers=providers)
    client.complete("myhost:llama", "hi")
    assert server.seen[-1].auth == f"Bearer {KEY}"
    client.complete("myhost:llama", "hi", base_url="https://other.example.org/v1")
    assert server.seen[-1].url.startswith("https://other.example.org/v1/")
    assert server.seen[-1].auth is None
    assert all(KEY not in v for v in server.seen[-1].headers.values())


def test_per_call_base_url_on_the_same_host_keeps_the_key() -> None:
    server = Server([ok(chat_json())])
    client = make_client(server)
    client.complete("openai:gpt-4o-mini", "hi", base_url="https://api.openai.com/v2-beta")
    assert server.seen[-1].url == "https://api.openai.com/v2-beta/chat/completions"
    assert server.seen[-1].auth == f"Bearer {KEY}"


def test_configured_base_url_and_headers_are_used() -> None:
    server = Server([ok(chat_json())])
    providers = {"openai": {"api_key": KEY, "base_url": "https://proxy.example.com/v1/", "headers": {"x-team": "a"},
                            "organization": "org-1", "project": "proj-1"}}
    make_client(server, providers=providers).complete("openai:gpt-4o-mini", "hi")
    seen = server.seen[0]
    assert seen.url == "https://proxy.example.com/v1/chat/completions"
    assert seen.headers["x-team"] == "a"
    assert seen.headers["openai-organization"] == "org-1"
    assert seen.headers["openai-project"] == "proj-1"


def test_unknown_provider_is_a_config_error() -> None:
    client = make_client(Server([ok(chat_json())]))
    with pytest.raises(ck.ConfigError) as info:
        client.complete("nosuchprovider:model", "hi")
    assert "nosuchprovider" in str(info.value)
    assert "openai-compatible" in str(info.value)


def test_provider_without_base_url_is_a_config_error() -> None:
    client = make_client(Server([ok(chat_json())]), providers={"mine": {"adapter": "openai-compatible"}})
    with pytest.raises(ck.ConfigError, match=r"providers\.mine"):
        client.complete("mine:model", "hi")


def test_the_settings_module_names_no_provider() -> None:
    """Provider-specific settings are declared by adapters: the settings module knows no provider by name."""
    source = Path(_config.__file__).read_text("utf-8").lower()
    words = {"together", "fake"}  # provider names that are also plain English
    named = [n for n in BUILTIN if n not in words and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", source)]
    assert named == []


def test_every_unit_computekit_reports_or_prices_is_a_valid_price_key() -> None:
    """Keys checked for misspellings are only the fixed ones: a unit's own name (every unit computekit's tables
    price, and those genai-prices names) is still a price of one unit."""
    import tomllib
    from importlib import resources

    from genai_prices.units import _get_registry

    from computekit.pricing._book import _TOKEN_KEYS, price_key_error

    data = resources.files("computekit.pricing").joinpath("data")
    units = {u.usage_key for k, u in _get_registry()._units_by_price_key.items() if k not in _TOKEN_KEYS}
    for table in ("units.toml", "tools.toml"):
        for entry in tomllib.loads(data.joinpath(table).read_text("utf-8")).get("models", []):
            units |= set(entry.get("units", {}))
        units |= {fee["unit"] for fee in tomllib.loads(data.joinpath(table).read_text("utf-8")).get("fees", [])}
    units |= {"search_units", "billable_units", "input_token_count", "output_token_count", "web_searches"}
    assert len(units) > 20
    assert {u: price_key_error(u) for u in units} == dict.fromkeys(units)
    settings = load_settings(None, prices={"cohere:rerank-v3.5": {"search_units": "0.002"}})
    assert settings.prices["cohere:rerank-v3.5"]["search_units"] == Decimal("0.002")
