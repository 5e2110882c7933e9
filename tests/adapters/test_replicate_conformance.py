"""Conformance: every real Replicate recording in ``shared/conformance/replicate`` through the Replicate adapter.

Each file is exercised here (each of its exchanges, or listed with the reason it is not) or listed whole in
:data:`UNSUPPORTED`. Expectations come from the recorded JSON: status (through Replicate's documented status
words), output, logs, error, URLs, and ``metrics.predict_time`` as the GPU-seconds; the cost is those seconds x the
per-second price of the hardware passed, read from ``PriceBook`` (computekit's ``gpu.toml``), never a constant.

Two levels: the adapter (``build_predict`` / ``parse_prediction`` / ``map_error`` on the recorded bytes), and the
client (the recording turned into a vcrpy cassette and replayed through ``ck.Client`` / ``ck.AsyncClient`` on the
default transports, network off, polling on a fake clock).
"""

from __future__ import annotations

import inspect
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import vcr
import yaml
from _conformance import Exchange, conformance_dir, files, load, require_conformance_dir, to_vcr
from pydantic import SecretStr

import computekit as ck
from computekit._config import RetryConfig, RoutingConfig
from computekit._exceptions import AuthenticationError
from computekit._retry import RetryPolicy
from computekit.adapters._base import HTTPResponse, PredictRequest, ProviderSettings
from computekit.adapters.replicate import ReplicateAdapter
from computekit.pricing import PriceBook
from computekit.routing import Router

pytestmark = pytest.mark.conformance

FOLDER = "replicate"
TRAININGS = "trainings (fine-tuning): exercised by test_finetune_conformance"
UNSUPPORTED: dict[str, str] = {
    "replicate/trainings-cancel.yaml": TRAININGS,
    "replicate/trainings-create-invalid-destination-404.yaml": TRAININGS,
    "replicate/trainings-create.yaml": TRAININGS,
    "replicate/trainings-get.yaml": TRAININGS,
}

# Exchanges inside exercised files that computekit does not make, with the reason (none left: the model and
# version lookups feed input validation, and the urls.stream SSE feeds Prediction.stream()).

# Replicate's documented status words (OpenAPI schemas_prediction_response.status) -> computekit's.
STATUS = {"starting": "queued", "processing": "running", "succeeded": "succeeded", "failed": "failed",
          "canceled": "canceled", "aborted": "canceled"}

HARDWARE = "gpu-a40-large"
TOKEN = "r8_conformance0123456789abcdef"

MODES = ("sync", "async")


def kind(ex: Exchange) -> str | None:
    """What an exchange exercises, or ``None`` when computekit does not make that request."""
    path = ex.path
    if ex.method == "GET" and ex.is_sse:
        return "stream"
    if not ex.host.endswith("api.replicate.com"):
        return None
    if ex.method == "GET" and path.startswith("/v1/models/"):
        return "lookup"  # the model (its latest version) or the version: its input schema
    if ex.method == "POST" and path.endswith("/cancel") and path.startswith("/v1/predictions/"):
        return "cancel"
    if ex.method == "POST" and path.endswith("/predictions"):
        return "error" if ex.status >= 400 else "create"
    if ex.method == "GET" and path.startswith("/v1/predictions/"):
        return "get"
    return None


def skip_reason(ex: Exchange) -> str:
    raise AssertionError(f"{ex.id}: not exercised and no reason known")


ALL_FILES = files(FOLDER) if conformance_dir().is_dir() else []
MISSING = pytest.param(None, id="conformance-dir-missing")


def exercised() -> list[Exchange]:
    return [ex for rel in ALL_FILES if rel not in UNSUPPORTED for ex in load(rel) if kind(ex)]


def adapter() -> ReplicateAdapter:
    return ReplicateAdapter(ProviderSettings(name="replicate", base_url=ReplicateAdapter.default_base_url,
                                             api_key=SecretStr(TOKEN), timeout=600.0))


def http_response(ex: Exchange) -> HTTPResponse:
    return HTTPResponse(status=ex.status, headers=ex.headers, content=ex.content, url=ex.uri)


def per_second(sku: str = HARDWARE) -> Decimal:
    found = PriceBook().per_second("replicate", sku)
    assert found is not None
    return found[0]


