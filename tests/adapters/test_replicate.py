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

import computekit as ck
from computekit._config import RetryConfig, RoutingConfig
from computekit._exceptions import AuthenticationError, PredictionFailedError
from computekit._retry import RetryPolicy
from computekit.pricing import PriceBook
from computekit.routing import Router

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"
# The real key when recording, else a placeholder (not imported from conftest: tests/faults has one too).
KEY = os.environ.get("REPLICATE_API_TOKEN") or "r8_placeholder0123456789abcdef"


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
                   hardware="2x-gpu-a100-large")
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
        await call(client, "predict", "replicate:black-forest-labs/flux-schnell", {"prompt": "a watercolor fox"})
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
    assert len(_interactions()) == 7


@pytest.mark.parametrize(("path", "index"), _interactions())
def test_cassette_matches_replicate_spec(spec: dict[str, Any], path: Path, index: int) -> None:
    text = path.read_text("utf-8")
    assert text.startswith("# AUTHORED: written from ") or text.startswith("# RECORDED: "), path.name
    inter = yaml.safe_load(text)["interactions"][index]
    req, resp = inter["request"], inter["response"]
    assert req["uri"].startswith("https://api.replicate.com/v1/")
    assert "authorization" not in {k.lower() for k in req["headers"]}
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
