"""Conformance: the real fine-tuning recordings in ``shared/conformance`` (OpenAI files and fine-tuning jobs,
Replicate trainings) through the adapters and through ``ck.Client`` / ``ck.AsyncClient``.

Two levels, as for the other conformance modules: the adapter (``build_*`` / ``parse_*`` / ``map_error`` on the
recorded bytes), and the client (recordings turned into vcrpy cassettes, replayed with the network off; requests
matched on method and URL, and what computekit sent compared with what was recorded where the recording has it).

What the recordings do not hold, and how it is bridged (each said where it is used):

- no recorded GET of one OpenAI job (SOURCES.md, coverage gaps): the job objects of the recorded *lists* are served
  as the answer to a GET of that job (``served_as_get``), unchanged;
- the recorded upload (a Ruby multipart body) carries the training file itself: it is read back out of the body and
  used as the training data of the launches below, so the estimate is of the very file that was uploaded.
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
from _clients import MODES, Sleeps, close, policy
from _conformance import Exchange, load, require_conformance_dir, to_vcr
from pydantic import SecretStr

import computekit as ck
from computekit._config import RoutingConfig
from computekit._finetune import load_training
from computekit.adapters._base import FineTuneRequest, HTTPResponse, ProviderSettings
from computekit.adapters.openai import OpenAIAdapter
from computekit.adapters.replicate import ReplicateAdapter
from computekit.pricing import PriceBook
from computekit.routing import Router

pytestmark = pytest.mark.conformance

UPLOAD = "openai/files-upload-fine-tune-multipart.yaml"
FILES = "openai/files-upload-get-delete.json"
CREATE_CANCEL_EVENTS = "openai/fine-tuning-create-cancel-events.json"
LIST_SUCCEEDED = "openai/fine-tuning-jobs-list-succeeded.yaml"
LIST_FAILED = "openai/fine-tuning-jobs-list-with-failed.json"
R_CREATE = "replicate/trainings-create.yaml"
R_GET = "replicate/trainings-get.yaml"
R_CANCEL = "replicate/trainings-cancel.yaml"
R_404 = "replicate/trainings-create-invalid-destination-404.yaml"

EXERCISED = (UPLOAD, FILES, CREATE_CANCEL_EVENTS, LIST_SUCCEEDED, LIST_FAILED, R_CREATE, R_GET, R_CANCEL, R_404)
NOT_MADE = {
    (FILES, 1): "GET /v1/files/{id}: computekit reads no file metadata (the upload's answer names the file)",
    (FILES, 2): "DELETE /v1/files/{id}: computekit does not delete training files (the job may still need them)",
}

KEY = "sk-conformance-0123456789abcdef"
TOKEN = "r8_conformance0123456789abcdef"
HARDWARE = "gpu-a40-large"


def openai_adapter() -> OpenAIAdapter:
    return OpenAIAdapter(ProviderSettings(name="openai", base_url="https://api.openai.com/v1",
                                          api_key=SecretStr(KEY), timeout=600.0))


def replicate_adapter() -> ReplicateAdapter:
    return ReplicateAdapter(ProviderSettings(name="replicate", base_url=ReplicateAdapter.default_base_url,
                                             api_key=SecretStr(TOKEN), timeout=600.0))


def resp(ex: Exchange, content: bytes | None = None) -> HTTPResponse:
    return HTTPResponse(status=ex.status, headers=ex.headers, content=ex.content if content is None else content)


def uploaded_lines() -> list[str]:
    """The JSONL training file inside the recorded multipart upload, line by line."""
    [ex] = load(UPLOAD)
    body = ex.request_body
    assert isinstance(body, str)
    start = body.index("\r\n\r\n", body.index('name="file"')) + 4
    end = body.index("\r\n--", start)
    return [ln for ln in body[start:end].split("\n") if ln.strip()]


def uploaded_file(tmp_path: Path) -> Path:
    path = tmp_path / "sarcastic.jsonl"
    path.write_text("\n".join(uploaded_lines()) + "\n", "utf-8")
    return path


def served_as_get(job: dict[str, Any], like: Exchange) -> Exchange:
    """A recorded list's job object, served unchanged as the answer to GET /v1/fine_tuning/jobs/{id}."""
    return Exchange(file=like.file, index=like.index, format=like.format, method="GET",
                    uri=f"https://api.openai.com/v1/fine_tuning/jobs/{job['id']}", request_headers={},
                    request_body=None, status=200, headers=like.headers, content=json.dumps(job).encode())


