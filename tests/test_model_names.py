"""Bare model names resolve when one provider serves them; typos get "did you mean"; internal adapters are not
offered as providers. Which provider serves a model comes from the price tables (genai-prices)."""

from __future__ import annotations

import warnings

import httpx
import pytest
from _support import Server, chat_json, make_client
from typer.testing import CliRunner

import computekit as ck
from computekit._core import Core
from computekit.adapters._registry import providers
from computekit.cli import app
from computekit.pricing._book import tables_serving

KEY_VARS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "GROQ_API_KEY")


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)


def targets(model: str, **providers_: dict[str, str]) -> list[str]:
    core = Core(None, providers=providers_, ledger="none")
    return [f"{t.provider}:{t.model}" for t in core.targets(model)]


def test_a_bare_name_served_by_one_provider_resolves() -> None:
    assert "openai" in tables_serving("gpt-4o-mini")
    assert targets("gpt-4o-mini") == ["openai:gpt-4o-mini"]
    assert targets("llama-3.1-8b-instant") == ["groq:llama-3.1-8b-instant"]
    assert targets(["gpt-4o-mini", "groq:llama-3.1-8b-instant"]) == ["openai:gpt-4o-mini",
                                                                      "groq:llama-3.1-8b-instant"]


def test_a_bare_name_is_sent_to_its_provider() -> None:
    server = Server([httpx.Response(200, json=chat_json("hi there"))])
    client = make_client(server)
    r = client.complete("gpt-4o-mini", "hi")
    assert (r.provider, r.model, r.text) == ("openai", "gpt-4o-mini", "hi there")
    assert server.seen[0].url == "https://api.openai.com/v1/chat/completions"


def test_several_providers_is_a_config_error_listing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    served_by = {"openai", "azure"}
    assert served_by <= set(tables_serving("text-embedding-3-small"))
    with pytest.raises(ck.ConfigError, match="several providers") as info:
        targets("text-embedding-3-small")
    assert "'azure:text-embedding-3-small'" in str(info.value)
    assert "'openai:text-embedding-3-small'" in str(info.value)
    # The one set up (a key in the environment, or configured) is the one meant.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert targets("text-embedding-3-small") == ["openai:text-embedding-3-small"]
    monkeypatch.delenv("OPENAI_API_KEY")
    assert targets("text-embedding-3-small", azure={"base_url": "https://r.openai.azure.com"}) == [
        "azure:text-embedding-3-small"]


def test_an_unknown_bare_name_suggests_close_models() -> None:
    with pytest.raises(ck.InvalidRequestError, match=r"did you mean openai:gpt-4o-mini"):
        targets("gpt-4o-mnii")
    with pytest.raises(ck.InvalidRequestError, match="write 'provider:model'"):
        targets("no-such-model-anywhere")


def test_a_misspelled_provider_gets_a_suggestion_and_internal_adapters_are_not_offered() -> None:
    with pytest.raises(ck.ConfigError, match=r"unknown provider 'opnai' \(did you mean 'openai'\?\)") as info:
        targets("opnai:gpt-4o-mini")
    known = str(info.value).split("Known: ")[1].split(". ")[0].split(", ")
    assert "fake" not in known
    assert "openai-compatible" not in known
    assert known == providers()
    with pytest.raises(ck.ConfigError, match=r"did you mean 'anthropic'"):
        targets("antropic:claude-3-5-haiku-latest")


def test_an_unpriced_typo_warns_with_the_likely_model() -> None:
    # A host that answers for any name it is given (a proxy, a gateway): the response names the same model.
    server = Server([httpx.Response(200, json=chat_json("ok", model="gpt-4o-mnii"))])
    client = make_client(server)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = client.complete("openai:gpt-4o-mnii", "hi")
    assert r.cost.total is None
    [w] = [w for w in caught if issubclass(w.category, ck.UnknownPriceWarning)]
    assert "did you mean openai:gpt-4o-mini?" in str(w.message)


def test_a_404_on_a_misspelled_model_names_the_likely_one() -> None:
    body = {"error": {"message": "The model `gpt-4o-mnii` does not exist", "type": "invalid_request_error",
                      "code": "model_not_found"}}
    client = make_client(Server([httpx.Response(404, json=body)]), retry={"max_retries": 0})
    with pytest.raises(ck.NotFoundError) as info:
        client.complete("openai:gpt-4o-mnii", "hi")
    assert info.value.__notes__ == ["did you mean openai:gpt-4o-mini?"]


def test_cli_prices_of_a_typo_suggests_the_model_not_a_price() -> None:
    result = CliRunner().invoke(app, ["prices", "openai:gpt-4o-mnii"])
    assert result.exit_code == 1
    assert "did you mean openai:gpt-4o-mini?" in result.output
    assert "[prices]" not in result.output
    assert "Add its price" not in result.output
    unknown = CliRunner().invoke(app, ["prices", "openai:a-model-nobody-prices-zzzz"])
    assert "Add its price" in unknown.output  # a real unknown model still gets the how-to


def test_cli_providers_lists_no_internal_adapter() -> None:
    import json

    result = CliRunner().invoke(app, ["providers", "--json"])
    names = [row["name"] for row in json.loads(result.output)]
    assert "fake" not in names
    assert "openai-compatible" not in names
    assert "openai" in names
