"""The pure core of batches: validation before upload, the estimate, batch prices and what batching saved."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from computekit._batch import (
    MAX_NAMED_PROBLEMS,
    ItemPrices,
    LineReader,
    batch_estimate,
    prepare_batch,
    price_item,
    read_requests,
    result_lines,
    summarise,
)
from computekit._exceptions import InvalidRequestError, MalformedResponseError
from computekit._finetune import _Counter, count_example_tokens
from computekit._http import HTTPResponse
from computekit._types import Completion, Usage
from computekit.adapters import adapter_class
from computekit.adapters._base import BatchItem, ProviderSettings
from computekit.adapters.anthropic import AnthropicAdapter
from computekit.adapters.gemini import GEMINI_BATCH_MAX_BYTES, GeminiAdapter
from computekit.adapters.openai import OPENAI_BATCH_MAX_REQUESTS, OpenAIAdapter
from computekit.pricing import BATCH_CONTEXT, PriceBook, PriceRef

MTOK = Decimal(1_000_000)


def openai() -> OpenAIAdapter:
    return OpenAIAdapter(ProviderSettings("openai", "https://api.openai.com/v1", SecretStr("sk-test-0123456789"), 30))


def anthropic() -> AnthropicAdapter:
    return AnthropicAdapter(ProviderSettings("anthropic", "https://api.anthropic.com/v1",
                                             SecretStr("sk-ant-test-0123456789"), 30))


def chat(i: int, text: str = "Summarise the water cycle", max_tokens: int = 64) -> dict[str, Any]:
    return {"custom_id": f"r{i}", "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}


# ------------------------------------------------------------------------------------------------ validation


def test_requests_become_the_lines_complete_would_send() -> None:
    batch = prepare_batch(openai(), "gpt-4o-mini", [chat(1), {"custom_id": "r2", "prompt": "hi", "temperature": 0}])
    assert batch.kind == "complete"
    assert batch.count == 2
    assert batch.lines[1]["body"] == {"model": "gpt-4o-mini", "temperature": 0,
                                      "messages": [{"role": "user", "content": "hi"}]}
    assert batch.content.count(b"\n") == 2
    assert [json.loads(line) for line in batch.content.splitlines()] == batch.lines


def test_the_providers_own_line_shape_is_read_too() -> None:
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}}
    batch = prepare_batch(openai(), "gpt-4o-mini", [line])
    assert batch.lines == [line]


def test_every_bad_line_is_named_and_nothing_is_built(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    rows = [json.dumps(chat(1)), "{not json", json.dumps({"messages": [{"role": "user", "content": "x"}]}),
            json.dumps(chat(1)), json.dumps({**chat(5), "temprature": 1}), "",
            json.dumps({"custom_id": "r7", "messages": [{"role": "robot", "content": "x"}]})]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InvalidRequestError) as info:
        prepare_batch(openai(), "gpt-4o-mini", path)
    msg = str(info.value)
    assert str(path) in msg
    assert "nothing uploaded" in msg
    assert "line 2: not valid JSON" in msg
    assert "line 3: no custom_id" in msg
    assert "line 4: custom_id 'r1' repeats line 1" in msg
    assert "line 5: unknown complete() option(s): temprature" in msg
    assert "line 7: messages[0] has role 'robot'" in msg
    assert "line 1:" not in msg
    assert "line 6" not in msg  # a blank line is no request


def test_a_long_list_of_problems_is_cut_with_the_count_of_the_rest() -> None:
    with pytest.raises(InvalidRequestError, match=r"; and 5 more$"):
        prepare_batch(openai(), "gpt-4o-mini", [{"messages": []}] * (MAX_NAMED_PROBLEMS + 5))


@pytest.mark.parametrize(("requests", "match"), [
    ([], "no requests"),
    ([chat(1), {"custom_id": "e", "input": "x"}], "mixes complete"),
    ([{**chat(1), "model": "gpt-4o"}], "differs from the batch's model"),
    ([{**chat(1), "stream": True}], "cannot stream"),
    ([{"custom_id": "e", "input": []}], "non-empty list of strings"),
    ("not-a-file.jsonl", "no such file"),
])
def test_bad_batches_are_refused(requests: Any, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        prepare_batch(openai(), "gpt-4o-mini", requests)


def test_lines_json_cannot_carry_are_named_and_nothing_is_built(tmp_path: Path) -> None:
    """``json.loads`` reads ``NaN`` in a JSONL file, and ``json.dumps`` writes it back as a bare word: the uploaded
    file would not be JSON. Such a line, and one with text that is not valid Unicode, is a problem named by line."""
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join([json.dumps(chat(1)), '{"custom_id": "r2", "prompt": "hi", "temperature": NaN}']) + "\n")
    with pytest.raises(InvalidRequestError, match=r"line 2: not valid JSON \(NaN is not a JSON value"):
        prepare_batch(openai(), "gpt-4o-mini", path)
    with pytest.raises(InvalidRequestError) as info:
        prepare_batch(openai(), "gpt-4o-mini", [chat(1), {**chat(2), "top_p": float("inf")}, chat(3, "caf\udce9")])
    msg = str(info.value)
    assert "line 2: the request holds a number JSON cannot carry (inf at body.top_p)" in msg
    assert "line 3: the request holds text that is not valid Unicode" in msg
    assert "line 1:" not in msg


def test_a_batch_of_a_dict_is_refused_with_what_to_pass() -> None:
    with pytest.raises(InvalidRequestError, match="list of request dicts or a path"):
        list(read_requests({"custom_id": "x"}))


def test_the_providers_request_count_limit() -> None:
    many = ({"custom_id": f"r{i}", "prompt": "x"} for i in range(OPENAI_BATCH_MAX_REQUESTS + 1))
    with pytest.raises(InvalidRequestError, match=f"{OPENAI_BATCH_MAX_REQUESTS + 1} requests; openai takes at most"):
        prepare_batch(openai(), "gpt-4o-mini", many)


def test_the_providers_size_limit() -> None:
    gemini = GeminiAdapter(ProviderSettings("gemini", "https://generativelanguage.googleapis.com/v1beta",
                                            SecretStr("test-key-0123456789"), 30))
    big = chat(1, text="x" * (GEMINI_BATCH_MAX_BYTES // 2))
    with pytest.raises(InvalidRequestError, match="bytes; gemini takes at most"):
        prepare_batch(gemini, "gemini-2.5-flash", [big, {**big, "custom_id": "r2"}])


# ------------------------------------------------------------------------------------------------ estimate


def test_estimate_counts_tokens_with_the_models_tokenizer_at_the_batch_price() -> None:
    oa, book = openai(), PriceBook()
    requests = [chat(1), chat(2, "Name three rivers", max_tokens=32)]
    estimate = batch_estimate(book, oa, prepare_batch(oa, "gpt-4o-mini", requests))
    count = _Counter(oa.finetune_spec("gpt-4o-mini").encoding)
    tokens = sum(count_example_tokens({"messages": r["messages"]}, count) for r in requests)
    rates = book.rates(oa.batch_price_ref("gpt-4o-mini"))
    assert rates is not None
    want = (tokens * rates.prices["input_mtok"] + 96 * rates.prices["output_mtok"]) / MTOK  # type: ignore[operator]
    assert estimate.estimated
    assert estimate.total == want
    assert all(line.item.startswith("batch ") for line in estimate.lines)
    assert "2 requests" in estimate.lines[0].item


def test_estimate_without_a_tokenizer_uses_the_byte_bound() -> None:
    an, book = anthropic(), PriceBook()
    batch = prepare_batch(an, "claude-haiku-4-5", [chat(1)])
    estimate = batch_estimate(book, an, batch)
    _, req = batch.requests[0]
    bound = an.input_bound(req, book.context_window(an.price_ref("claude-haiku-4-5")))
    rates = book.rates(an.batch_price_ref("claude-haiku-4-5"))
    assert bound is not None
    assert rates is not None
    assert estimate.total == (bound * rates.prices["input_mtok"]  # type: ignore[operator]
                              + 64 * rates.prices["output_mtok"]) / MTOK
    assert "at most one token a byte" in estimate.lines[0].item


def test_estimate_is_unknown_without_a_batch_price_never_the_synchronous_one() -> None:
    oa = openai()
    batch = prepare_batch(oa, "my-private-model", [chat(1)])
    estimate = batch_estimate(PriceBook(), oa, batch)
    assert estimate.total is None
    assert estimate.estimated
    assert 'batch_input_mtok = "..."' in (estimate.reason or "")
    priced = batch_estimate(PriceBook({"openai:my-private-model": {"batch_input_mtok": "1", "batch_output_mtok": "2"}}),
                            oa, batch)
    assert priced.total is not None
    assert priced.price_source is not None
    assert priced.price_source.table == "config"


# ------------------------------------------------------------------------------------------------ prices


def test_genai_prices_without_a_batch_variant_means_unknown() -> None:
    """genai-prices answers a context it has no variant for with the standard price: computekit does not."""
    from genai_prices import data_snapshot

    _, model = data_snapshot.get_snapshot().find_provider_model("mistral-large-latest", None, "mistral", None)
    assert not any(v.when.get("processing") == "batch" for v in model.price_variants or ())
    book = PriceBook()
    assert book.rates(PriceRef("mistral", "mistral-large-latest", "mistral")) is not None
    assert book.rates(PriceRef("mistral", "mistral-large-latest", "mistral", context=(BATCH_CONTEXT,))) is None


def test_batch_overrides_do_not_touch_the_synchronous_price() -> None:
    book = PriceBook({"openai:gpt-4o-mini": {"batch_input_mtok": "0.01", "batch_output_mtok": "0.02"}})
    sync = book.rates(PriceRef("openai", "gpt-4o-mini", "openai"))
    batch = book.rates(PriceRef("openai", "gpt-4o-mini", "openai", context=(BATCH_CONTEXT,)))
    assert sync is not None
    assert batch is not None
    assert sync.source.table == "genai-prices"
    assert batch.prices == {"input_mtok": Decimal("0.01"), "output_mtok": Decimal("0.02")}


def test_own_batch_table_is_dated_and_sourced() -> None:
    rates = PriceBook().rates(PriceRef("openai", "text-embedding-3-small", "openai", context=(BATCH_CONTEXT,)))
    assert rates is not None
    assert rates.source.as_of is not None
    assert (rates.source.url or "").startswith("https://platform.openai.com/")


def _completion(model: str, usage: Usage) -> Completion:
    return Completion(provider="openai", model=model, text="ok", usage=usage)


def test_items_and_the_summary_show_what_batching_saved() -> None:
    oa, book = openai(), PriceBook()
    items = [BatchItem("a", _completion("gpt-4o-mini", Usage(input_tokens=1000, output_tokens=200)), billed=True),
             BatchItem("b", _completion("gpt-4o-mini", Usage(input_tokens=500, output_tokens=50)), billed=True),
             BatchItem("c", None, error=None, billed=False)]
    costs = [price_item(book, oa, "gpt-4o-mini", item) for item in items]
    totals = summarise(costs)
    total, synchronous, saved = totals.cost, totals.synchronous, totals.saved
    assert totals.items == 3
    assert total is not None
    assert synchronous is not None
    assert saved == synchronous - total
    assert costs[2].cost.total == 0
    assert costs[2].cost.reason == "batch item failed: not billed"
    sync_rates = book.rates(oa.price_ref("gpt-4o-mini"))
    assert sync_rates is not None
    assert synchronous == (1500 * sync_rates.prices["input_mtok"]  # type: ignore[operator]
                           + 250 * sync_rates.prices["output_mtok"]) / MTOK


def test_a_failed_item_the_provider_billed_is_never_free() -> None:
    priced = price_item(PriceBook(), openai(), "gpt-4o-mini", BatchItem("x", None, billed=True))
    assert priced.cost.total is None
    totals = summarise([priced])
    assert (totals.cost, totals.synchronous, totals.saved) == (None, None, None)


@pytest.mark.filterwarnings("ignore::computekit.pricing.UnknownPriceWarning")
def test_one_read_s_prices_are_the_book_s_to_the_last_digit() -> None:
    """A read of the results looks each reference's rates up once: every figure, line and reason is the book's."""
    oa, an, book = openai(), anthropic(), PriceBook()
    prices = ItemPrices(book)
    cached = Usage(input_tokens=2048, output_tokens=77, cached_input_tokens=1024)
    cases = [(oa, "gpt-4o-mini", _completion("gpt-4o-mini", Usage(input_tokens=1000, output_tokens=200))),
             (oa, "gpt-4o-mini", _completion("gpt-4o-mini", cached)),
             (oa, "gpt-4o-mini", _completion("gpt-4o-mini", Usage(input_tokens=3, output_tokens=1,
                                                                  units={"web_search_call": 1}))),
             (oa, "no-such-model", _completion("no-such-model", Usage(input_tokens=5, output_tokens=5))),
             (an, "claude-haiku-4-5", Completion(provider="anthropic", model="claude-haiku-4-5", text="ok",
                                                 response_model="claude-haiku-4-5-20251001", usage=cached))]
    for _ in range(2):  # the second round is served from what the first looked up
        for adapter, model, result in cases:
            item = BatchItem("x", result, billed=True)
            assert price_item(prices, adapter, model, item) == price_item(book, adapter, model, item)
    assert len(prices.found) == 6  # (sync, batch) x three references
    assert price_item(book, oa, "no-such-model", BatchItem("x", cases[3][2], billed=True)).cost.total is None


# ------------------------------------------------------------------------------------------------ results


@pytest.mark.parametrize("provider", ["openai", "mistral"])
def test_a_result_line_s_answer_is_read_as_the_same_bytes_would_be(provider: str) -> None:
    """Decoded once with its line, the answer parses to what its bytes parse to (a parser that scans the bytes,
    as Mistral's does for a reasoning answer, gets them too)."""
    from computekit._http import HTTPResponse
    from computekit.adapters import adapter_class
    from computekit.adapters._base import CompleteRequest

    adapter = adapter_class(provider)(ProviderSettings(provider, "https://example.test/v1", SecretStr("k-test"), 30))
    content: Any = ([{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                     {"type": "text", "text": "7"}] if provider == "mistral" else "7")
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m-2025",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}
    decoded = adapter.batch_response(200, body, "req_1")
    plain = HTTPResponse(200, {"x-request-id": "req_1"}, json.dumps(body).encode())
    assert decoded.json() == body
    assert json.loads(decoded.content) == body
    req = CompleteRequest(model="m", messages=[], api="chat")
    assert adapter.parse_complete(req, decoded) == adapter.parse_complete(req, plain)
    assert adapter.parse_complete(req, decoded).text == "7"


def test_a_text_models_legacy_completions_are_read_as_text_completions() -> None:
    """A batch on ``/v1/completions`` (a text model's prompt lines): each answer's ``choices[].text`` is the text,
    priced from its usage, as the synchronous text completion reads it."""
    from computekit.adapters._base import BatchState

    adapter = openai()
    state = BatchState(id="batch_1", model="gpt-3.5-turbo-instruct", status="completed", provider_status="completed",
                       raw={"endpoint": "/v1/completions"})
    body = {"id": "cmpl_1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "text": " Paris.", "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    line = {"id": "r_1", "custom_id": "t1", "error": None,
            "response": {"status_code": 200, "request_id": "req_1", "body": body}}
    item = adapter.parse_batch_line(state, json.dumps(line).encode())
    assert item.error is None
    assert item.result is not None
    assert item.result.text == " Paris."
    assert (item.result.usage.input_tokens, item.result.usage.output_tokens) == (5, 2)


def test_result_lines_are_split_across_chunks_and_numbered() -> None:
    chunks = [b'{"a":', b'1}\n\n{"b"', b":2}\r\n", b'{"c":3}']
    assert list(result_lines(chunks)) == [(1, b'{"a":1}'), (3, b'{"b":2}'), (4, b'{"c":3}')]
    assert list(result_lines([b""])) == []


def test_a_line_beyond_the_bound_is_refused_not_buffered() -> None:
    def endless() -> Any:
        while True:
            yield b"x" * 1024

    with pytest.raises(ValueError, match="result line 1 is longer than 4,096 bytes"):
        list(result_lines(endless(), max_line=4096))


class _Searched(bytearray):
    """A line reader's buffer that counts the bytes its newline searches go over."""

    searched = 0

    def find(self, sub: Any, start: Any = 0, *args: Any) -> int:
        _Searched.searched += len(self) - start
        return super().find(sub, start, *args)


def test_a_long_line_in_small_chunks_is_searched_once_not_once_a_chunk() -> None:
    """A host that drips a long line a KiB at a time: each byte is searched for a newline once (the bytes already
    pending hold none), not once per chunk, which took minutes of CPU for a line near the bound."""
    reader = LineReader(max_line=8 * 1024 * 1024)
    reader.pending = _Searched()
    _Searched.searched = 0
    size = 4 * 1024 * 1024
    for _ in range(size // 1024):
        assert reader.feed(b"x" * 1024) == []
    assert reader.feed(b"\n") == [(1, b"x" * size)]
    assert _Searched.searched <= size + 1


_BAD_IDS = ["../../v1/files/other", "x/content?y=", "..", "a b"]
_BATCH_OBJECTS: dict[str, Any] = {  # a batch object of each provider, whose id or result file id is ``ref``
    "openai": lambda ref: {"id": "batch_1", "status": "completed", "output_file_id": ref},
    "mistral": lambda ref: {"id": "job-1", "status": "SUCCESS", "output_file": ref},
    "anthropic": lambda ref: {"id": ref, "processing_status": "ended"},
    "gemini": lambda ref: {"name": "batches/b1", "state": "BATCH_STATE_SUCCEEDED", "responsesFile": f"files/{ref}"},
}


@pytest.mark.parametrize("provider", list(_BATCH_OBJECTS))
@pytest.mark.parametrize("ref", _BAD_IDS)
def test_a_batch_object_whose_ids_point_elsewhere_is_malformed(provider: str, ref: str) -> None:
    """A batch id or a result file id that is not one path segment would point the polls or the downloads (with the
    key) at another resource of the host: the batch object is malformed."""
    adapter = adapter_class(provider)(ProviderSettings(provider, "https://example.test/v1", SecretStr("k-test"), 30))
    state = adapter.parse_batch("m", HTTPResponse(200, {}, json.dumps(_BATCH_OBJECTS[provider]("file-1")).encode()))
    assert state.id  # the same object with a good id is read
    with pytest.raises(MalformedResponseError, match="is not an id"):
        adapter.parse_batch("m", HTTPResponse(200, {}, json.dumps(_BATCH_OBJECTS[provider](ref)).encode()))