def jobs_in(rel: str) -> list[dict[str, Any]]:
    [ex] = load(rel)
    data = ex.json()["data"]
    assert isinstance(data, list)
    return data


def training_price(model: str) -> Decimal:
    rates = PriceBook().training("openai", model)
    assert rates is not None
    assert rates.per_mtok is not None
    return rates.per_mtok / Decimal(1_000_000)


def client_for(mode: str, ledger: str, **providers: Any) -> tuple[Any, Sleeps]:
    sleeps = Sleeps()
    cls = ck.Client if mode == "sync" else ck.AsyncClient
    client = cls(config=None, providers=providers or {"openai": {"api_key": KEY}}, ledger=ledger,
                 retry_policy=policy(sleeps, max_retries=0),
                 router=Router(RoutingConfig(), clock=sleeps.clock))
    return client, sleeps


def cassette(tmp_path: Path, exchanges: list[Exchange], sent: list[Any]) -> Any:
    path = tmp_path / "cassette.yaml"
    path.write_text(yaml.safe_dump(to_vcr(exchanges), allow_unicode=True), "utf-8")

    def seen(request: Any) -> Any:
        sent.append(request)
        return request

    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query"],
                       before_record_request=seen)
    return recorder.use_cassette(str(path))


async def run(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def on_job(job: ck.FineTuneJob, name: str, *args: Any, **kwargs: Any) -> Any:
    if isinstance(job._client, ck.AsyncClient):
        return await getattr(job, f"async_{name}")(*args, **kwargs)
    return getattr(job, name)(*args, **kwargs)


def bodies(sent: list[Any], path: str) -> list[Any]:
    """The distinct bodies computekit sent to ``path`` (vcrpy shows a live request to the hook more than once;
    the cassette's own requests carry no headers)."""
    out: list[Any] = []
    for r in sent:
        if r.path == path and r.headers and r.body not in out:
            out.append(r.body)
    return out


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    require_conformance_dir()
    return str(request.param)


# ------------------------------------------------------------------------------------------------ inventory


def test_every_fine_tuning_recording_is_exercised_here() -> None:
    """The files the OpenAI and Replicate conformance modules leave to fine-tuning are the ones this module
    replays, and every exchange in them is exercised or listed in NOT_MADE with the reason."""
    require_conformance_dir()
    from test_openai_conformance import UNSUPPORTED as OPENAI_LEFT
    from test_replicate_conformance import UNSUPPORTED as REPLICATE_LEFT

    assert set(OPENAI_LEFT) | set(REPLICATE_LEFT) == set(EXERCISED)
    assert all("test_finetune_conformance" in why for why in {**OPENAI_LEFT, **REPLICATE_LEFT}.values())
    for rel in EXERCISED:
        for ex in load(rel):
            assert ("/fine_tuning/" in ex.path or "/files" in ex.path or "/trainings" in ex.path), ex.id
    assert set(NOT_MADE) <= {(rel, ex.index) for rel in EXERCISED for ex in load(rel)}


# ------------------------------------------------------------------------------------------------ OpenAI: files


def test_the_recorded_training_file_passes_validation_and_is_counted(tmp_path: Path) -> None:
    require_conformance_dir()
    lines = uploaded_lines()
    adapter = openai_adapter()
    spec = adapter.finetune_spec("gpt-3.5-turbo-0613")
    assert spec.encoding == "cl100k_base"  # gpt-3.5 counts with cl100k (tiktoken's model table)
    data = load_training(uploaded_file(tmp_path), spec, "supervised", None)
    assert data.examples == len(lines) == 10
    assert data.tokens > 0
    assert data.counted_by == "tiktoken cl100k_base"
    assert [json.loads(x) for x in data.content.decode().splitlines()] == [json.loads(x) for x in lines]


def test_build_upload_matches_the_recorded_multipart_request(tmp_path: Path) -> None:
    require_conformance_dir()
    [ex] = load(UPLOAD)
    adapter = openai_adapter()
    data = load_training(uploaded_file(tmp_path), adapter.finetune_spec("gpt-3.5-turbo"), "supervised", None)
    [http] = adapter.build_uploads(FineTuneRequest(model="gpt-3.5-turbo", training=data), data, "training")
    assert (http.method, http.url) == (ex.method, ex.uri)
    assert http.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert ex.request_headers["content-type"].startswith("multipart/form-data; boundary=")
    sent = (http.content or b"").decode()
    recorded = ex.request_body
    for part in ('name="purpose"\r\n\r\nfine-tune', 'name="file"; filename="sarcastic.jsonl"'):
        assert part in sent
        assert part in recorded
    assert http.headers["authorization"] == f"Bearer {KEY}"
    assert adapter.parse_upload(FineTuneRequest(model="x", training=data), data, resp(ex)) == ex.json()["id"]


def test_parse_upload_of_the_dotnet_recording() -> None:
    require_conformance_dir()
    ex = load(FILES)[0]
    data = load_training([{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
                         * 10, openai_adapter().finetune_spec("gpt-4o-mini"), "supervised", None)
    assert openai_adapter().parse_upload(FineTuneRequest(model="x", training=data), data, resp(ex)) == ex.json()["id"]
    for (rel, i), why in NOT_MADE.items():
        assert load(rel)[i].method in why


# ------------------------------------------------------------------------------------------------ OpenAI: jobs


@pytest.mark.parametrize("rel", [LIST_SUCCEEDED, LIST_FAILED])
def test_every_recorded_job_object_parses(rel: str) -> None:
    [ex] = load(rel)
    words = {"succeeded": "succeeded", "cancelled": "canceled", "failed": "failed", "validating_files": "validating"}
    for raw in jobs_in(rel):
        job = openai_adapter().parse_finetune("", resp(ex, json.dumps(raw).encode()))
        assert (job.id, job.base_model, job.status) == (raw["id"], raw["model"], words[raw["status"]])
        assert job.trained_tokens == raw["trained_tokens"]
        assert job.fine_tuned_model == (f"openai:{raw['fine_tuned_model']}" if raw["fine_tuned_model"] else None)
        assert job.error == (raw["error"] or None)
        assert job.done


def test_build_finetune_matches_the_recorded_create_request() -> None:
    require_conformance_dir()
    create = load(CREATE_CANCEL_EVENTS)[0]
    adapter = openai_adapter()
    data = load_training([{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
                         * 10, adapter.finetune_spec("gpt-3.5-turbo"), "supervised", None)
    data.ref = create.request_body["training_file"]
    http = adapter.build_finetune(FineTuneRequest(model="gpt-3.5-turbo", training=data))
    assert (http.method, http.url, http.json) == (create.method, create.uri, create.request_body)


async def test_replay_upload_create_cancel_events(mode: str, tmp_path: Path) -> None:
    """Launch on the very file that was uploaded: upload (Ruby recording), create, cancel and events (.NET)."""
    upload = load(UPLOAD)
    create, cancel, events = load(CREATE_CANCEL_EVENTS)
    client, _ = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}")
    sent: list[Any] = []
    with cassette(tmp_path, [*upload, create, cancel, events], sent) as cass:
        job = await run(client.finetune("openai:gpt-3.5-turbo", training_file=uploaded_file(tmp_path)))
        assert (job.id, job.status, job.base_model) == (create.json()["id"], "validating", "gpt-3.5-turbo-0125")
        stopped = await on_job(job, "cancel")
        [event] = await on_job(stopped, "events", limit=1)
        assert cass.all_played
        assert cass.play_count == 4
    await close(client)
    # what computekit sent for the job: the recorded body, with the file id the recorded upload answered
    [body] = bodies(sent, "/v1/fine_tuning/jobs")
    assert json.loads(body) == {**create.request_body, "training_file": upload[0].json()["id"]}
    assert stopped.status == "canceled"
    assert event.message == events.json()["data"][0]["message"]
    assert stopped.estimate == job.estimate
    assert job.estimate.total is not None  # gpt-3.5-turbo has a training price
    assert stopped.cost.total is None  # canceled with no trained tokens reported: unknown, not 0
    [row] = client.ledger.rows()
    assert (row.verb, row.outcome, row.error_type, row.cost) == ("finetune", "error", "FineTuneCanceled", None)
    assert row.once_key == f"finetune:openai:{create.json()['id']}"


async def test_replay_succeeded_jobs_priced_from_trained_tokens_once(mode: str, tmp_path: Path) -> None:
    """Every succeeded job in the recorded list, re-attached (its object served as the GET answer), is priced at
    trained_tokens x the training price and written to the ledger once — also when a second client attaches."""
    [ex] = load(LIST_SUCCEEDED)
    done = [j for j in jobs_in(LIST_SUCCEEDED) if j["status"] == "succeeded"]
    assert len(done) == 19
    gets = [served_as_get(j, ex) for j in done]
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    a, _ = client_for(mode, ledger)
    b, _ = client_for(mode, ledger)
    attach = ck.FineTuneJob.async_attach if mode == "async" else ck.FineTuneJob.attach
    sent: list[Any] = []
    with cassette(tmp_path, gets + gets, sent) as cass:
        jobs = [await run(attach(f"openai:{j['id']}", client=a)) for j in done]
        again = [await run(attach(f"openai:{j['id']}", client=b)) for j in done]
        assert cass.all_played
    await close(a)
    await close(b)
    for job, raw, twin in zip(jobs, done, again, strict=True):
        assert job.cost.total == Decimal(raw["trained_tokens"]) * training_price(raw["model"])
        assert twin.cost.total == job.cost.total
        assert job.fine_tuned_model == f"openai:{raw['fine_tuned_model']}"
    rows = a.ledger.rows()
    assert len(rows) == 19
    assert {r.once_key for r in rows} == {f"finetune:openai:{j['id']}" for j in done}
    assert sum((r.cost for r in rows if r.cost is not None), Decimal(0)) == sum(
        (Decimal(j["trained_tokens"]) * training_price(j["model"]) for j in done), Decimal(0))


async def test_replay_the_failed_job_surfaces_the_providers_error(mode: str, tmp_path: Path) -> None:
    [ex] = load(LIST_FAILED)
    [failed] = [j for j in jobs_in(LIST_FAILED) if j["status"] == "failed"]
    client, sleeps = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}")
    attach = ck.FineTuneJob.async_attach if mode == "async" else ck.FineTuneJob.attach
    sent: list[Any] = []
    with cassette(tmp_path, [served_as_get(failed, ex)], sent):
        job = await run(attach(f"openai:{failed['id']}", client=client))
        with pytest.raises(ck.FineTuneFailedError) as info:
            await on_job(job, "wait")
    await close(client)
    assert info.value.body == failed["error"]
    assert failed["error"]["message"] in str(info.value)
    assert info.value.job.id == failed["id"]
    assert sleeps.waits == []
    [row] = client.ledger.rows()
    assert (row.outcome, row.error_type, row.cost) == ("error", "FineTuneFailedError", None)


# ------------------------------------------------------------------------------------------------ Replicate


def _replicate_request(ex: Exchange) -> dict[str, Any]:
    path = ex.path.removeprefix("/v1/models/")
    name, version = path.split("/versions/")
    version = version.removesuffix("/trainings")
    inp = dict(ex.request_body["input"])
    key, url = next((k, v) for k, v in inp.items() if isinstance(v, str) and v.startswith("https://"))
    del inp[key]
    return {"model": f"replicate:{name}:{version}", "training_file": {key: url}, "hyperparameters": inp,
            "destination": ex.request_body["destination"]}


@pytest.mark.parametrize("rel", [R_CREATE, R_CANCEL, R_404])
def test_build_training_matches_the_recorded_request(rel: str) -> None:
    ex = load(rel)[0]
    args = _replicate_request(ex)
    adapter = replicate_adapter()
    data = load_training(args["training_file"], adapter.finetune_spec("x"), "supervised", None)
    req = FineTuneRequest(model=args["model"].removeprefix("replicate:"), training=data,
                          hyperparameters=args["hyperparameters"], destination=args["destination"])
    adapter.check_finetune(req)
    http = adapter.build_finetune(req)
    assert (http.method, http.url, http.json) == (ex.method, ex.uri, ex.request_body)


@pytest.mark.parametrize(("rel", "index", "status"), [(R_CREATE, 0, "queued"), (R_GET, 0, "running"),
                                                      (R_CANCEL, 1, "canceled")])
def test_parse_recorded_trainings(rel: str, index: int, status: str) -> None:
    ex = load(rel)[index]
    raw = ex.json()
    job = replicate_adapter().parse_finetune("", resp(ex))
    assert (job.id, job.status) == (raw["id"], status)
    assert job.base_model == f"{raw['model']}:{raw['version']}"
    assert job.metrics == (raw.get("metrics") or {})
    assert job.fine_tuned_model is None


async def test_replay_training_create_then_cancel_priced_by_gpu_seconds(mode: str, tmp_path: Path) -> None:
    create, cancel = load(R_CANCEL)
    args = _replicate_request(create)
    model = args.pop("model")
    client, _ = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}",
                           replicate={"api_key": TOKEN, "hardware": {model.removeprefix("replicate:"): HARDWARE}})
    sent: list[Any] = []
    with cassette(tmp_path, [create, cancel], sent) as cass:
        job = await run(client.finetune(model, **args))
        assert job.status == "queued"
        assert job.estimate.total is None  # GPU time is known only at the end
        stopped = await on_job(job, "cancel")
        assert cass.all_played
    await close(client)
    assert [json.loads(b) for b in bodies(sent, create.path)] == [create.request_body]
    seconds = Decimal(str(cancel.json()["metrics"]["predict_time"]))
    found = PriceBook().per_second("replicate", HARDWARE)
    assert found is not None
    assert stopped.status == "canceled"
    assert stopped.cost.total == seconds * found[0]
    [row] = client.ledger.rows()
    assert (row.outcome, row.gpu_seconds, row.cost) == ("error", seconds, stopped.cost.total)


async def test_replicate_training_estimate_is_the_max_seconds_bound_when_configured(mode: str,
                                                                                    tmp_path: Path) -> None:
    """GPU time is unknown before the run; with [providers.replicate] max_seconds (and hardware) the estimate is
    that ceiling x the hardware's per-second price, marked estimated, and no request is sent for a dry run."""
    create = load(R_CANCEL)[0]
    args = _replicate_request(create)
    model = args.pop("model")
    hardware = {model.removeprefix("replicate:"): HARDWARE}
    client, _ = client_for(mode, "none", replicate={"api_key": TOKEN, "hardware": hardware, "max_seconds": 900})
    est = await run(client.finetune(model, **args, dry_run=True))
    unbounded, _ = client_for(mode, "none", replicate={"api_key": TOKEN, "hardware": hardware})
    none = await run(unbounded.finetune(model, **args, dry_run=True))
    await close(client)
    await close(unbounded)
    found = PriceBook().per_second("replicate", HARDWARE)
    assert found is not None
    assert est.estimate.total == Decimal(900) * found[0]
    assert est.estimate.estimated is True
    assert "max_seconds" in est.estimate.lines[0].item
    assert none.estimate.total is None  # without a bound, nothing predicts GPU time: unknown, never 0


async def test_replay_training_get(mode: str, tmp_path: Path) -> None:
    [get] = load(R_GET)
    client, _ = client_for(mode, "none", replicate={"api_key": TOKEN})
    attach = ck.FineTuneJob.async_attach if mode == "async" else ck.FineTuneJob.attach
    sent: list[Any] = []
    with cassette(tmp_path, [get], sent) as cass:
        job = await run(attach(f"replicate:{get.json()['id']}", client=client))
        assert cass.all_played
    await close(client)
    assert (job.status, job.cost.total) == ("running", None)


async def test_replay_training_invalid_destination_404(mode: str, tmp_path: Path) -> None:
    [ex] = load(R_404)
    args = _replicate_request(ex)
    client, _ = client_for(mode, f"sqlite:///{tmp_path / 'l.db'}", replicate={"api_key": TOKEN})
    sent: list[Any] = []
    with cassette(tmp_path, [ex], sent), pytest.raises(ck.NotFoundError) as info:
        await run(client.finetune(args.pop("model"), **args))
    await close(client)
    assert info.value.status == 404
    assert info.value.body == ex.json()
    assert ex.json()["detail"] in str(info.value)
    assert client.ledger.rows() == []  # nothing was launched, nothing billed


async def test_replicate_training_needs_a_version_and_a_destination(tmp_path: Path) -> None:
    client, _ = client_for("sync", "none", replicate={"api_key": TOKEN})
    with pytest.raises(ck.InvalidRequestError, match="destination"):
        client.finetune("replicate:o/n:v1", training_file="https://example.com/d.zip")
    with pytest.raises(ck.InvalidRequestError, match="version"):
        client.finetune("replicate:o/n", training_file="https://example.com/d.zip", destination="me/m")
    with pytest.raises(ck.InvalidRequestError, match="URL"):
        client.finetune("replicate:o/n:v1", training_file=[{"messages": []}], destination="me/m")
    client.close()