def model_id(ex: Exchange) -> str:
    """The computekit model id that sends the recorded create request."""
    path = ex.path.removeprefix("/v1/")
    if path == "predictions":
        version = ex.request_body["version"]
        return f"{ex.json().get('model') or 'owner/name'}:{version}" if ex.status < 400 else f"x/y:{version}"
    return path.removeprefix("models/").removesuffix("/predictions")


# ------------------------------------------------------------------------------------------------ inventory


def test_conformance_directory_present() -> None:
    require_conformance_dir()
    assert ALL_FILES


def test_unsupported_list_names_real_files() -> None:
    require_conformance_dir()
    assert set(UNSUPPORTED) <= set(ALL_FILES)
    for rel in UNSUPPORTED:
        assert all("/trainings" in ex.path for ex in load(rel)), f"{rel} holds a non-training exchange"


@pytest.mark.parametrize("rel", ALL_FILES or [MISSING])
def test_every_file_is_exercised_or_listed(rel: str | None) -> None:
    require_conformance_dir()
    assert rel is not None
    if rel in UNSUPPORTED:
        return
    exchanges = load(rel)
    assert any(kind(ex) for ex in exchanges), f"{rel}: nothing exercised; list it in UNSUPPORTED with why"
    for ex in exchanges:
        if kind(ex) is None:
            assert skip_reason(ex)


def test_counts() -> None:
    require_conformance_dir()
    done = {ex.file for ex in exercised()}
    assert len(ALL_FILES) == 11
    assert (len(done), len(UNSUPPORTED)) == (7, 4)
    assert done | set(UNSUPPORTED) == set(ALL_FILES)
    kinds = [kind(ex) for ex in exercised()]
    assert (kinds.count("create"), kinds.count("get"), kinds.count("cancel"), kinds.count("error")) == (7, 13, 1, 1)
    assert (kinds.count("lookup"), kinds.count("stream")) == (5, 1)
    skipped = [ex for rel in done for ex in load(rel) if kind(ex) is None]
    assert skipped == []


# ------------------------------------------------------------------------------------------------ adapter level


def _params(*kinds: str) -> list[Any]:
    if not ALL_FILES:
        return [MISSING]
    return [pytest.param(ex, id=ex.id) for ex in exercised() if kind(ex) in kinds]


@pytest.mark.parametrize("ex", _params("create", "get", "cancel"))
def test_parse_prediction(ex: Exchange | None) -> None:
    assert ex is not None
    raw = ex.json()
    p = adapter().parse_prediction("some/model", http_response(ex))
    assert p.provider == "replicate"
    assert p.id == raw["id"]
    assert p.status == STATUS[raw["status"]]
    assert p.done == (raw["status"] in ("succeeded", "failed", "canceled", "aborted"))
    assert p.output == raw.get("output")
    assert p.logs == (raw.get("logs") or "")
    assert p.error == raw.get("error")
    assert p.urls == {k: v for k, v in raw["urls"].items() if isinstance(v, str)}
    assert p.metrics == (raw.get("metrics") or {})
    seconds = (raw.get("metrics") or {}).get("predict_time")
    assert p.usage.gpu_seconds == (Decimal(str(seconds)) if seconds is not None else None)
    assert p.raw == raw


@pytest.mark.parametrize("ex", _params("create", "error"))
def test_build_predict_matches_the_recorded_request(ex: Exchange | None) -> None:
    assert ex is not None
    sent = ex.request_body
    wait = ex.request_headers.get("prefer", "").startswith("wait")
    http = adapter().build_predict(PredictRequest(model=model_id(ex), input=sent["input"], wait=wait))
    assert http.method == "POST"
    assert http.url == ex.uri
    expected = {k: v for k, v in sent.items() if k != "stream"}  # the SDK's stream=True: streaming is not built
    assert http.json == expected
    assert http.headers["authorization"] == f"Bearer {TOKEN}"
    if wait:
        assert http.headers["prefer"].startswith("wait")
    else:
        assert "prefer" not in http.headers


@pytest.mark.parametrize("ex", _params("error"))
def test_map_error(ex: Exchange | None) -> None:
    assert ex is not None
    raw = ex.json()
    err = adapter().map_error(http_response(ex), "x/y")
    assert isinstance(err, AuthenticationError)
    assert err.status == ex.status == 401
    assert err.body == raw
    assert raw["detail"] in str(err)
    assert err.provider == "replicate"


