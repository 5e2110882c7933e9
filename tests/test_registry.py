"""The adapter registry: built-ins by name, plugins by entry point, helpful errors."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

import computekit as ck
from computekit.adapters import _registry
from computekit.adapters._base import Adapter
from computekit.adapters._registry import BUILTIN, ENTRY_POINT_GROUP, adapter_class, available
from computekit.adapters.anthropic import AnthropicSettings
from computekit.adapters.azure import AzureOpenAIAdapter, AzureSettings
from computekit.adapters.openai import OpenAIAdapter
from computekit.adapters.openai_compatible import PROFILES, OpenAICompatibleAdapter

PLUGIN = '''
from computekit.adapters._base import Adapter, AdapterSettings, Capabilities

class MyHostAdapter(Adapter):
    name = "myhost"
    capabilities = Capabilities(predict=True)
    default_base_url = "https://myhost.example/v1"

class NotAnAdapter:
    pass

class RegionSettings(AdapterSettings):
    region: str
    profile: str = "default"

class RegionalAdapter(Adapter):
    name = "regional"
    capabilities = Capabilities(predict=True)
    default_base_url = "https://regional.example/v1"
    settings_model = RegionSettings
'''


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_loaded", {})


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "ck_test_plugin_mod"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _fake_entry_points(mapping: dict[str, str], calls: list[Any]) -> Any:
    def entry_points(**kw: Any) -> list[importlib.metadata.EntryPoint]:
        calls.append(kw)
        if kw.get("group") != ENTRY_POINT_GROUP:
            return []
        return [importlib.metadata.EntryPoint(name=n, value=v, group=ENTRY_POINT_GROUP) for n, v in mapping.items()]

    return entry_points


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("openai", OpenAIAdapter),
        ("azure", AzureOpenAIAdapter),
        ("openai-compatible", OpenAICompatibleAdapter),
        ("together", OpenAICompatibleAdapter),
        ("ollama", OpenAICompatibleAdapter),
    ],
)
def test_builtin_names(name: str, cls: type[Adapter]) -> None:
    assert adapter_class(name) is cls


def test_every_builtin_imports_to_an_adapter() -> None:
    for name in BUILTIN:
        cls = adapter_class(name)
        assert isinstance(cls, type)
        assert issubclass(cls, Adapter), name
        assert cls.name
        assert cls.capabilities.names(), f"{name} can do nothing"


def test_every_compatible_profile_is_registered() -> None:
    for name in PROFILES:
        assert adapter_class(name) is OpenAICompatibleAdapter


def test_lookups_are_cached() -> None:
    cls = adapter_class("openai")
    assert _registry._loaded["openai"] is cls
    assert adapter_class("openai") is cls


def test_builtin_lookup_reads_no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kw: Any) -> Any:
        raise AssertionError("entry points read for a built-in name")

    monkeypatch.setattr(importlib.metadata, "entry_points", boom)
    assert adapter_class("openai") is OpenAIAdapter


def test_unknown_name_lists_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points({}, calls))
    with pytest.raises(ck.ConfigError) as info:
        adapter_class("nosuch")
    msg = str(info.value)
    assert "'nosuch'" in msg
    for known in ("openai", "azure", "together", "ollama"):
        assert known in msg
    assert 'adapter = "openai-compatible"' in msg
    assert calls
    assert all(c == {"group": ENTRY_POINT_GROUP} for c in calls)


def test_plugin_by_entry_point(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        _fake_entry_points({"myhost": f"{plugin_module}:MyHostAdapter"}, calls))
    cls = adapter_class("myhost")
    assert cls.__name__ == "MyHostAdapter"
    assert issubclass(cls, Adapter)
    assert available()["myhost"] == f"{plugin_module}:MyHostAdapter"
    assert available()["openai"] == BUILTIN["openai"]


def test_builtin_wins_over_a_plugin_of_the_same_name(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        _fake_entry_points({"openai": f"{plugin_module}:MyHostAdapter"}, []))
    assert adapter_class("openai") is OpenAIAdapter
    assert available()["openai"] == BUILTIN["openai"]


def test_plugin_that_is_not_an_adapter(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        _fake_entry_points({"bad": f"{plugin_module}:NotAnAdapter"}, []))
    with pytest.raises(ck.ConfigError, match="not a computekit Adapter subclass"):
        adapter_class("bad")


def test_plugin_adapter_through_the_client(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    """A plugin that cannot complete is refused before any HTTP, with its capabilities listed."""
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        _fake_entry_points({"myhost": f"{plugin_module}:MyHostAdapter"}, []))
    client = ck.Client(None, providers={"myhost": {"api_key": "sk-plugin-12345678"}}, ledger="none")
    with pytest.raises(ck.UnsupportedCapabilityError) as info:
        client.complete("myhost:some-model", "hi")
    assert info.value.provider == "myhost"
    assert info.value.capability == "complete"
    assert "predict" in str(info.value)


def test_configured_adapter_name(monkeypatch: pytest.MonkeyPatch) -> None:
    core = ck.Client(None, providers={"corp": {"adapter": "openai-compatible", "base_url": "https://llm.corp/v1"}},
                     ledger="none")._core
    a = core.adapter("corp")
    assert isinstance(a, OpenAICompatibleAdapter)
    assert a.provider == "corp"
    assert a.settings.base_url == "https://llm.corp/v1"


def test_plugin_declares_its_own_settings(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    """A third-party adapter's settings model is validated by the config and read back, validated, by the adapter."""
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        _fake_entry_points({"regional": f"{plugin_module}:RegionalAdapter"}, []))
    core = ck.Client(None, providers={"regional": {"region": "eu-west-1", "timeout": 5}}, ledger="none")._core
    adapter = core.adapter("regional")
    assert (adapter.options.region, adapter.options.profile) == ("eu-west-1", "default")
    assert adapter.settings.timeout == 5
    with pytest.raises(ck.ConfigError) as info:
        ck.Client(None, providers={"regional": {"regoin": "eu-west-1"}}, ledger="none")
    assert "providers.regional.regoin: unknown key" in str(info.value)
    assert "providers.regional.region: Field required" in str(info.value)


def test_required_adapter_setting_unset_names_the_key(monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> None:
    """A provider used without a table still gets its adapter's settings validated: a required one is named."""
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        _fake_entry_points({"regional": f"{plugin_module}:RegionalAdapter"}, []))
    client = ck.Client(None, ledger="none")
    with pytest.raises(ck.ConfigError, match=r"providers\.regional\.region: Field required"):
        client.predict("regional:m", {})


def test_builtin_settings_reach_the_adapter() -> None:
    core = ck.Client(None, providers={"azure": {"base_url": "https://r.openai.azure.com", "api_key": "k" * 12,
                                                "deployments": {"gpt-4o-mini": "mini"}}}, ledger="none")._core
    adapter = core.adapter("azure")
    assert isinstance(adapter, AzureOpenAIAdapter)
    assert adapter.options.deployments == {"gpt-4o-mini": "mini"}
    assert adapter.options.api_version == AzureSettings.model_fields["api_version"].default
    assert core.adapter("anthropic").options == AnthropicSettings()
