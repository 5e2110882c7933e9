"""``FakeProvider``: a scripted provider for fully offline unit tests (``fake:`` models).

The fake is an in-process *server* (mounted at ``inproc://NAME``): it answers the HTTP requests that the
``fake`` adapter builds with wire-format responses (OpenAI's for chat and embeddings, Replicate's for
predictions). So every call goes through computekit's real client path — routing, the retry loop, fallbacks,
pricing, the ledger — and a scripted ``RateLimitError`` is retried, honoured and fallen back from exactly as one
from a remote provider would be.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from .. import _inprocess
from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    MalformedResponseError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from .._types import ToolCall, Usage

if TYPE_CHECKING:
    from .._client import AsyncClient, Client
    from ..adapters._base import HTTPRequest

__all__ = ["Fail", "FakeCall", "FakeProvider", "Reply", "Run", "ScriptExhaustedError"]

_CHARS_PER_TOKEN = 4
"""The fake's usage when none is scripted: about four characters a token (deterministic, never zero)."""
_EMBED_DIMENSIONS = 8
_DEFAULT_STATUS = 400


class ScriptExhaustedError(AssertionError):
    """A fake was called more times than its script has replies: the code under test made an unexpected call.

    An ``AssertionError``: it is not a provider error, so nothing retries it or falls back from it.
    """


@dataclass(slots=True)
class Reply:
    """One scripted completion.

    Attributes:
        text: The answer's text.
        tool_calls: Tool calls the model asks for (``ck.ToolCall`` or ``{"name", "arguments", "id"}`` dicts;
            ``arguments`` may be a dict, sent as JSON).
        usage: ``(input_tokens, output_tokens)`` or a ``ck.Usage``; default: about four characters a token.
        finish_reason: Default ``"tool_calls"`` when there are tool calls, else ``"stop"``.
        chunks: The pieces a stream sends (default: the text, word by word).
        latency: Seconds before the answer (default: the provider's ``latency``).
        cut_after: A stream stops after this many pieces, without its last event (a broken stream).
        model: The model the fake says answered (default: the one asked for).
    """

    text: str = ""
    tool_calls: Sequence[ToolCall | Mapping[str, Any]] = ()
    usage: Usage | tuple[int, int] | None = None
    finish_reason: str | None = None
    chunks: Sequence[str] | None = None
    latency: float | None = None
    cut_after: int | None = None
    model: str | None = None


@dataclass(slots=True)
class Fail:
    """One scripted failure: the fake answers with the error status (or transport failure) of ``error``.

    Attributes:
        error: A computekit error class (``ck.RateLimitError``, ``ck.ContextWindowExceededError``,
            ``ck.APITimeoutError``, ``ck.APIConnectionError``, ``ck.MalformedResponseError`` ...).
        message: The error message the fake sends.
        status: The HTTP status (default: the one the error class stands for: 429 for ``RateLimitError`` ...).
        retry_after: Seconds, sent as ``retry-after`` (the retry loop honours it).
        headers: More response headers.
        latency: Seconds before the answer (default: the provider's ``latency``).
    """

    error: type[ProviderError]
    message: str = "scripted failure"
    status: int | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    latency: float | None = None


@dataclass(slots=True)
class Run:
    """One scripted prediction (``predict("fake:...", {...})``).

    Attributes:
        output: The run's output.
        status: How it ends: ``"succeeded"``, ``"failed"`` or ``"canceled"``.
        gpu_seconds: The run time the fake reports (``metrics.predict_time``), priced per second by config
            ``[prices] "fake:HARDWARE" = { per_second = "..." }`` with ``predict(hardware="HARDWARE")``.
        polls: How many polls answer "still running" before the end.
        logs: The run's logs.
        error: The error message of a failed run.
        units: Output units billed instead of time (``{"images": 2}``), priced by ``FakeProvider(price=...)``.
    """

    output: Any = None
    status: Literal["succeeded", "failed", "canceled"] = "succeeded"
    gpu_seconds: float | None = 1.0
    polls: int = 0
    logs: str = ""
    error: str | None = None
    units: Mapping[str, int | Decimal] = field(default_factory=dict)


