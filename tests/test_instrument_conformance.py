"""``ck.instrument``: the real recordings in ``shared/conformance`` replayed through the real vendor SDKs.

Every recorded exchange on an endpoint computekit prices (OpenAI chat and embeddings, Anthropic messages, Cohere
v2 chat, embed and rerank) is sent by the SDK itself, with the recorded request body, to a mock transport that
answers with the recorded response in pieces. The instrumented call's ledger row must cost exactly what the same
answer costs through computekit's own client (``ck.complete()``, ``ck.stream()``, ``ck.embed()``,
``ck.rerank()``), and an error must be recorded with its status and computekit's error type.
"""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any

import httpx
import pytest
from _conformance import Exchange, files, load, require_conformance_dir
from test_instrument import KEY, Reply, Server, _lib_of, drain, run, sdk, sdk_client

import computekit as ck
from computekit._instrument_sdks import SDKS

pytestmark = pytest.mark.conformance

FOLDERS = {"openai": "openai", "openai-responses": "openai", "anthropic": "anthropic", "cohere": "cohere"}


def _sdk_error(name: str) -> Any:
    """The error the SDK raises for an error status (its own type)."""
    if name == "cohere":
        return sdk("cohere.core.api_error").ApiError
    return sdk(name).APIStatusError
PRICES = {"cohere:rerank-v3.5": {"search_units": "0.002"}}  # no bundled table prices Cohere's search units


def _exchanges() -> list[Any]:
    out = []
    for folder, vendor in FOLDERS.items():
        for rel in files(folder):
            for e in load(rel):
                route = SDKS[vendor].route(e.method, e.path)
                # A background response is recorded when a look sees it end (test_instrument_background).
                if (route is not None and route.normalise is not None and not route.poll
                        and isinstance(e.request_body, dict) and not e.request_body.get("background")):
                    out.append(pytest.param(vendor, e, id=e.id))
    return out


EXCHANGES = _exchanges()


def _reply(e: Exchange) -> Reply:
    # The recording's body is stored decompressed: its encoding and length headers no longer describe it.
    headers = {k: v for k, v in e.headers.items() if k not in ("content-encoding", "content-length",
                                                                "transfer-encoding")}
    return Reply(e.status, pieces=_pieces(e.content), headers=headers)


def _pieces(content: bytes, n: int = 3) -> list[bytes]:
    step = max(1, len(content) // n)
    return [content[i:i + step] for i in range(0, len(content), step)]


def _kwargs(method: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The recorded body as the SDK method's keyword arguments (fields it has no parameter for: ``extra_body``)."""
    params = inspect.signature(method).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):  # a wrapper: it takes them all
        return {k: v for k, v in body.items() if k != "stream"}
    kwargs = {k: v for k, v in body.items() if k in params and k != "stream"}
    rest = {k: v for k, v in body.items() if k not in params and k != "stream"}
    if rest and "extra_body" in params:
        kwargs["extra_body"] = rest
    return kwargs


async def _call(vendor: str, client: Any, e: Exchange) -> None:
    body = dict(e.request_body)
    stream = bool(body.get("stream"))
    if vendor == "openai":
        method = (client.embeddings.create if e.path.endswith("/embeddings") else
                  client.responses.create if e.path.endswith("/responses") else
                  client.responses.compact if e.path.endswith("/responses/compact") else
                  client.chat.completions.create)
    elif vendor == "anthropic":
        method = client.messages.create
    elif e.path.endswith("/chat"):
        method = client.chat_stream if stream else client.chat
    else:
        method = getattr(client, e.path.rsplit("/", 1)[1])
    kwargs = _kwargs(method, body)
    if stream and vendor != "cohere":
        kwargs["stream"] = True
    if stream:
        result = method(**kwargs)
        await drain(await run(result) if vendor != "cohere" else result)
    else:
        await run(method(**kwargs))


def _ck_answer(e: Exchange, provider: str) -> Any:
    """The same answer through computekit's own client: its cost, or the error it raises."""
    server = Server(httpx, [_reply(e)])
    client = ck.Client(config=None, ledger="none", providers={provider: {"api_key": KEY}}, prices=PRICES,
                       retry={"max_retries": 0}, http_client=httpx.Client(transport=httpx.MockTransport(server)))
    body = e.request_body
    model = f"{provider}:{body['model']}"
    try:
        if e.path.endswith(("/embeddings", "/embed")):
            inputs = body.get("input", body.get("texts"))
            return client.embed(model, inputs).cost.total
        if e.path.endswith("/rerank"):
            return client.rerank(model, body["query"], body["documents"]).cost.total
        # The answer is what is priced (and the request's built-in tools, for the Responses API; a compaction is
        # priced as a Responses answer).
        responses = e.path.endswith(("/responses", "/responses/compact"))
        options: dict[str, Any] = {"api": "responses", "tools": body["tools"]} if responses and body.get(
            "tools") else {"api": "responses"} if responses else {}
        if body.get("stream"):
            with client.stream(model, "hi", **options) as s:
                for _ in s:
                    pass
            return s.result.cost.total
        return client.complete(model, "hi", **options).cost.total
    except ck.ProviderError as err:
        return err


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("vendor", "e"), EXCHANGES)
async def test_a_recording_through_the_sdk_costs_what_it_costs_through_computekit(
        vendor: str, e: Exchange, is_async: bool, tmp_path: Any) -> None:
    require_conformance_dir()
    lib = _lib_of(vendor)
    server = Server(lib, [_reply(e)])
    ckc = ck.Client(config=None, ledger=f"sqlite:///{tmp_path / 'ck.db'}", prices=PRICES)
    client = ck.instrument(sdk_client(vendor, server, is_async, max_retries=0), using=ckc)
    expected = _ck_answer(e, SDKS[vendor].provider)
    if e.status >= 400:
        with pytest.raises(_sdk_error(vendor)):  # the application still gets the SDK's own error
            await _call(vendor, client, e)
    else:
        await _call(vendor, client, e)
    ckc._core.flush()
    [row] = ckc.ledger.rows()
    assert row.model == e.request_body["model"]
    if isinstance(expected, ck.ProviderError):
        assert (row.outcome, row.status, row.error_type) == ("error", e.status, type(expected).__name__)
        return
    assert row.outcome == "success"
    assert row.cost == expected  # None for both when the tables have no price for the model (two recordings)


