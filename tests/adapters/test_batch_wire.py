"""The batch APIs' wire formats, translated by each adapter: lines, batch objects, statuses and result lines.

The OpenAI and Anthropic exchanges are authored cassettes (``cassettes/test_batch_wire/``) validated against the
official specs in ``../shared/specs``; the adapter must build exactly their requests, in order, and read their
answers. Mistral's and Gemini's shapes come from their API references (no spec in ``shared/specs``).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from _paths import CASSETTES
from pydantic import SecretStr
from test_anthropic import schema_errors as anthropic_errors
from test_anthropic import spec_path as anthropic_spec_path
from test_cassette_specs import MARKER, SECRET_PATTERNS
from test_cassette_specs import _spec as openai_spec
from test_cassette_specs import errors as openai_errors
from test_cassette_specs import spec_path as openai_spec_path

from computekit._batch import BatchTotals, batch_estimate, prepare_batch, price_item, summarise
from computekit._exceptions import ContextWindowExceededError, InvalidRequestError, UnsupportedCapabilityError
from computekit._http import HTTPResponse
from computekit._types import Cost
from computekit.adapters._base import (
    BATCH_STATUSES,
    Adapter,
    BatchState,
    CompleteRequest,
    EmbedRequest,
    ProviderSettings,
)
from computekit.adapters._registry import adapter_class
from computekit.adapters.anthropic import AnthropicAdapter
from computekit.adapters.azure import AzureOpenAIAdapter, AzureSettings
from computekit.adapters.gemini import GeminiAdapter
from computekit.adapters.mistral import MistralAdapter
from computekit.adapters.openai import OpenAIAdapter
from computekit.pricing import BATCH_CONTEXT, PriceBook, PriceRef

HERE = CASSETTES / "test_batch_wire"
CLIENT = CASSETTES / "test_batch_client"
"""The same exchanges replayed through the public client (tests/test_batch_client.py): validated here too."""
# Answers as Mistral's and Gemini's API references document them (no spec in shared/specs to validate against).
MISTRAL_ANSWER = {"id": "c", "object": "chat.completion", "model": "mistral-small-latest", "created": 1,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}}
GEMINI_ANSWER = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                 "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 1, "totalTokenCount": 7},
                 "modelVersion": "gemini-2.5-flash"}
REQUESTS: list[dict[str, Any]] = [
    {"custom_id": "q1", "messages": [{"role": "user", "content": "Say this is a test"}], "max_tokens": 16},
    {"custom_id": "q2", "messages": [{"role": "user", "content": "Name a prime number"}], "max_tokens": 16},
    {"custom_id": "q3", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 16},
]


def make(cls: type[Adapter], name: str, base_url: str, **options: Any) -> Any:
    settings_model = cls.settings_model
    opts = settings_model(**options) if options else None
    return cls(ProviderSettings(name, base_url, SecretStr("test-key-0123456789"), 30, options=opts))


def openai() -> OpenAIAdapter:
    return make(OpenAIAdapter, "openai", "https://api.openai.com/v1")  # type: ignore[no-any-return]


def anthropic() -> AnthropicAdapter:
    return make(AnthropicAdapter, "anthropic", "https://api.anthropic.com/v1")  # type: ignore[no-any-return]


def interactions(name: str, folder: Path = HERE) -> list[dict[str, Any]]:
    return list(yaml.safe_load((folder / name).read_text("utf-8"))["interactions"])


def answer(inter: dict[str, Any]) -> HTTPResponse:
    return HTTPResponse(inter["response"]["status"]["code"], {}, inter["response"]["body"]["string"].encode())


def same_request(built: Any, inter: dict[str, Any]) -> None:
    """The adapter's request is the cassette's: method, URL and body byte for byte."""
    assert (built.method, built.url) == (inter["request"]["method"], inter["request"]["uri"])
    body = built.body()
    assert (body.decode() if body is not None else None) == inter["request"]["body"]


def result_lines(inter: dict[str, Any]) -> list[bytes]:
    return [line.encode() for line in inter["response"]["body"]["string"].splitlines() if line]


# ------------------------------------------------------------------------------------------------ cassettes


@pytest.mark.parametrize("path", sorted([*HERE.glob("*.yaml"), *CLIENT.glob("*.yaml")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cassettes_are_marked_authored_and_hold_no_secrets(path: Path) -> None:
    text = path.read_text("utf-8")
    assert MARKER.match(text.splitlines()[0]), f"{path.name} must start with '# AUTHORED: ... not recorded.'"
    assert text.splitlines()[0].startswith("# AUTHORED:")
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), pattern.pattern
    for inter in yaml.safe_load(text)["interactions"]:
        assert not {"authorization", "x-api-key", "api-key"} & {h.lower() for h in inter["request"]["headers"]}


def _need(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"spec not found at {path}: set COMPUTEKIT_SPECS_DIR")


@pytest.mark.parametrize("folder", [HERE, CLIENT], ids=lambda p: p.name)
def test_openai_cassette_validates_against_the_spec(folder: Path) -> None:
    _need(openai_spec_path())
    spec = openai_spec()
    inters = interactions("openai_batch.yaml", folder)
    problems = openai_errors(spec, "OpenAIFile", json.loads(inters[0]["response"]["body"]["string"]))
    for inter in inters[1:3]:
        problems += openai_errors(spec, "Batch", json.loads(inter["response"]["body"]["string"]))
    lines = [json.loads(raw) for inter in inters[3:] for raw in result_lines(inter)]
    assert len(lines) == 3
    for line in lines:
        resp = line["response"]
        schema = "CreateChatCompletionResponse" if resp["status_code"] == 200 else "ErrorResponse"
        problems += openai_errors(spec, schema, resp["body"])
    assert not problems, "\n".join(problems)
    # the validation is not vacuous: a batch with an unknown status is refused
    bad = {**json.loads(inters[1]["response"]["body"]["string"]), "status": "done"}
    assert openai_errors(spec, "Batch", bad)


@pytest.mark.parametrize("folder", [HERE, CLIENT], ids=lambda p: p.name)
def test_anthropic_cassette_validates_against_the_spec(folder: Path) -> None:
    _need(anthropic_spec_path())
    inters = interactions("anthropic_batch.yaml", folder)
    problems: list[str] = []
    for inter in inters[:2]:
        problems += anthropic_errors("MessageBatch", json.loads(inter["response"]["body"]["string"]))
    for raw in result_lines(inters[2]):
        problems += anthropic_errors("MessageBatchIndividualResponse", json.loads(raw))
    create_body = json.loads(inters[0]["request"]["body"])
    problems += anthropic_errors("CreateMessageBatchParams", create_body)
    assert not problems, "\n".join(problems)
    assert anthropic_errors("MessageBatchIndividualResponse", {"custom_id": "x", "result": {"type": "done"}})


# ------------------------------------------------------------------------------------------------ OpenAI


def test_openai_batch_round_trip_matches_the_cassette() -> None:
    oa = openai()
    inters = interactions("openai_batch.yaml")
    batch = prepare_batch(oa, "gpt-4o-mini", REQUESTS)
    assert [line["url"] for line in batch.lines] == ["/v1/chat/completions"] * 3
    same_request(oa.build_batch_upload("gpt-4o-mini", batch.content), inters[0])
    assert b'name="purpose"\r\n\r\nbatch\r\n' in oa.build_batch_upload("gpt-4o-mini", batch.content).body()  # type: ignore[operator]
    file_id = oa.parse_batch_upload("gpt-4o-mini", answer(inters[0]))
    create = oa.build_batch_create("gpt-4o-mini", batch.kind, file_id, batch.lines, {"project": "demo"})
    same_request(create, inters[1])
    state = oa.parse_batch("gpt-4o-mini", answer(inters[1]))
    assert (state.id, state.status, state.kind) == ("batch_6f1b2c3d4e5f", "validating", "complete")
    same_request(oa.build_batch_get(state), inters[2])
    state = oa.parse_batch("gpt-4o-mini", answer(inters[2]))
    assert (state.status, state.total, state.completed, state.failed, state.done) == ("completed", 3, 2, 1, True)
    results = oa.build_batch_results(state)
    assert [r.stream for r in results] == [True, True]
    for built, inter in zip(results, inters[3:], strict=True):
        same_request(built, inter)
    items = [oa.parse_batch_line(state, raw) for inter in inters[3:] for raw in result_lines(inter)]
    assert [i.custom_id for i in items] == ["q1", "q2", "q3"]
    assert items[0].result is not None
    assert items[0].result.text == "This is a test."
    assert items[0].result.request_id == "req_b1"
    assert items[0].billed
    assert isinstance(items[2].error, ContextWindowExceededError)
    assert items[2].error.status == 400
    assert items[2].result is None
    assert not items[2].billed


def test_openai_items_cost_usage_times_the_batch_price() -> None:
    oa, book = openai(), PriceBook()
    inters = interactions("openai_batch.yaml")
    state = oa.parse_batch("gpt-4o-mini", answer(inters[2]))
    items = [oa.parse_batch_line(state, raw) for raw in result_lines(inters[3])]
    for item in items:
        assert item.result is not None
        priced = price_item(book, oa, "gpt-4o-mini", item)
        ref = oa.price_ref("gpt-4o-mini", item.result)
        batch_rates = book.rates(PriceRef(ref.provider, ref.model, ref.table_provider, context=(BATCH_CONTEXT,)))
        sync_rates = book.rates(ref)
        assert batch_rates is not None
        assert sync_rates is not None
        u = item.result.usage
        want = (u.input_tokens * batch_rates.prices["input_mtok"] + u.output_tokens * batch_rates.prices["output_mtok"]
                ) / Decimal(1_000_000)
        assert priced.cost.total == want
        assert all(line.item.startswith("batch ") for line in priced.cost.lines)
        want_sync = (u.input_tokens * sync_rates.prices["input_mtok"] + u.output_tokens * sync_rates.prices[
            "output_mtok"]) / Decimal(1_000_000)
        assert priced.synchronous.total == want_sync
        assert priced.saved == want_sync - want
        assert priced.saved > 0


def test_openai_expired_item_is_a_typed_unbilled_error() -> None:
    oa = openai()
    state = BatchState(id="b", model="gpt-4o-mini", status="expired", provider_status="expired")
    item = oa.parse_batch_line(state, {"id": "r", "custom_id": "late", "response": None, "error": {
        "code": "batch_expired", "message": "This request could not be executed before the window expired."}})
    assert item.error is not None
    assert item.error.status is None
    assert "window expired" in str(item.error)
    assert price_item(PriceBook(), oa, "gpt-4o-mini", item).cost.total == 0


@pytest.mark.parametrize(("line", "why"), [
    (b"not json", "not a JSON object"),
    (b'{"response": {"status_code": 200, "body": {}}}', "no custom_id"),
    (b'{"custom_id": "a", "response": null, "error": null}', "neither a response nor an error"),
])
def test_openai_malformed_result_lines_are_typed(line: bytes, why: str) -> None:
    from computekit._exceptions import MalformedResponseError

    state = BatchState(id="b", model="gpt-4o-mini", status="completed", provider_status="completed")
    with pytest.raises(MalformedResponseError, match=why):
        openai().parse_batch_line(state, line)


def test_openai_embeddings_batch() -> None:
    oa = openai()
    batch = prepare_batch(oa, "text-embedding-3-small", [{"custom_id": "e1", "input": "hello"}])
    assert batch.kind == "embed"
    assert batch.lines[0]["url"] == "/v1/embeddings"
    create = oa.build_batch_create("text-embedding-3-small", "embed", "file-1", batch.lines, {})
    assert create.json["endpoint"] == "/v1/embeddings"
    state = BatchState(id="b", model="text-embedding-3-small", status="completed", provider_status="completed",
                       kind="embed")
    body = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": "text-embedding-3-small", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    item = oa.parse_batch_line(state, {"custom_id": "e1", "response": {"status_code": 200, "body": body}})
    assert item.result is not None
    assert item.result.vectors == [[0.1, 0.2]]
    priced = price_item(PriceBook(), oa, "text-embedding-3-small", item)
    batch_rates = PriceBook().rates(oa.batch_price_ref("text-embedding-3-small"))
    assert batch_rates is not None
    assert batch_rates.source.table == "computekit:batch"
    assert priced.cost.total == batch_rates.prices["input_mtok"] / Decimal(1_000_000)


def test_a_text_model_batch_names_the_completions_endpoint() -> None:
    oa = openai()
    batch = prepare_batch(oa, "gpt-3.5-turbo-instruct", [{"custom_id": "t", "prompt": "Once", "max_tokens": 5}])
    assert batch.lines[0]["url"] == "/v1/completions"
    assert batch.lines[0]["body"]["prompt"] == "Once"
    create = oa.build_batch_create("gpt-3.5-turbo-instruct", batch.kind, "file-1", batch.lines, {})
    assert create.json["endpoint"] == "/v1/completions"
    book = PriceBook({"openai:gpt-3.5-turbo-instruct": {"batch_input_mtok": "0.75", "batch_output_mtok": "1"}})
    estimate = batch_estimate(book, oa, batch)
    assert estimate.lines[0].quantity == 1  # "Once": one token, counted from the prompt itself


def test_azure_global_batch_names_the_deployment_on_the_resource() -> None:
    az = make(AzureOpenAIAdapter, "azure", "https://res.openai.azure.com", deployments={"gpt-4o-mini": "gb-mini"})
    assert isinstance(az.options, AzureSettings)
    line = az.batch_line("a", CompleteRequest(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]))
    assert line["url"] == "/chat/completions"
    assert line["body"]["model"] == "gb-mini"
    create = az.build_batch_create("gpt-4o-mini", "complete", "file-1", [line], {})
    assert create.url.startswith("https://res.openai.azure.com/openai/batches?api-version=")
    assert create.json["endpoint"] == "/chat/completions"
    assert az.build_batch_upload("gpt-4o-mini", b"{}\n").url.startswith("https://res.openai.azure.com/openai/files?")
    assert "api-key" in create.headers


# ------------------------------------------------------------------------------------------------ Anthropic


def test_anthropic_batch_round_trip_matches_the_cassette() -> None:
    an = anthropic()
    inters = interactions("anthropic_batch.yaml")
    batch = prepare_batch(an, "claude-haiku-4-5", REQUESTS)
    assert not an.batch_spec("claude-haiku-4-5").uploads
    same_request(an.build_batch_create("claude-haiku-4-5", batch.kind, None, batch.lines, {}), inters[0])
    state = an.parse_batch("claude-haiku-4-5", answer(inters[0]))
    assert (state.status, state.total) == ("in_progress", 3)
    same_request(an.build_batch_get(state), inters[1])
    state = an.parse_batch("claude-haiku-4-5", answer(inters[1]))
    assert (state.status, state.completed, state.failed, state.done) == ("completed", 2, 1, True)
    [results] = an.build_batch_results(state)
    same_request(results, inters[2])
    items = [an.parse_batch_line(state, raw) for raw in result_lines(inters[2])]
    assert [i.custom_id for i in items] == ["q1", "q2", "q3"]
    assert items[1].result is not None
    assert items[1].result.text == "7"
    assert items[2].error is not None
    assert items[2].error.status == 400
    assert not items[2].billed
    book = PriceBook()
    for item in items[:2]:
        assert item.result is not None
        priced = price_item(book, an, "claude-haiku-4-5", item)
        rates = book.rates(an.batch_price_ref("claude-haiku-4-5", item.result))
        assert rates is not None
        u = item.result.usage
        assert priced.cost.total == (u.input_tokens * rates.prices["input_mtok"]  # type: ignore[operator]
                                     + u.output_tokens * rates.prices["output_mtok"]) / Decimal(1_000_000)
        assert priced.saved is not None
        assert priced.saved > 0


def test_anthropic_canceled_batch_and_items() -> None:
    an = anthropic()
    body = {"id": "msgbatch_1", "type": "message_batch", "processing_status": "ended",
            "request_counts": {"processing": 0, "succeeded": 1, "errored": 0, "canceled": 2, "expired": 1},
            "cancel_initiated_at": "2026-11-27T10:00:00Z", "created_at": "2026-11-27T09:00:00Z"}
    state = an.parse_batch("claude-haiku-4-5", HTTPResponse(200, {}, json.dumps(body).encode()))
    assert (state.status, state.failed, state.total) == ("canceled", 3, 4)
    item = an.parse_batch_line(state, {"custom_id": "c", "result": {"type": "canceled"}})
    assert item.error is not None
    assert "canceled" in str(item.error)
    assert not item.billed


def test_anthropic_custom_ids_follow_the_spec() -> None:
    with pytest.raises(InvalidRequestError) as info:
        prepare_batch(anthropic(), "claude-haiku-4-5", [{**REQUESTS[0], "custom_id": "has space"},
                                                        {**REQUESTS[1], "custom_id": "x" * 65}])
    assert "line 1: custom_id 'has space'" in str(info.value)
    assert "line 2: custom_id" in str(info.value)
    assert prepare_batch(anthropic(), "claude-haiku-4-5", [{**REQUESTS[0], "custom_id": "ok_id-1"}]).count == 1


def test_anthropic_refuses_batched_embeddings_and_streams() -> None:
    an = anthropic()
    with pytest.raises(UnsupportedCapabilityError):
        an.batch_line("e", EmbedRequest(model="m", inputs=["x"]))
    with pytest.raises(InvalidRequestError, match="stream"):
        an.batch_line("s", CompleteRequest(model="m", messages=[{"role": "user", "content": "x"}], stream=True))


# ------------------------------------------------------------------------------------------------ Mistral, Gemini


def test_mistral_batch_job() -> None:
    mi = make(MistralAdapter, "mistral", "https://api.mistral.ai/v1")
    batch = prepare_batch(mi, "mistral-small-latest", REQUESTS[:1])
    assert batch.lines == [{"custom_id": "q1", "body": {"max_tokens": 16, "messages": [
        {"role": "user", "content": "Say this is a test"}]}}]
    create = mi.build_batch_create("mistral-small-latest", "complete", "file-1", batch.lines, {"job": "x"})
    assert create.url == "https://api.mistral.ai/v1/batch/jobs"
    assert create.json == {"input_files": ["file-1"], "model": "mistral-small-latest",
                           "endpoint": "/v1/chat/completions", "metadata": {"job": "x"}}
    job = {"id": "job-1", "object": "batch", "status": "SUCCESS", "endpoint": "/v1/chat/completions",
           "total_requests": 1, "succeeded_requests": 1, "failed_requests": 0, "output_file": "file-out",
           "error_file": None, "created_at": 1764236400, "completed_at": 1764239000}
    state = mi.parse_batch("mistral-small-latest", HTTPResponse(200, {}, json.dumps(job).encode()))
    assert (state.status, state.total, state.output_ref) == ("completed", 1, "file-out")
    [results] = mi.build_batch_results(state)
    assert results.url == "https://api.mistral.ai/v1/files/file-out/content"
    item = mi.parse_batch_line(state, {"id": "r", "custom_id": "q1", "response": {"status_code": 200,
                                                                                 "body": MISTRAL_ANSWER}})
    assert item.result is not None
    assert item.result.usage.input_tokens == 8
    priced = price_item(PriceBook(), mi, "mistral-small-latest", item)
    assert priced.cost.total is not None
    assert priced.saved is not None
    assert priced.saved > 0


def test_gemini_batch_mode_inline() -> None:
    ge = make(GeminiAdapter, "gemini", "https://generativelanguage.googleapis.com/v1beta")
    batch = prepare_batch(ge, "gemini-2.5-flash", REQUESTS[:2])
    assert batch.lines[0]["metadata"] == {"key": "q1"}
    assert "contents" in batch.lines[0]["request"]
    create = ge.build_batch_create("gemini-2.5-flash", "complete", None, batch.lines, {})
    assert create.url.endswith("/models/gemini-2.5-flash:batchGenerateContent")
    assert create.json["batch"]["inputConfig"]["requests"]["requests"] == batch.lines
    op = {"name": "batches/abc", "done": True,
          "metadata": {"name": "batches/abc", "model": "models/gemini-2.5-flash", "state": "BATCH_STATE_SUCCEEDED",
                       "batchStats": {"requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"},
                       "createTime": "2026-11-27T09:00:00Z"},
          "response": {"inlinedResponses": {"inlinedResponses": [
              {"response": GEMINI_ANSWER, "metadata": {"key": "q1"}},
              {"error": {"code": 8, "message": "Resource exhausted"}, "metadata": {"key": "q2"}}]}}}
    state = ge.parse_batch("gemini-2.5-flash", HTTPResponse(200, {}, json.dumps(op).encode()))
    assert (state.id, state.status, state.total, state.completed, state.failed) == ("abc", "completed", 2, 1, 1)
    assert ge.build_batch_results(state) == []
    items = [ge.parse_batch_line(state, line) for line in ge.batch_inline_results(state)]
    assert items[0].result is not None
    assert items[0].result.usage.input_tokens == 6
    assert items[1].error is not None
    assert items[1].error.status == 429
    assert ge.build_batch_get(state).url.endswith("/v1beta/batches/abc")
    assert ge.build_batch_cancel(state).url.endswith("/v1beta/batches/abc:cancel")
    priced = price_item(PriceBook(), ge, "gemini-2.5-flash", items[0])
    assert priced.cost.total is not None
    assert priced.saved is not None
    assert priced.saved > 0


def test_mistral_batches_embeddings_gemini_does_not() -> None:
    mi = make(MistralAdapter, "mistral", "https://api.mistral.ai/v1")
    batch = prepare_batch(mi, "mistral-embed", [{"custom_id": "e", "input": ["a", "b"]}])
    assert batch.lines == [{"custom_id": "e", "body": {"input": ["a", "b"], "encoding_format": "float"}}]
    create = mi.build_batch_create("mistral-embed", batch.kind, "file-1", batch.lines, {})
    assert create.json["endpoint"] == "/v1/embeddings"
    ge = make(GeminiAdapter, "gemini", "https://generativelanguage.googleapis.com/v1beta")
    with pytest.raises(UnsupportedCapabilityError, match="gemini does not support batch embeddings"):
        prepare_batch(ge, "gemini-embedding-001", [{"custom_id": "e", "input": "a"}])


def test_gemini_results_file_is_downloaded_from_the_same_host() -> None:
    ge = make(GeminiAdapter, "gemini", "https://generativelanguage.googleapis.com/v1beta")
    op = {"name": "batches/big", "metadata": {"name": "batches/big", "state": "JOB_STATE_SUCCEEDED",
                                              "output": {"responsesFile": "files/out-1"}}}
    state = ge.parse_batch("gemini-2.5-flash", HTTPResponse(200, {}, json.dumps(op).encode()))
    [req] = ge.build_batch_results(state)
    assert req.url == "https://generativelanguage.googleapis.com/download/v1beta/files/out-1:download?alt=media"
    line = json.dumps({"key": "k", "response": {"candidates": [], "usageMetadata": {"promptTokenCount": 1}}})
    assert ge.parse_batch_line(state, line.encode()).custom_id == "k"


# ------------------------------------------------------------------------------------------------ statuses


STATUS_CASES = [
    (openai(), "validating", "validating"), (openai(), "in_progress", "in_progress"),
    (openai(), "finalizing", "finalizing"), (openai(), "completed", "completed"), (openai(), "failed", "failed"),
    (openai(), "expired", "expired"), (openai(), "cancelling", "canceling"), (openai(), "cancelled", "canceled"),
]


@pytest.mark.parametrize(("provider_status", "want"), [(p, w) for _, p, w in STATUS_CASES])
def test_openai_statuses_are_normalised(provider_status: str, want: str) -> None:
    body = {"id": "b", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "f",
            "completion_window": "24h", "status": provider_status, "created_at": 1}
    state = openai().parse_batch("m", HTTPResponse(200, {}, json.dumps(body).encode()))
    assert state.status == want
    assert state.provider_status == provider_status


@pytest.mark.parametrize(("provider_status", "want"), [
    ("QUEUED", "validating"), ("RUNNING", "in_progress"), ("SUCCESS", "completed"), ("FAILED", "failed"),
    ("TIMEOUT_EXCEEDED", "expired"), ("CANCELLATION_REQUESTED", "canceling"), ("CANCELLED", "canceled"),
])
def test_mistral_statuses_are_normalised(provider_status: str, want: str) -> None:
    mi = make(MistralAdapter, "mistral", "https://api.mistral.ai/v1")
    body = {"id": "j", "status": provider_status}
    assert mi.parse_batch("m", HTTPResponse(200, {}, json.dumps(body).encode())).status == want


@pytest.mark.parametrize(("provider_status", "want"), [
    ("BATCH_STATE_PENDING", "validating"), ("BATCH_STATE_RUNNING", "in_progress"),
    ("BATCH_STATE_SUCCEEDED", "completed"), ("BATCH_STATE_FAILED", "failed"), ("BATCH_STATE_CANCELLED", "canceled"),
    ("BATCH_STATE_EXPIRED", "expired"),
])
def test_gemini_statuses_are_normalised(provider_status: str, want: str) -> None:
    ge = make(GeminiAdapter, "gemini", "https://generativelanguage.googleapis.com/v1beta")
    body = {"name": "batches/x", "metadata": {"name": "batches/x", "state": provider_status}}
    assert ge.parse_batch("m", HTTPResponse(200, {}, json.dumps(body).encode())).status == want


def test_every_normalised_status_is_a_known_one() -> None:
    assert {w for _, _, w in STATUS_CASES} == set(BATCH_STATUSES)


def test_counts_that_do_not_parse_are_unknown_not_a_crash() -> None:
    body = {"id": "b", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "f",
            "completion_window": "24h", "status": "in_progress", "created_at": 1,
            "request_counts": {"total": "many", "completed": -3, "failed": True}}
    state = openai().parse_batch("m", HTTPResponse(200, {}, json.dumps(body).encode()))
    assert (state.total, state.completed, state.failed) == (None, 0, 0)


@pytest.mark.parametrize("body", [{"id": "b"}, {"status": "completed"}, {"id": "b", "status": "weird"}])
def test_a_batch_object_that_is_not_one_is_malformed(body: dict[str, Any]) -> None:
    from computekit._exceptions import MalformedResponseError

    with pytest.raises(MalformedResponseError):
        openai().parse_batch("m", HTTPResponse(200, {}, json.dumps(body).encode()))


# ------------------------------------------------------------------------------------------------ capability


@pytest.mark.parametrize(("name", "base_url"), [
    ("cohere", "https://api.cohere.com"), ("groq", "https://api.groq.com/openai/v1"),
    ("replicate", "https://api.replicate.com/v1"), ("vertex", "https://aiplatform.googleapis.com/v1"),
    ("bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com"),
])
def test_providers_without_a_batch_api_refuse_before_any_http(name: str, base_url: str) -> None:
    cls = adapter_class(name)
    adapter = cls(ProviderSettings(name, base_url, SecretStr("test-key-0123456789"), 30))
    assert not adapter.capabilities.batch
    with pytest.raises(UnsupportedCapabilityError, match=re.escape(f"{name} does not support batch")):
        prepare_batch(adapter, "some-model", REQUESTS)


def test_providers_with_a_batch_api_say_so() -> None:
    for cls in (OpenAIAdapter, AzureOpenAIAdapter, AnthropicAdapter, MistralAdapter, GeminiAdapter):
        assert cls.capabilities.batch
        assert "batch" in cls.capabilities.names()


# ------------------------------------------------------------------------------------------------ the table


def provider_table() -> list[tuple[str, str, Cost, BatchTotals]]:
    """Per provider: the estimate of the first two requests, and their results' totals (batch, synchronous,
    saved), from the cassettes (OpenAI, Anthropic) and the documented answers (Mistral, Gemini)."""
    book = PriceBook()
    rows = []
    oa = openai()
    inters = interactions("openai_batch.yaml")
    state = oa.parse_batch("gpt-4o-mini", answer(inters[2]))
    rows.append(("openai", "gpt-4o-mini", oa, [oa.parse_batch_line(state, raw) for raw in result_lines(inters[3])]))
    # Azure's global batch writes OpenAI's result lines: the same file, read by the Azure adapter.
    az = make(AzureOpenAIAdapter, "azure", "https://res.openai.azure.com")
    rows.append(("azure", "gpt-4o-mini", az, [az.parse_batch_line(state, raw) for raw in result_lines(inters[3])]))
    an = anthropic()
    inters = interactions("anthropic_batch.yaml")
    state = an.parse_batch("claude-haiku-4-5", answer(inters[1]))
    rows.append(("anthropic", "claude-haiku-4-5", an,
                 [an.parse_batch_line(state, raw) for raw in result_lines(inters[2])][:2]))
    mi = make(MistralAdapter, "mistral", "https://api.mistral.ai/v1")
    state = BatchState(id="j", model="mistral-small-latest", status="completed", provider_status="SUCCESS")
    rows.append(("mistral", "mistral-small-latest", mi, [
        mi.parse_batch_line(state, {"custom_id": f"q{i}", "response": {"status_code": 200, "body": MISTRAL_ANSWER}})
        for i in (1, 2)]))
    ge = make(GeminiAdapter, "gemini", "https://generativelanguage.googleapis.com/v1beta")
    state = BatchState(id="b", model="gemini-2.5-flash", status="completed", provider_status="BATCH_STATE_SUCCEEDED")
    rows.append(("gemini", "gemini-2.5-flash", ge, [
        ge.parse_batch_line(state, {"response": GEMINI_ANSWER, "metadata": {"key": f"q{i}"}}) for i in (1, 2)]))
    out = []
    for provider, model, adapter, items in rows:
        estimate = batch_estimate(book, adapter, prepare_batch(adapter, model, REQUESTS[:2]))
        out.append((provider, model, estimate, summarise(price_item(book, adapter, model, i) for i in items)))
    return out


def test_per_provider_estimate_actual_synchronous_and_saved() -> None:
    for provider, _, estimate, totals in provider_table():
        assert estimate.estimated, provider
        assert estimate.total is not None, provider
        assert totals.cost is not None, provider
        assert totals.synchronous is not None, provider
        assert estimate.total >= totals.cost, provider  # outputs are estimated at their max_tokens
        assert totals.saved == totals.synchronous - totals.cost, provider
        assert totals.saved is not None
        assert totals.saved > 0, provider