def test_sse_exchange_is_the_stream_url_of_its_prediction() -> None:
    require_conformance_dir()
    create, stream = load("replicate/predictions-stream-sse.yaml")
    p = adapter().parse_prediction("meta/llama-2-70b-chat", http_response(create))
    assert p.urls["stream"] == stream.uri
    assert stream.is_sse
    req = adapter().build_prediction_stream(p)
    assert (req.method, req.url, req.stream) == ("GET", stream.uri, True)
    assert req.headers["accept"] == "text/event-stream"


def _sse_events(body: bytes) -> list[Any]:
    from computekit._sse import SSEDecoder

    decoder = SSEDecoder(1 << 20)
    events = decoder.feed(body)
    last, _ = decoder.close()
    return events + last


def test_recorded_sse_becomes_output_pieces_until_done() -> None:
    require_conformance_dir()
    create, stream = load("replicate/predictions-stream-sse.yaml")
    p = adapter().parse_prediction("meta/llama-2-70b-chat", http_response(create))
    events = _sse_events(stream.content)
    pieces: list[Any] = []
    done_at = None
    for i, ev in enumerate(events):
        update = adapter().parse_stream_event(p, ev)
        pieces += update.output
        if update.done:
            done_at = i
            break
    # The recorded text, from its output events: the "\n" of multi-line data included, nothing after "done".
    expected = [ev.data for ev in events if ev.event == "output"]
    assert pieces == expected
    assert done_at == len(events) - 1
    assert events[done_at].event == "done"
    text = "".join(pieces)
    assert text.startswith("Sure, here's a joke about OpenTelemetry:\n\nWhy did the OpenTelemetry agent go to therapy?")
    assert text.endswith("Is there anything else I can assist you with?")


@pytest.mark.parametrize("ex", _params("lookup"))
def test_parse_model_info_reads_the_recorded_input_schema(ex: Exchange | None) -> None:
    assert ex is not None
    raw = ex.json()
    version = raw if "/versions/" in ex.path else raw["latest_version"]
    info = adapter().parse_model_info("stability-ai/sdxl", None, http_response(ex))
    assert info.input_schema == version["openapi_schema"]["components"]["schemas"]["Input"]
    assert info.schema_root == version["openapi_schema"]
    assert info.state["schema"] is True
    assert info.hardware is None  # Replicate reports no hardware for a model or version


def _sdxl_schema() -> tuple[Any, Any]:
    [ex] = [e for e in load("replicate/predictions-create.yaml") if "/versions/" in e.path]
    info = adapter().parse_model_info("stability-ai/sdxl", None, http_response(ex))
    return info.input_schema, info.schema_root


def test_recorded_inputs_pass_the_recorded_schema() -> None:
    require_conformance_dir()
    from computekit._schema import problems

    schema, root = _sdxl_schema()
    sent = [ex.request_body["input"] for rel in ALL_FILES for ex in load(rel)
            if kind(ex) == "create" and ex.request_body.get("version", "").startswith("39ed52f2")]
    assert len(sent) == 4
    for value in sent:
        assert problems(schema, value, root=root) == []


def test_the_recorded_schema_refuses_bad_input() -> None:
    require_conformance_dir()
    from computekit._schema import check_input

    schema, root = _sdxl_schema()
    with pytest.raises(ck.InputValidationError) as info:
        check_input(schema, {"prompt": "a corgi", "widht": 512, "num_outputs": 5, "refine": "sharpen",
                             "guidance_scale": "high"}, root=root, provider="replicate", model="stability-ai/sdxl")
    assert [f for f, _ in info.value.problems] == ["widht", "num_outputs", "refine", "guidance_scale"]
    assert "did you mean 'width'?" in str(info.value)
    assert "5 is above the maximum 4" in str(info.value)
    assert "'sharpen' is not one of 'no_refiner', 'expert_ensemble_refiner', 'base_image_refiner'" in str(info.value)


# ------------------------------------------------------------------------------------------------ client level


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    def __init__(self, clock: Clock) -> None:
        self.clock, self.waits = clock, []  # type: ignore[var-annotated]

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.now += seconds

    async def asleep(self, seconds: float) -> None:
        self(seconds)


