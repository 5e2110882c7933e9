"""Batches, the pure part: requests -> validated batch lines, the estimate before submit, and each item's price.

Everything here is offline and provider-neutral: the adapter translates (a line's wire shape, the provider's
limits, a result line's answer), and the price tables price (at the batch price, beside the synchronous one, so
a report can show what batching saved). Nothing here sends anything: a batch whose lines do not all pass is
refused before any upload.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._constants import MAX_USAGE_COUNT
from ._core import check_tools, flatten_prompt, normalise_messages
from ._exceptions import InvalidRequestError
from ._finetune import BLANK_LINE, _Counter, count_example_tokens, decode_line
from ._http import encode_json
from ._targets import _encodable
from ._types import Completion, Cost, Embeddings, Usage
from .adapters._base import Adapter, BatchItem, CompleteRequest, EmbedRequest
from .pricing import BATCH_CONTEXT, PriceBook, PriceRef, TokenRates

__all__ = [
    "BATCH_ITEM",
    "MAX_NAMED_PROBLEMS",
    "MAX_RESULT_LINE_BYTES",
    "BatchTotals",
    "ItemCost",
    "ItemPrices",
    "LineReader",
    "PreparedBatch",
    "batch_estimate",
    "prepare_batch",
    "price_item",
    "read_requests",
    "result_lines",
    "summarise",
]

MAX_RESULT_LINE_BYTES = 64 * 1024 * 1024
"""A result line longer than this is a broken or hostile file: refused instead of buffered (one answer's body is
at most the model's output, far below this)."""
MAX_NAMED_PROBLEMS = 20
"""How many bad lines a refusal names (the count of the rest follows)."""
BATCH_ITEM = "batch {item}"
"""A batch item's cost lines: the synchronous line's name, marked as billed at the batch price."""

# A request's keys that are complete() options (everything else but the ids and the call's input is refused:
# a typo must not silently change what is run).
_COMPLETE_OPTIONS = frozenset({"max_tokens", "temperature", "top_p", "stop", "tools", "tool_choice",
                               "response_format", "seed", "service_tier", "user", "api"})
# A Responses API line's own fields, read as complete()'s (its other fields are refused like any unknown option).
_RESPONSES_FIELDS = frozenset({"input", "instructions", "max_output_tokens"})
_EMBED_OPTIONS = frozenset({"dimensions"})
_ID_KEYS = frozenset({"custom_id", "model"})
_ZERO = Decimal(0)
_SKIP_CHUNK = 1024 * 1024


@dataclass(slots=True)
class PreparedBatch:
    """A batch's requests, checked and translated, ready to upload or send inline.

    Attributes:
        kind: ``complete`` or ``embed`` (one batch runs one kind of call).
        requests: ``(custom_id, request)`` in order.
        lines: The provider's wire lines, in order.
        content: The JSONL the lines make (what is uploaded, or measured against the inline limit).
    """

    model: str
    kind: str
    requests: list[tuple[str, CompleteRequest | EmbedRequest]]
    lines: list[dict[str, Any]]
    content: bytes
    source: str = "requests"

    @property
    def count(self) -> int:
        """How many requests the batch holds."""
        return len(self.requests)


@dataclass(frozen=True, slots=True)
class ItemCost:
    """One batch item's price: at the batch rates (``cost``), and what the same usage costs synchronously."""

    cost: Cost
    synchronous: Cost
    saved: Decimal | None = field(default=None)
    """``synchronous - cost``, when both are known."""


# --------------------------------------------------------------------------------------------- reading


def read_requests(requests: Any, max_line: int | None = None) -> Iterator[tuple[int, Any]]:
    """``(line number, request)`` from a JSONL path, or ``(index + 1, request)`` from a list of dicts. A line that
    cannot be a request (not JSON or not UTF-8, ``NaN``, nested too deep, longer than ``max_line`` bytes) is
    yielded as the ``ValueError`` that says so, and named with the others; a file is read a line at a time, and a
    line over ``max_line`` is skipped unread, so a file of any size is checked in bounded memory.

    Raises:
        InvalidRequestError: ``requests`` is neither, or the file is missing.
    """
    if isinstance(requests, str | os.PathLike):
        path = Path(requests)
        if not path.is_file():
            raise InvalidRequestError(f"batch requests: no such file {str(path)!r}")
        with path.open("rb") as fh:
            n = 0
            while raw := fh.readline(-1 if max_line is None else max_line + 1):
                n += 1
                if max_line is not None and len(raw) > max_line and not raw.endswith(b"\n"):
                    _skip_line(fh)
                    yield n, ValueError(f"longer than {max_line:,} bytes, the most one batch takes")
                    continue
                yield n, decode_line(raw)
        return
    if isinstance(requests, Iterable) and not isinstance(requests, str | bytes | bytearray | Mapping):
        yield from enumerate(requests, 1)
        return
    raise InvalidRequestError(
        f"batch requests must be a list of request dicts or a path to a JSONL file, not {type(requests).__name__}"
    )


def _skip_line(fh: Any) -> None:
    """Read past the rest of a line, a chunk at a time."""
    while chunk := fh.readline(_SKIP_CHUNK):
        if chunk.endswith(b"\n"):
            return


def _request(adapter: Adapter, model: str, raw: Any) -> tuple[str, CompleteRequest | EmbedRequest]:
    """One request dict -> ``(custom_id, request)``: ``messages`` (or ``prompt``) make a ``complete()`` call,
    ``input`` an ``embed()`` call, with the same options those verbs take. The provider's own line shape
    (``{"custom_id", "body": {...}}``) is read too: its body holds the same fields."""
    if isinstance(raw, Exception):
        raise InvalidRequestError(str(raw))
    if not isinstance(raw, Mapping):
        raise InvalidRequestError(f"a request is a JSON object, not {type(raw).__name__}")
    custom_id = raw.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise InvalidRequestError("no custom_id (a non-empty string naming the request in the results)")
    if "\x00" in custom_id or not _encodable(custom_id):
        # It keys the item's ledger row and is one of its tags: no ledger could store the row of a billed item.
        raise InvalidRequestError(f"custom_id {custom_id!r} holds a NUL character or a lone surrogate")
    body: Mapping[str, Any] = raw["body"] if isinstance(raw.get("body"), Mapping) else raw
    if body.get("model") not in (None, model):
        raise InvalidRequestError(f"model {body.get('model')!r} differs from the batch's model {model!r}")
    if str(raw.get("url") or "").endswith("/responses"):
        body = _from_responses(body)
    if not isinstance(body.get("extra_body") or {}, Mapping):
        raise InvalidRequestError("extra_body must be an object of fields sent as they are")
    if body.get("tools") is not None:
        check_tools(body["tools"])
    extra = dict(body.get("extra_body") or {})
    if "input" in body or "inputs" in body:
        unknown = set(body) - _EMBED_OPTIONS - _ID_KEYS - {"input", "inputs", "extra_body", "encoding_format"}
        if unknown:
            raise InvalidRequestError(f"unknown embed() option(s): {', '.join(sorted(unknown))}")
        inputs = body.get("input", body.get("inputs"))
        items = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise InvalidRequestError("input must be a string or a non-empty list of strings")
        return custom_id, EmbedRequest(model=model, inputs=items, dimensions=body.get("dimensions"), extra=extra)
    unknown = set(body) - _COMPLETE_OPTIONS - _ID_KEYS - {"messages", "prompt", "extra_body", "stream"}
    if unknown:
        raise InvalidRequestError(f"unknown complete() option(s): {', '.join(sorted(unknown))}")
    if body.get("stream"):
        raise InvalidRequestError("a batched request cannot stream")
    messages = normalise_messages(body.get("prompt"), body.get("messages"))
    options = {k: body[k] for k in _COMPLETE_OPTIONS if body.get(k) is not None}
    req = CompleteRequest(model=model, messages=messages, extra=extra, **options)
    if adapter.uses_text_endpoint(model):  # as complete() sends it: the legacy endpoint takes one prompt
        req.prompt, req.messages = flatten_prompt(messages), []
    limit = adapter.output_limit(req)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or not 0 < limit <= MAX_USAGE_COUNT):
        # The estimate (and a budget's reservation) counts it as the request's output: it must be a count.
        raise InvalidRequestError(f"max_tokens must be a whole number of tokens from 1 to {MAX_USAGE_COUNT:,}, "
                                  f"not {limit!r}")
    return custom_id, req