def test_the_recordings_cover_every_sdk_and_streams() -> None:
    require_conformance_dir()
    covered = {(p.values[0], bool(p.values[1].request_body.get("stream"))) for p in EXCHANGES}
    assert covered >= {("openai", False), ("openai", True), ("anthropic", False), ("anthropic", True),
                       ("cohere", False), ("cohere", True)}


def test_the_responses_recordings_include_priced_answers_and_streams() -> None:
    """The Responses API's recordings are priced (not just both unknown), streamed and not."""
    require_conformance_dir()
    priced = set()
    for p in EXCHANGES:
        e = p.values[1]
        if e.path.endswith("/responses") and e.status < 400:
            cost = _ck_answer(e, "openai")
            if isinstance(cost, Decimal) and cost > 0:
                priced.add(bool(e.request_body.get("stream")))
    assert priced == {False, True}


# ------------------------------------------------------------------------------------------ replicate


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_recorded_replicate_run_is_priced_once_from_its_gpu_time(is_async: bool, tmp_path: Any) -> None:
    """``replicate.run`` as recorded: the create (by version id), the version lookup and eleven polls. The run is
    recorded once, when a poll finds it ended, under the model the host names, at the per-second price of the
    hardware configured for it (from computekit's GPU table)."""
    from computekit.pricing import PriceBook

    replicate = sdk("replicate")
    require_conformance_dir()
    exchanges = load("replicate/run-poll-until-succeeded.yaml")
    server = Server(httpx, [_reply(e) for e in exchanges])
    ckc = ck.Client(config=None, ledger=f"sqlite:///{tmp_path / 'ck.db'}",
                    providers={"replicate": {"hardware": {"stability-ai/sdxl": "gpu-a40-large"}}})
    client = replicate.Client(api_token="r8_" + "x" * 30, transport=httpx.MockTransport(server))
    client.poll_interval = 0
    ck.instrument(client, using=ckc)
    created = exchanges[0]
    ref = f"stability-ai/sdxl:{created.request_body['version']}"
    with ck.tags(feature="images"):
        if is_async:
            await client.async_run(ref, input=created.request_body["input"], use_file_output=False)
        else:
            client.run(ref, input=created.request_body["input"], use_file_output=False)
    assert [(r.method, r.url.path) for r in server.requests] == [(e.method, e.path) for e in exchanges]
    ckc._core.flush()
    [row] = ckc.ledger.rows()
    ended = exchanges[-1].json()
    seconds = Decimal(str(ended["metrics"]["predict_time"]))
    per_second = PriceBook().per_second("replicate", "gpu-a40-large")
    assert per_second is not None
    assert (row.verb, row.model, row.outcome, row.tags) == ("predict", "stability-ai/sdxl", "success",
                                                             {"feature": "images"})
    assert (row.gpu_seconds, row.cost) == (seconds, seconds * per_second[0])
