"""The ``replicate`` provider through the public client, sync and async, replayed from cassettes/test_replicate/.

The cassettes were authored from Replicate's OpenAPI description (``shared/specs/replicate-openapi.json``); every
prediction body in them is validated against its ``schemas_prediction_response`` below, so a hand-written cassette
cannot drift from what Replicate documents. Costs: ``metrics.predict_time`` x the per-second price of the hardware
passed, read from ``PriceBook`` (computekit's ``gpu.toml``).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from _clients import Sleeps, call, close, every_interaction_played, mode, vcr_config  # noqa: F401  (shared fixtures, registered by name)
from _paths import CASSETTES, ROOT, real_key

import computekit as ck
from computekit._config import RetryConfig, RoutingConfig
from computekit._exceptions import AuthenticationError, PredictionFailedError
from computekit._retry import RetryPolicy
from computekit.pricing import PriceBook
from computekit.routing import Router

KEY = real_key("REPLICATE_API_TOKEN", "r8_placeholder0123456789abcdef")


def client_for(mode: str, sleeps: Sleeps) -> Any:
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    return cls(config=None, providers={"replicate": {"api_key": KEY}},
               retry_policy=RetryPolicy(RetryConfig(max_retries=0), sleep=sleeps, asleep=sleeps.asleep),
               router=Router(RoutingConfig(), clock=sleeps.clock))


def per_second(sku: str) -> Decimal:
    found = PriceBook().per_second("replicate", sku)
    assert found is not None
    return found[0]


# ------------------------------------------------------------------------------------------------ replays


@pytest.mark.vcr
@pytest.mark.default_cassette("run_and_poll.yaml")
async def test_run_and_poll(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "replicate:black-forest-labs/flux-schnell", {"prompt": "a watercolor fox"},
                   hardware="gpu-h100")
    await close(client)
    assert p.status == "succeeded"
    assert p.output == ["https://replicate.delivery/xezq/fox.webp"]
    assert p.logs.endswith("4/4\n")
    assert p.usage.gpu_seconds == Decimal("1.371")
    assert p.cost.total == Decimal("1.371") * per_second("gpu-h100")
    assert sleeps.waits == [0.5]
    [row] = client.ledger.rows()
    assert (row.verb, row.model, row.cost) == ("predict", "black-forest-labs/flux-schnell", p.cost.total)


@pytest.mark.vcr
@pytest.mark.default_cassette("failed.yaml")
async def test_failed_run(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    with pytest.raises(PredictionFailedError) as info:
        await call(client, "predict",
                   "replicate:nightmareai/real-esrgan:42fed1c4974146d4d2414e2be2c5277c7fcf05fcc3a73abf41610695738c1d7b",
                   {"image": "https://example.com/in.png", "scale": 8}, wait=True, hardware="gpu-t4")
    await close(client)
    p = info.value.prediction
    assert p.status == "failed"
    assert p.error == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert "CUDA out of memory" in p.logs
    assert p.cost.total == Decimal("2.25") * per_second("gpu-t4")
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type, row.cost) == ("error", "PredictionFailedError", p.cost.total)


@pytest.mark.vcr
@pytest.mark.default_cassette("deployment_canceled.yaml")
async def test_deployment_cancel(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "replicate:deployments/acme/chat-prod", {"prompt": "hello"}, wait=False,
                   hardware="2x-gpu-a100-large", validate=False)
    assert p.status == "queued"
    done = await (p.async_cancel() if mode == "async" else _sync(p.cancel()))
    await close(client)
    assert done.status == "canceled"
    assert done.cost.total == Decimal("0.6") * 2 * per_second("gpu-a100-large")
    assert sleeps.waits == []


async def _sync(value: Any) -> Any:
    return value


@pytest.mark.vcr
@pytest.mark.default_cassette("auth_error.yaml")
async def test_auth_error(mode: str) -> None:
    client = client_for(mode, Sleeps())
    with pytest.raises(AuthenticationError) as info:
        await call(client, "predict", "replicate:black-forest-labs/flux-schnell", {"prompt": "a watercolor fox"},
                   validate=False)
    await close(client)
    assert info.value.status == 401
    assert info.value.body["detail"] == "You did not pass a valid authentication token"


# ------------------------------------------------------------------------------------------------ the spec


def spec_path() -> Path:
    env = os.environ.get("COMPUTEKIT_SPECS_DIR")
    base = Path(env) if env else ROOT.parent / "shared" / "specs"
    return base / "replicate-openapi.json"


@cache
def _spec() -> dict[str, Any]:
    doc = json.loads(spec_path().read_text("utf-8"))
    return {"components": {"schemas": doc["components"]["schemas"]}}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not spec_path().is_file():
        msg = f"Replicate OpenAPI description not found at {spec_path()}: set COMPUTEKIT_SPECS_DIR"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return _spec()


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(json.dumps(_spec()))
    # The file is OpenAPI 3.1 but keeps 3.0's ``nullable: true`` on ``error``: a null alternative.
    for s in schema["components"]["schemas"].values():
        for prop in (s.get("properties") or {}).values():
            if prop.pop("nullable", False) and isinstance(prop.get("type"), str):
                prop["type"] = [prop["type"], "null"]
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", **schema})


def schema_errors(name: str, instance: Any) -> list[str]:
    assert name in _spec()["components"]["schemas"], f"{name} is not in the spec"
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}"
            for e in _validator(name).iter_errors(instance)]


def _interactions() -> list[Any]:
    out = []
    for path in sorted((CASSETTES / "test_replicate").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text("utf-8"))
        for i, _ in enumerate(doc["interactions"]):
            out.append(pytest.param(path, i, id=f"{path.name}#{i}"))
    return out


def test_there_are_cassettes() -> None:
    assert len(_interactions()) == 18


@pytest.mark.parametrize(("path", "index"), _interactions())
def test_cassette_matches_replicate_spec(spec: dict[str, Any], path: Path, index: int) -> None:
    text = path.read_text("utf-8")
    assert text.startswith("# AUTHORED: written from ") or text.startswith("# RECORDED: "), path.name
    inter = yaml.safe_load(text)["interactions"][index]
    req, resp = inter["request"], inter["response"]
    assert req["uri"].startswith(("https://api.replicate.com/v1/", "https://stream.replicate.com/"))
    assert "authorization" not in {k.lower() for k in req["headers"]}
    if req["method"] == "GET" and not req["uri"].startswith("https://api.replicate.com/v1/predictions/"):
        return  # model, version and deployment lookups and streams: validated in tests/test_cassette_specs.py
    if req["body"]:
        body = json.loads(req["body"])
        name = "schemas_version_prediction_request" if "version" in body else "schemas_prediction_request"
        assert not schema_errors(name, body)
    data = json.loads(resp["body"]["string"])
    status = resp["status"]["code"]
    if status in (200, 201):
        assert not schema_errors("schemas_prediction_response", data)
    else:
        assert status == 401
        assert resp["headers"]["content-type"] == ["application/problem+json"]
        assert set(data) == {"title", "detail", "status"}
        assert data["status"] == 401


def test_spec_validation_is_not_vacuous(spec: dict[str, Any]) -> None:
    assert schema_errors("schemas_prediction_response", {"id": "x", "status": "starting"})  # required fields
    good = json.loads(yaml.safe_load((CASSETTES / "test_replicate" / "failed.yaml").read_text())
                      ["interactions"][1]["response"]["body"]["string"])
    assert schema_errors("schemas_prediction_response", good) == []
    assert schema_errors("schemas_prediction_response", {**good, "status": "done"})
    assert schema_errors("schemas_prediction_response", {**good, "error": 3})


# ------------------------------------------------------------------------------------------------ input schemas


@pytest.mark.vcr
@pytest.mark.default_cassette("invalid_input.yaml")
async def test_input_checked_against_the_schema_before_anything_is_created(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    model = "replicate:black-forest-labs/flux-schnell"
    with pytest.raises(ck.InputValidationError) as info:
        await call(client, "predict", model, {"prompt": "a fox", "num_output": 2})
    err = info.value
    assert isinstance(err, ck.InvalidRequestError)
    assert err.field == "num_output"
    assert "did you mean 'num_outputs'?" in str(err)
    assert (err.provider, err.model) == ("replicate", "black-forest-labs/flux-schnell")
    # the schema is cached per client: the second check sends nothing (the cassette holds one lookup)
    with pytest.raises(ck.InputValidationError) as info:
        await call(client, "predict", model, {"prompt": 3, "num_outputs": 9, "aspect_ratio": "5:3",
                                              "go_fast": "yes"})
    await close(client)
    fields = [f for f, _ in info.value.problems]
    assert fields == ["prompt", "num_outputs", "aspect_ratio", "go_fast"]
    msg = str(info.value)
    assert "prompt: must be a string, not an integer 3" in msg
    assert "num_outputs: 9 is above the maximum 4" in msg
    assert "aspect_ratio: '5:3' is not one of" in msg
    assert "go_fast: must be true or false" in msg
    assert client.ledger.rows() == []  # nothing ran, nothing was billed
    assert sleeps.waits == []


@pytest.mark.vcr
@pytest.mark.default_cassette("run_and_poll.yaml")
async def test_valid_input_passes_the_schema_and_runs(mode: str) -> None:
    # run_and_poll.yaml starts with the model lookup: validation is on by default
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "replicate:black-forest-labs/flux-schnell", {"prompt": "a watercolor fox"},
                   hardware="gpu-h100")
    await close(client)
    assert p.status == "succeeded"


# ------------------------------------------------------------------------------------------------ deployments


@pytest.mark.vcr
@pytest.mark.default_cassette("deployment_hardware.yaml")
async def test_a_deployment_is_priced_on_the_hardware_its_configuration_names(mode: str) -> None:
    client = client_for(mode, Sleeps())
    p = await call(client, "predict", "replicate:deployments/acme/flux-prod",
                   {"prompt": "a red bicycle", "lora_scale": 0.8})
    await close(client)
    assert p.status == "succeeded"
    assert p.usage.hardware == "gpu-l40s"  # from current_release.configuration.hardware, not a guess
    assert p.cost.estimated is False
    assert p.cost.total == Decimal("2.5") * per_second("gpu-l40s")
    [row] = client.ledger.rows()
    assert row.cost == p.cost.total


# ------------------------------------------------------------------------------------------------ official models


def per_token(model: str, unit: str) -> Decimal:
    from computekit.pricing import PriceRef

    rates = PriceBook().rates(PriceRef(provider="replicate", model=model))
    assert rates is not None, f"units.toml has no replicate {model}"
    price, per = rates.extra_units[unit]
    return price / per


@pytest.mark.vcr
@pytest.mark.default_cassette("official_tokens.yaml")
async def test_an_official_language_model_is_priced_per_token(mode: str) -> None:
    client = client_for(mode, Sleeps())
    # hardware= is ignored for pricing: the model bills per token, not per second
    p = await call(client, "predict", "replicate:meta/meta-llama-3-70b-instruct",
                   {"prompt": "How many sisters do Tina's siblings have?", "max_tokens": 64}, hardware="gpu-h100")
    await close(client)
    model = "meta/meta-llama-3-70b-instruct"
    assert p.usage.units == {"input_token_count": Decimal(26), "output_token_count": Decimal(84)}
    expected = 26 * per_token(model, "input_token_count") + 84 * per_token(model, "output_token_count")
    assert p.cost.total == expected
    assert [(line.item, line.quantity) for line in p.cost.lines] == [("input_token_count", 26),
                                                                      ("output_token_count", 84)]
    assert p.cost.price_source is not None
    assert p.cost.price_source.url == "https://replicate.com/meta/meta-llama-3-70b-instruct"
    [row] = client.ledger.rows()
    assert row.cost == expected


# ------------------------------------------------------------------------------------------------ streaming


@pytest.mark.vcr
@pytest.mark.default_cassette("stream.yaml")
async def test_stream_yields_output_pieces_then_the_priced_prediction(mode: str) -> None:
    sleeps = Sleeps()
    client = client_for(mode, sleeps)
    p = await call(client, "predict", "replicate:meta/meta-llama-3-8b-instruct",
                   {"prompt": "Say hi in three words", "max_tokens": 16}, wait=False, validate=False)
    if mode == "async":
        async with p.async_stream() as s:
            pieces = [piece async for piece in s]
    else:
        with p.stream() as s:
            pieces = list(s)
    await close(client)
    assert pieces == ["Hi", " there", ",\nfriend"]  # multi-line data joined with "\n", as SSE says
    assert s.logs == "generating 4 tokens\n"
    done = s.result
    assert done.status == "succeeded"
    expected = (12 * per_token("meta/meta-llama-3-8b-instruct", "input_token_count")
                + 4 * per_token("meta/meta-llama-3-8b-instruct", "output_token_count"))
    assert done.cost.total == expected
    assert sleeps.waits == []  # the done event ends the stream: the final state is fetched at once
    [row] = client.ledger.rows()
    assert (row.outcome, row.cost) == ("success", expected)