async def run(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def client_for(mode: str, ledger: str) -> tuple[Any, Sleeps]:
    clock = Clock()
    sleeps = Sleeps(clock)
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    client = cls(config=None, providers={"replicate": {"api_key": TOKEN}}, ledger=ledger,
                 retry_policy=RetryPolicy(RetryConfig(max_retries=0), sleep=sleeps, asleep=sleeps.asleep),
                 router=Router(RoutingConfig(), clock=clock))
    return client, sleeps


def cassette(tmp_path: Path, exchanges: list[Exchange], sent: list[Any] | None = None) -> Any:
    """Replay ``exchanges`` (network off); the requests computekit sent are appended to ``sent``."""
    path = tmp_path / "cassette.yaml"
    path.write_text(yaml.safe_dump(to_vcr(exchanges), allow_unicode=True), "utf-8")

    def seen(request: Any) -> Any:
        if sent is not None:
            sent.append(request)
        return request

    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query"],
                       before_record_request=seen)
    return recorder.use_cassette(str(path))


async def close(client: Any) -> None:
    await run(client.aclose() if isinstance(client, ck.AsyncClient) else client.close())


def pick(rel: str, *indexes: int) -> list[Exchange]:
    exchanges = load(rel)
    return [exchanges[i] for i in indexes]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    require_conformance_dir()
    return str(request.param)


async def test_replay_run_poll_until_succeeded(mode: str, tmp_path: Path) -> None:
    rel = "replicate/run-poll-until-succeeded.yaml"
    exchanges = [ex for ex in load(rel) if kind(ex)]
    create, final = exchanges[0], exchanges[-1].json()
    client, sleeps = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}")
    with cassette(tmp_path, exchanges) as cass:
        p = await run(client.predict("replicate:" + model_id(create), create.request_body["input"], hardware=HARDWARE))
        assert cass.all_played
        assert cass.play_count == len(exchanges) == 13  # the version lookup (the input checked), create, 11 polls
    await close(client)
    assert p.status == "succeeded"
    assert final["status"] == "succeeded"
    assert p.id == final["id"]
    assert p.output == final["output"]
    assert p.logs == final["logs"]
    seconds = Decimal(str(final["metrics"]["predict_time"]))
    assert p.usage.gpu_seconds == seconds
    assert p.cost.total == seconds * per_second()
    assert len(sleeps.waits) == 11  # eleven polls
    [row] = client.ledger.rows()
    assert (row.verb, row.outcome, row.cost, row.gpu_seconds) == ("predict", "success", p.cost.total, seconds)


async def test_replay_create_then_get_succeeded(mode: str, tmp_path: Path) -> None:
    exchanges = (pick("replicate/predictions-create.yaml", 1, 2)
                 + pick("replicate/predictions-get-succeeded.yaml", 0, 1))
    create, final = exchanges[0], exchanges[-1].json()
    client, sleeps = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}")
    with cassette(tmp_path, exchanges) as cass:
        p = await run(client.predict("replicate:" + model_id(create), create.request_body["input"], hardware=HARDWARE))
        assert sleeps.waits == [0.5]
        again = await (p.async_refresh() if mode == "async" else run(p.refresh()))
        assert cass.all_played
    await close(client)
    seconds = Decimal(str(final["metrics"]["predict_time"]))
    assert p.output == final["output"]
    assert again.output == final["output"]
    assert p.cost.total == seconds * per_second()
    assert len(client.ledger.rows()) == 1  # the refresh of an ended run records nothing more


async def test_replay_cancel(mode: str, tmp_path: Path) -> None:
    exchanges = pick("replicate/predictions-cancel.yaml", 3, 4, 2)  # the version lookup: the input is checked
    create, final = exchanges[0], exchanges[1].json()
    client, _ = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}")
    with cassette(tmp_path, exchanges) as cass:
        p = await run(client.predict("replicate:" + model_id(create), create.request_body["input"], wait=False,
                                     hardware=HARDWARE))
        assert p.status == "queued"
        done = await (p.async_cancel() if mode == "async" else run(p.cancel()))
        assert cass.all_played
    await close(client)
    assert exchanges[1].uri == create.json()["urls"]["cancel"]
    assert done.status == "canceled" == final["status"]
    seconds = Decimal(str(final["metrics"]["predict_time"]))
    assert done.usage.gpu_seconds == seconds
    assert done.cost.total == seconds * per_second()
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type, row.cost) == ("error", "PredictionCanceled", done.cost.total)