def _from_responses(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses API line's body (``input``, ``instructions``, ``max_output_tokens``) as ``complete()``'s
    arguments with ``api="responses"``: the adapter builds the line again, as a Responses call.

    Raises:
        InvalidRequestError: ``input`` is neither a string nor a list of messages.
    """
    out = {k: v for k, v in body.items() if k not in _RESPONSES_FIELDS}
    given = body.get("input")
    if isinstance(given, str):
        messages: list[Any] = [{"role": "user", "content": given}]
    elif isinstance(given, list) and given and all(isinstance(m, Mapping) and "role" in m for m in given):
        messages = list(given)
    else:
        raise InvalidRequestError("a /v1/responses line's input must be a string or a list of messages")
    if isinstance(body.get("instructions"), str):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    return {**out, "messages": messages, "api": "responses"}


def prepare_batch(adapter: Adapter, model: str, requests: Any) -> PreparedBatch:
    """Check every request and translate it into the provider's batch line; refuse the batch if any is wrong.

    Raises:
        UnsupportedCapabilityError: The provider has no batch API (before anything else is read).
        InvalidRequestError: A request is wrong (every bad line is named by its number, with what to fix), the
            custom_ids repeat, the batch mixes chat and embeddings, or it exceeds the provider's count or size
            limit. Nothing was uploaded.
    """
    spec = adapter.batch_spec(model)
    source = str(requests) if isinstance(requests, str | os.PathLike) else "requests"
    problems: list[str] = []
    seen: dict[str, int] = {}
    kinds: set[str] = set()
    endpoints: set[str] = set()
    out: list[tuple[str, CompleteRequest | EmbedRequest]] = []
    lines: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    size = count = 0
    over = False  # past a limit: the lines after are still checked, no longer kept (the batch is refused)
    for n, raw in read_requests(requests, spec.max_bytes):
        if raw is BLANK_LINE:  # the trailing newline: no request
            continue
        try:
            custom_id, req = _request(adapter, model, raw)
            if custom_id in seen:
                raise InvalidRequestError(f"custom_id {custom_id!r} repeats line {seen[custom_id]}")
            kind = "embed" if isinstance(req, EmbedRequest) else "complete"
            if kind == "embed" and not spec.embed:
                raise adapter.unsupported("batch embeddings")
            line = adapter.batch_line(custom_id, req)
            encoded = encode_json(line) + b"\n"
        except (InvalidRequestError, ValueError, TypeError, RecursionError) as e:
            # A request of the wrong shape can fail anywhere in its translation: it is that line's problem.
            problems.append(f"line {n}: {e}")
            continue
        seen[custom_id] = n
        kinds.add(kind)
        if isinstance(line.get("url"), str):
            endpoints.add(line["url"])
        size += len(encoded)
        count += 1
        over = over or size > spec.max_bytes or (spec.max_requests is not None and count > spec.max_requests)
        if not over:
            out.append((custom_id, req))
            lines.append(line)
            chunks.append(encoded)
    if len(kinds) > 1:
        problems.append("the batch mixes complete() and embed() requests: one batch runs one kind")
    elif len(endpoints) > 1:
        problems.append(f"the batch mixes endpoints ({', '.join(sorted(endpoints))}): one batch runs one (pass the "
                        "same api= to every request)")
    if not count and not problems:
        problems.append("no requests")
    if spec.max_requests is not None and count > spec.max_requests:
        problems.append(f"{count} requests; {adapter.provider} takes at most {spec.max_requests:,} in one batch")
    if size > spec.max_bytes:
        problems.append(f"{size:,} bytes; {adapter.provider} takes at most {spec.max_bytes:,} in one batch")
    if problems:
        named = problems[:MAX_NAMED_PROBLEMS]
        more = len(problems) - len(named)
        raise InvalidRequestError(f"{source}: batch refused, nothing uploaded: " + "; ".join(named)
                                  + (f"; and {more} more" if more else ""))
    return PreparedBatch(model=model, kind=kinds.pop(), requests=out, lines=lines, content=b"".join(chunks),
                         source=source)


# --------------------------------------------------------------------------------------------- results


class LineReader:
    """Splits a result file arriving in chunks into ``(line number, line)``, blank lines skipped: only the line
    being read is buffered, so a file of any size is read in bounded memory (sync and async readers share it)."""

    def __init__(self, max_line: int = MAX_RESULT_LINE_BYTES) -> None:
        self.pending = bytearray()
        self.number = 0
        self.max_line = max_line

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """The lines ``chunk`` completed.

        Raises:
            ValueError: A line is longer than ``max_line`` bytes (the caller types it as a malformed answer).
        """
        pending, out, start = self.pending, [], 0
        # What was pending holds no newline (each was split off): only the new bytes are searched, so a long line
        # arriving in small chunks costs its length once, not its length once a chunk.
        seek = len(pending)
        pending += chunk
        while (end := pending.find(b"\n", max(start, seek))) >= 0:
            self.number += 1
            line = bytes(pending[start:end]).strip()
            if line:
                out.append((self.number, line))
            start = end + 1
        del pending[:start]
        if len(pending) > self.max_line:
            raise ValueError(f"result line {self.number + 1} is longer than {self.max_line:,} bytes")
        return out

    def close(self) -> list[tuple[int, bytes]]:
        """The last line, when the file does not end with a newline."""
        tail = bytes(self.pending).strip()
        self.pending.clear()
        return [(self.number + 1, tail)] if tail else []


def result_lines(chunks: Iterable[bytes], max_line: int = MAX_RESULT_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of a result file arriving in ``chunks`` (a streamed download): see
    :class:`LineReader`.

    Raises:
        ValueError: A line is longer than ``max_line`` bytes (the caller types it as a malformed answer).
    """
    reader = LineReader(max_line)
    for chunk in chunks:
        yield from reader.feed(chunk)
    yield from reader.close()


# --------------------------------------------------------------------------------------------- cost


def _batch_lines(cost: Cost) -> Cost:
    """``cost`` (priced for this item alone: its lines are its own) with each line named as billed at the batch
    price."""
    for line in cost.lines:
        line.item = BATCH_ITEM.format(item=line.item)
    return cost


class ItemPrices:
    """The price book for one read of a batch's results: each price reference's rates looked up once (a batch's
    items share a few references, the book resolves them again on every call) and each item priced from them as
    :meth:`PriceBook.token_cost <computekit.pricing.PriceBook.token_cost>` prices it, to the same figure. Kept
    for one read only, so a read always uses the tables' current rates."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        self.found: dict[PriceRef, TokenRates | None] = {}

    def token_cost(self, ref: PriceRef, usage: Usage) -> Cost:
        """``usage`` on ``ref``: what the book's ``token_cost`` gives."""
        try:
            rates = self.found[ref]
        except KeyError:
            rates = self.found[ref] = self.book.rates(ref)
        if rates is None:
            return self.book.token_cost(ref, usage)  # unpriced: the book says why
        try:
            return rates.cost(usage)
        except Exception:
            # A charge it has no rate for: the book prices it as unknown, says which, and warns once.
            return self.book.token_cost(ref, usage)

    def parts_cost(self, parts: list[tuple[str, PriceRef, Usage]]) -> Cost:
        """An answer billed in parts (rare in batches): as the book prices it."""
        return self.book.parts_cost(parts)


def batch_estimate(book: PriceBook, adapter: Adapter, batch: PreparedBatch) -> Cost:
    """What ``batch`` should cost, before anything is sent: every request's input tokens counted locally (the
    model's tokenizer where the fine-tuning estimate has one, else the byte bound), and its output at the most it
    may produce (its max_tokens), all at the batch price. Always ``estimated=True``; ``total=None`` (never 0)
    when the batch price or an output limit is unknown, with the reason.

    Raises:
        InvalidRequestError: The requests' tokens add up to more than :data:`MAX_USAGE_COUNT` (their max_tokens
            are absurd).
    """
    ref = adapter.batch_price_ref(batch.model)
    counter = _Counter(_encoding(adapter, batch.model))
    window = book.context_window(adapter.price_ref(batch.model))
    input_tokens = output_tokens = 0
    for custom_id, req in batch.requests:
        if isinstance(req, EmbedRequest):
            input_tokens += sum(counter(text) for text in req.inputs) if counter.enc is not None else (
                adapter.input_bound(req, window) or 0)
            continue
        if counter.enc is not None and req.prompt is not None:
            input_tokens += counter(req.prompt)
        elif counter.enc is not None:
            input_tokens += count_example_tokens({"messages": req.messages, "tools": req.tools}, counter)
        else:
            bound = adapter.input_bound(req, window)
            if bound is None:
                return Cost.unknown(f"{custom_id}: its media has no token rule and the model's window is unknown")
            input_tokens += bound
        limit = adapter.output_limit(req)
        if limit is None:
            return Cost.unknown(f"{custom_id}: no max_tokens, so its output is unbounded: pass max_tokens")
        output_tokens += limit
    if max(input_tokens, output_tokens) > MAX_USAGE_COUNT:
        raise InvalidRequestError(f"the batch may use {input_tokens:,} input and {output_tokens:,} output tokens, "
                                  f"more than the {MAX_USAGE_COUNT:,} computekit prices: lower its max_tokens")
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    cost = book.token_cost(ref, usage)
    if cost.total is None:
        return cost.model_copy(update={"estimated": True})
    counted = counter.name if counter.enc is not None else "at most one token a byte"
    lines = [line.model_copy(update={"item": f"batch {line.item} ({batch.count} requests; "
                                             + (f"counted with {counted})" if line.item == "input"
                                                else "at each request's max_tokens)")})
             for line in cost.lines]
    return cost.model_copy(update={"lines": lines, "estimated": True})


def _encoding(adapter: Adapter, model: str) -> str | None:
    """The tokenizer the fine-tuning estimate counts ``model`` with, when the provider offers one."""
    if not adapter.capabilities.finetune:
        return None
    try:
        return adapter.finetune_spec(model).encoding
    except InvalidRequestError:
        return None


def price_item(book: PriceBook | ItemPrices, adapter: Adapter, model: str, item: BatchItem) -> ItemCost:
    """One result's cost at the batch price (lines named "batch ..."), and the same usage's synchronous price.

    A failed item the provider did not bill costs 0 (with the reason); one it billed is priced like an answer.
    ``book`` is the price book, or an :class:`ItemPrices` over it for a whole read (the same figures, faster)."""
    result: Completion | Embeddings | None = item.result
    if result is None:
        if not item.billed:
            free = Cost(total=_ZERO, reason="batch item failed: not billed")
            return ItemCost(free, free, _ZERO)
        unknown = Cost.unknown("batch item failed after processing: the provider reported no usage")
        return ItemCost(unknown, unknown)
    ref = adapter.price_ref(model, result)
    parts = adapter.billed_parts(ref, result)
    if parts:
        sync = book.parts_cost([(p.kind, p.ref, p.usage) for p in parts])
        batch = book.parts_cost([(p.kind, _in_batch(p.ref), p.usage) for p in parts])
    else:
        sync = book.token_cost(ref, result.usage)
        batch = book.token_cost(adapter.batch_price_ref(model, result), result.usage)
    batch = _batch_lines(batch)
    saved = sync.total - batch.total if sync.total is not None and batch.total is not None else None
    return ItemCost(batch, sync, saved)


def _in_batch(ref: PriceRef) -> PriceRef:
    return replace(ref, context=(*ref.context, BATCH_CONTEXT))


@dataclass(slots=True)
class BatchTotals:
    """Running totals over a batch's items, kept as results stream by (no item is held): what the batch cost, what
    the same usage costs synchronously, and the difference. A total is ``None`` once any item's is unknown."""

    items: int = 0
    cost: Decimal | None = _ZERO
    synchronous: Decimal | None = _ZERO
    saved: Decimal | None = _ZERO

    def add(self, priced: ItemCost) -> None:
        """Count one item's prices in."""
        self.items += 1
        self.cost = _plus(self.cost, priced.cost.total)
        self.synchronous = _plus(self.synchronous, priced.synchronous.total)
        self.saved = _plus(self.saved, priced.saved)


def _plus(total: Decimal | None, value: Decimal | None) -> Decimal | None:
    return None if total is None or value is None else total + value


def summarise(costs: Iterable[ItemCost]) -> BatchTotals:
    """The totals over ``costs``."""
    totals = BatchTotals()
    for priced in costs:
        totals.add(priced)
    return totals