ScriptItem = str | Reply | Fail | Run | ProviderError | type[ProviderError] | Callable[["FakeCall"], Any]


@dataclass(slots=True)
class FakeCall:
    """One request the fake received (``fake.calls``), for assertions on what the code under test sent.

    Attributes:
        verb: ``"complete"``, ``"stream"``, ``"embed"``, ``"predict"``, ``"predict.get"`` or ``"predict.cancel"``.
        model: The model asked for.
        body: The request body, parsed.
    """

    verb: str
    model: str
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages sent (OpenAI's shape)."""
        return list(self.body.get("messages") or [])

    @property
    def prompt(self) -> str:
        """The text of the last user message (or the embedding inputs, joined)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return _text(m.get("content"))
        inputs = self.body.get("input")
        if isinstance(inputs, list):
            return "\n".join(str(i) for i in inputs)
        return ""


# Error class -> the status it stands for (most specific first).
_STATUS_OF: tuple[tuple[type[APIStatusError], int], ...] = (
    (OverloadedError, 529),
    (ServerError, 500),
    (RateLimitError, 429),
    (ConflictError, 409),
    (NotFoundError, 404),
    (PermissionDeniedError, 403),
    (AuthenticationError, 401),
    (BadRequestError, 400),
)


class FakeProvider:
    """A scripted provider, answered in-process: ``fake:MODEL`` model ids, no key, no network.

    ::

        fake = FakeProvider(["Hello!", Fail(ck.RateLimitError, retry_after=2), "Second answer"],
                            price_in="0.15", price_out="0.60")
        r = ck.complete("fake:small", "hi")          # "Hello!", priced at $0.15 / $0.60 per 1M tokens

    Args:
        replies: The script, consumed one item per request: a ``str`` (a reply's text), :class:`Reply`,
            :class:`Fail`, :class:`Run` (a prediction), a computekit error class or instance, or a callable
            that gets the :class:`FakeCall` and returns one of those. A mapping ``{model: [items]}`` scripts
            each model separately (``"*"``: any other model). No script at all: every reply echoes the prompt.
            A script that runs out raises :class:`ScriptExhaustedError`. Embeddings are derived from the
            text (equal texts embed equally) and take items only from their own model's script.
        name: The provider name (and in-process host): ``fake`` by default. Another name needs
            ``[providers.NAME] adapter = "fake"`` (see :meth:`provider_config`).
        price_in: USD per 1M input tokens; with ``price_out``, calls are priced as a real model's would be.
        price_out: USD per 1M output tokens.
        price: More prices, by price key (``cache_read_mtok``, ``per_request``, or a unit name such as
            ``images``). Without any price the cost is ``None`` (unless config ``[prices]`` names one).
        latency: Seconds each answer takes. A latency above the request's timeout is a timeout.
        sleep: How a sync client waits out the latency (default ``time.sleep``; inject a fake clock's).
        asleep: How an async client waits it out (default ``asyncio.sleep``).
        embedding_dimensions: Length of the fake's embedding vectors (when the call does not ask for one).

    The fake is mounted when made (replacing any fake of the same name) and unmounted by :meth:`close` or at
    the end of a ``with`` block.
    """

    def __init__(
        self,
        replies: Iterable[ScriptItem] | Mapping[str, Iterable[ScriptItem]] = (),
        *,
        name: str = "fake",
        price_in: Decimal | str | float | None = None,
        price_out: Decimal | str | float | None = None,
        price: Mapping[str, Decimal | str | float] | None = None,
        latency: float = 0.0,
        sleep: Callable[[float], None] | None = None,
        asleep: Callable[[float], Awaitable[None]] | None = None,
        embedding_dimensions: int = _EMBED_DIMENSIONS,
    ) -> None:
        self.name = name
        self.latency = latency
        self._sleep = sleep or time.sleep
        self._asleep = asleep or asyncio.sleep
        self.embedding_dimensions = embedding_dimensions
        self.prices: dict[str, Decimal] = {k: Decimal(str(v)) for k, v in (price or {}).items()}
        if price_in is not None:
            self.prices["input_mtok"] = Decimal(str(price_in))
        if price_out is not None:
            self.prices["output_mtok"] = Decimal(str(price_out))
        self.calls: list[FakeCall] = []
        self._scripts: dict[str, deque[ScriptItem]] = {}
        self._scripted = False
        self._runs: dict[str, tuple[Run, int]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        if isinstance(replies, Mapping):
            for model, items in replies.items():
                self.script(*items, model=model)
        else:
            items = list(replies)
            if items:
                self.script(*items)
        _inprocess.mount(name, self)

    # ----------------------------------------------------------------------------------------- set-up

    def script(self, *items: ScriptItem, model: str = "*") -> FakeProvider:
        """Append replies to the script (of ``model``, or of every model without one of its own).

        Returns:
            The fake, to chain calls.
        """
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(items)
            self._scripted = True
        return self

    def provider_config(self) -> dict[str, Any]:
        """The ``providers`` entry that reaches this fake: ``{NAME: {"adapter": "fake"}}``."""
        return {self.name: {"adapter": "fake"}}

    def client(self, **settings: Any) -> Client:
        """A :class:`~computekit.Client` with no config file that knows this fake (``settings`` as for
        ``Client``; ``providers`` are merged)."""
        from .._client import Client

        return Client(**self._settings(settings))

    def async_client(self, **settings: Any) -> AsyncClient:
        """The async twin of :meth:`client`."""
        from .._client import AsyncClient

        return AsyncClient(**self._settings(settings))

    def _settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        out = {"config": None, "ledger": "none", **settings}
        out["providers"] = {**self.provider_config(), **dict(settings.get("providers") or {})}
        return out

    def close(self) -> None:
        """Unmount the fake: ``fake:`` calls then fail to connect."""
        _inprocess.unmount(self.name, self)

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        left = sum(len(q) for q in self._scripts.values())
        return f"FakeProvider(name={self.name!r}, calls={len(self.calls)}, replies_left={left})"

    # ----------------------------------------------------------------------------------------- the server

    def sleep(self, seconds: float) -> None:
        """Wait out a latency (sync clients)."""
        self._sleep(seconds)

    def asleep(self, seconds: float) -> Awaitable[None]:
        """Wait out a latency (async clients)."""
        return self._asleep(seconds)

    def respond(self, req: HTTPRequest, provider: str, model: str | None) -> _inprocess.LocalReply:
        """Answer one request in the fake's wire format (called by computekit's transports)."""
        path = req.url[len(_inprocess.SCHEME):].split("/", 1)[1] if "/" in req.url[len(_inprocess.SCHEME):] else ""
        body = json.loads(req.body() or b"{}") if req.method == "POST" else {}
        if path.startswith("predictions/"):
            return self._lifecycle(req.method, path, body)
        verb = {"chat/completions": "stream" if body.get("stream") else "complete", "embeddings": "embed"}.get(
            path, "predict" if path.endswith("/predictions") else ""
        )
        if not verb:
            return _json_reply(404, {"error": {"message": f"the fake serves no {path!r}", "type": "NotFoundError"}})
        asked = str(body.get("model") or model or "")
        if verb == "predict":
            asked = path.removeprefix("models/").removesuffix("/predictions")
        call = FakeCall(verb, asked, body)
        with self._lock:
            self.calls.append(call)
            item = self._next(call)
        while callable(item) and not isinstance(item, type):
            item = item(call)
        if isinstance(item, Fail | ProviderError) or (isinstance(item, type) and issubclass(item, ProviderError)):
            return self._fail(_as_fail(item), provider, asked)
        if verb == "predict":
            return self._predict(item if isinstance(item, Run) else Run(output=item))
        reply = item if isinstance(item, Reply) else Reply(text=str(item))
        if verb == "embed":
            return self._embed(call, reply)
        return self._complete(call, reply, stream=verb == "stream")

    def _next(self, call: FakeCall) -> ScriptItem:
        queue = self._scripts.get(call.model)
        if (queue is None or not queue) and call.verb != "embed":
            queue = self._scripts.get("*")
        if queue:
            return queue.popleft()
        if not self._scripted or call.verb == "embed":
            # No script: echo the prompt. Embeddings come from the text unless their model has a script.
            return Reply(text=call.prompt)
        raise ScriptExhaustedError(
            f"FakeProvider {self.name!r}: no scripted reply left for call {len(self.calls)} "
            f"({call.verb} {self.name}:{call.model}); script more replies with fake.script(...)"
        )

    def _delay(self, latency: float | None) -> float:
        return self.latency if latency is None else latency

    # ----------------------------------------------------------------------------------------- replies

    def _usage(self, call: FakeCall, reply: Reply, text: str) -> dict[str, Any]:
        if isinstance(reply.usage, Usage):
            u = reply.usage
            inp, out, cached, reasoning = u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens
        elif reply.usage is not None:
            (inp, out), cached, reasoning = reply.usage, 0, 0
        else:
            sent = sum(len(_text(m.get("content"))) for m in call.messages) or len(call.prompt)
            inp, out, cached, reasoning = _tokens(sent), _tokens(len(text)), 0, 0
        usage: dict[str, Any] = {
            "prompt_tokens": inp,
            "completion_tokens": out,
            "total_tokens": inp + out,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        if self.prices:
            usage["price"] = {k: str(v) for k, v in self.prices.items()}
        return usage

    def _complete(self, call: FakeCall, reply: Reply, *, stream: bool) -> _inprocess.LocalReply:
        n = next(self._ids)
        calls = [_wire_call(tc, i, n) for i, tc in enumerate(reply.tool_calls)]
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        answered = reply.model or call.model
        usage = self._usage(call, reply, reply.text + "".join(c["function"]["arguments"] for c in calls))
        rid = f"fake-{n}"
        headers = {"x-request-id": f"req_fake_{n}"}
        delay = self._delay(reply.latency)
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if calls:
                message["tool_calls"] = calls
            return _json_reply(200, {
                "id": rid, "object": "chat.completion", "model": answered,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }, headers, delay)
        pieces = list(reply.chunks) if reply.chunks is not None else _words(reply.text)
        events: list[dict[str, Any]] = [
            _delta(rid, answered, {"content": p}) for p in pieces
        ]
        for i, c in enumerate(calls):
            events.append(_delta(rid, answered, {"tool_calls": [{"index": i, **c}]}))
        if reply.cut_after is not None:
            chunks = [_sse(e) for e in events[: reply.cut_after]]
        else:
            events.append({**_delta(rid, answered, {}), "choices": [{"index": 0, "delta": {},
                                                                    "finish_reason": finish}]})
            events.append({"id": rid, "object": "chat.completion.chunk", "model": answered, "choices": [],
                           "usage": usage})
            chunks = [_sse(e) for e in events] + [b"data: [DONE]\n\n"]
        return _inprocess.LocalReply(200, {"content-type": "text/event-stream", **headers}, chunks, delay)

    def _embed(self, call: FakeCall, reply: Reply) -> _inprocess.LocalReply:
        inputs = call.body.get("input") or []
        dims = int(call.body.get("dimensions") or self.embedding_dimensions)
        data = [{"object": "embedding", "index": i, "embedding": _vector(str(t), dims)} for i, t in enumerate(inputs)]
        tokens = sum(_tokens(len(str(t))) for t in inputs)
        if isinstance(reply.usage, Usage):
            tokens = reply.usage.input_tokens
        elif reply.usage is not None:
            tokens = reply.usage[0]
        usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
        if self.prices:
            usage["price"] = {k: str(v) for k, v in self.prices.items()}
        return _json_reply(200, {"object": "list", "model": call.model, "data": data, "usage": usage},
                           {"x-request-id": f"req_fake_{next(self._ids)}"}, self._delay(reply.latency))

    def _fail(self, fail: Fail, provider: str, model: str) -> _inprocess.LocalReply:
        delay = self._delay(fail.latency)
        kind = fail.error
        if issubclass(kind, APITimeoutError | APIConnectionError):
            return _inprocess.LocalReply(delay=delay, error=kind(fail.message, provider=provider, model=model))
        if issubclass(kind, MalformedResponseError):
            return _inprocess.LocalReply(200, {"content-type": "text/html"}, [b"<html>not the API</html>"], delay)
        status = fail.status or next((s for cls, s in _STATUS_OF if issubclass(kind, cls)), _DEFAULT_STATUS)
        headers = {k.lower(): v for k, v in fail.headers.items()}
        if fail.retry_after is not None:
            headers["retry-after"] = f"{fail.retry_after:g}"
        headers.setdefault("x-request-id", f"req_fake_{next(self._ids)}")
        body = {"error": {"message": fail.message, "type": kind.__name__}}
        return _json_reply(status, body, headers, delay)

    # ----------------------------------------------------------------------------------------- predictions

    def _prediction(self, pid: str, run: Run, polls_left: int, status: str | None = None) -> dict[str, Any]:
        if status is None:
            status = "processing" if polls_left > 0 else run.status
        done = status in ("succeeded", "failed", "canceled")
        metrics: dict[str, Any] = {}
        if done and run.gpu_seconds is not None:
            metrics["predict_time"] = run.gpu_seconds
        if done and run.units:
            metrics["units"] = {k: str(v) for k, v in run.units.items()}
        out: dict[str, Any] = {
            "id": pid, "status": status, "logs": run.logs,
            "output": run.output if status == "succeeded" else None,
            "error": run.error if status == "failed" else None,
            "metrics": metrics,
            "urls": {"get": f"{_inprocess.SCHEME}{self.name}/predictions/{pid}",
                     "cancel": f"{_inprocess.SCHEME}{self.name}/predictions/{pid}/cancel"},
        }
        if self.prices:
            out["price"] = {k: str(v) for k, v in self.prices.items()}
        return out

    def _predict(self, run: Run) -> _inprocess.LocalReply:
        pid = f"fake-run-{next(self._ids)}"
        with self._lock:
            self._runs[pid] = (run, run.polls)
        return _json_reply(201, self._prediction(pid, run, run.polls), delay=self.latency)

    def _lifecycle(self, method: str, path: str, body: dict[str, Any]) -> _inprocess.LocalReply:
        parts = path.split("/")
        pid = parts[1]
        with self._lock:
            found = self._runs.get(pid)
            if found is None:
                return _json_reply(404, {"error": {"message": f"no prediction {pid}", "type": "NotFoundError"}})
            run, left = found
            cancel = method == "POST" and parts[-1] == "cancel"
            self.calls.append(FakeCall("predict.cancel" if cancel else "predict.get", pid, body))
            if cancel:
                self._runs[pid] = (run, 0)
                return _json_reply(200, self._prediction(pid, run, 0, "canceled" if left > 0 else run.status))
            left = max(left - 1, 0)
            self._runs[pid] = (run, left)
        return _json_reply(200, self._prediction(pid, run, left), delay=self.latency)


# --------------------------------------------------------------------------------------------- helpers


def _as_fail(item: Any) -> Fail:
    if isinstance(item, Fail):
        return item
    if isinstance(item, ProviderError):
        retry = item.headers.get("retry-after")
        return Fail(type(item), item.message, item.status, float(retry) if retry else None,
                    {k: v for k, v in item.headers.items() if k != "retry-after"})
    return Fail(item)


def _json_reply(status: int, data: Any, headers: Mapping[str, str] | None = None,
                delay: float = 0.0) -> _inprocess.LocalReply:
    return _inprocess.LocalReply(status, {"content-type": "application/json", **(headers or {})},
                                 [json.dumps(data).encode()], delay)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content or "")


def _tokens(chars: int) -> int:
    return max(1, -(-chars // _CHARS_PER_TOKEN))


def _words(text: str) -> list[str]:
    """``"a b c"`` -> ``["a", " b", " c"]``: pieces that join back to the text."""
    if not text:
        return []
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def _wire_call(tc: ToolCall | Mapping[str, Any], i: int, n: int) -> dict[str, Any]:
    if isinstance(tc, ToolCall):
        name, args, cid = tc.name, tc.arguments, tc.id
    else:
        name, args, cid = str(tc["name"]), tc.get("arguments", ""), str(tc.get("id") or f"call_fake_{n}_{i}")
    if not isinstance(args, str):
        args = json.dumps(args)
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def _delta(rid: str, model: str, delta: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit-free vector for ``text``: equal texts embed equally."""
    digest = b""
    counter = 0
    while len(digest) < dims:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    return [round(b / 127.5 - 1, 6) for b in digest[:dims]]