@pytest.mark.parametrize(("rel", "index"), [
    ("replicate/models-predictions-create-blocking.yaml", 0),
    ("replicate/predictions-cancel.yaml", 0),
    ("replicate/predictions-create.yaml", 3),
    ("replicate/predictions-stream-sse.yaml", 0),
])
async def test_replay_create_without_waiting(mode: str, tmp_path: Path, rel: str, index: int) -> None:
    [create] = pick(rel, index)
    raw = create.json()
    client, sleeps = client_for(mode, "none")
    with cassette(tmp_path, [create]) as cass:
        # validate=False: not every recording holds the model lookup (those that do replay it above)
        p = await run(client.predict("replicate:" + model_id(create), create.request_body["input"], wait=False,
                                     validate=False))
        assert cass.all_played
    await close(client)
    assert (p.id, p.status, p.output) == (raw["id"], STATUS[raw["status"]], raw.get("output"))
    assert p.urls["get"] == raw["urls"]["get"]
    assert sleeps.waits == []
    assert p.cost is not None
    assert p.cost.total is None


async def test_replay_blocking_create_sends_prefer_wait_and_keeps_the_partial_output(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [create] = pick("replicate/models-predictions-create-blocking.yaml", 0)
    assert create.request_headers["prefer"] == "wait"
    raw = create.json()
    client, sleeps = client_for(mode, "none")
    sent: list[Any] = []
    with cassette(tmp_path, [create], sent) as cass:
        # the hold ended with the run still processing; the wait gives up before any poll (none is recorded)
        from computekit import _predictions

        monkeypatch.setattr(_predictions._Waiting, "timed_out", lambda self: True)
        with pytest.raises(ck.PredictionTimeoutError) as info:
            await run(client.predict("replicate:" + model_id(create), create.request_body["input"],
                                     cancel_on_timeout=False, validate=False))
        assert cass.all_played
    await close(client)
    live = [{k.lower(): v for k, v in r.headers.items()} for r in sent if r.headers]  # not the cassette's own
    assert live, "no request seen"
    assert {h["prefer"] for h in live} == {"wait=60"}
    assert {h["authorization"] for h in live} == {f"Bearer {TOKEN}"}
    p = info.value.prediction
    assert p.status == "running"
    assert p.output == raw["output"]
    assert "".join(p.output).startswith("\n\nFuzzy, gentle beasts")
    assert sleeps.waits == []


async def test_replay_401(mode: str, tmp_path: Path) -> None:
    [ex] = load("replicate/error-401-unauthenticated.yaml")
    client, _ = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}")
    with cassette(tmp_path, [ex]) as cass:
        with pytest.raises(AuthenticationError) as info:
            await run(client.predict("replicate:" + model_id(ex), ex.request_body["input"], validate=False))
        assert cass.all_played
    await close(client)
    assert info.value.status == 401
    assert info.value.body == json.loads(ex.content)
    assert "You did not pass a valid authentication token" in str(info.value)
    [row] = client.ledger.rows()
    assert (row.outcome, row.status, row.error_type) == ("error", 401, "AuthenticationError")


async def test_replay_stream(mode: str, tmp_path: Path) -> None:
    create, stream = load("replicate/predictions-stream-sse.yaml")
    raw = create.json()
    # The recording ends at the stream's "done" event; the prediction's final state after it is AUTHORED here
    # (a succeeded prediction of the same id, shaped like the recorded ones), so that the run can be priced.
    final = {**raw, "status": "succeeded", "output": [ev.data for ev in _sse_events(stream.content)
                                                        if ev.event == "output"],
             "metrics": {"predict_time": 1.52, "total_time": 1.9}}
    final_ex = Exchange(file="authored", index=0, format="vcrpy", method="GET", uri=raw["urls"]["get"],
                        request_headers={}, request_body=None, status=200, headers={"content-type": "application/json"},
                        content=json.dumps(final).encode())
    client, sleeps = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}")
    with cassette(tmp_path, [create, stream, final_ex]) as cass:
        p = await run(client.predict("replicate:" + model_id(create), create.request_body["input"], wait=False,
                                     validate=False, hardware=HARDWARE))
        if mode == "async":
            s = p.async_stream()
            pieces = [piece async for piece in s]
        else:
            s = p.stream()
            pieces = list(s)
        assert cass.all_played
    await close(client)
    assert "".join(pieces) == "".join(final["output"])
    assert sleeps.waits == []
    assert s.result.cost.total == Decimal("1.52") * per_second()
    assert len(client.ledger.rows()) == 1
