"""The adapter contract.

An adapter **translates**: a normalised request into an :class:`HTTPRequest`, and an :class:`HTTPResponse` (or
a stream of server-sent events) into computekit's types. It never does I/O, never retries, never sleeps and never
routes — the client does those once, for every provider, sync and async. That is what keeps the sync and async
paths one core: both call the same adapter methods and differ only in how bytes move.

A third-party package adds a provider by subclassing :class:`Adapter` and registering the class under the
``computekit.adapters`` entry-point group::

    [project.entry-points."computekit.adapters"]
    myhost = "my_package.adapter:MyHostAdapter"
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from .._background import BackgroundResponse
from .._constants import MAX_SSE_EVENT_BYTES
from .._exceptions import (
    APIStatusError,
    MalformedResponseError,
    MissingAPIKeyError,
    ProviderError,
    ServerError,
    UnsupportedCapabilityError,
)
from .._http import STATUS_ERRORS, HTTPRequest, HTTPResponse, SSEEvent
from .._structured import OutputType
from .._types import (
    Chunk,
    Completion,
    Cost,
    Embeddings,
    FineTuneCheckpoint,
    FineTuneEvent,
    FineTuneJob,
    Prediction,
    PriceSource,
    Reranking,
    Result,
    Usage,
)
from .._urls import same_origin
from ..pricing import BATCH_CONTEXT, PriceRef

__all__ = [
    "BATCH_STATUSES",
    "Adapter",
    "AdapterSettings",
    "BatchItem",
    "BatchSpec",
    "BatchState",
    "BilledPart",
    "Capabilities",
    "CompleteRequest",
    "EmbedRequest",
    "EventDecoder",
    "FineTuneBilling",
    "FineTuneRequest",
    "FineTuneSpec",
    "HTTPRequest",
    "HTTPResponse",
    "ModelInfo",
    "PredictRequest",
    "ProviderSettings",
    "RerankRequest",
    "SSEEvent",
    "StreamDecoder",
    "StreamUpdate",
    "TrainingFile",
    "base_url_from_env",
    "carried_status",
    "count",
    "event_object",
    "multipart",
    "obj",
    "refused_values",
    "sampling_options",
    "unix_time",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do; the client, CLI and router ask this instead of knowing providers."""

    complete: bool = False
    stream: bool = False
    tools: bool = False
    json_mode: bool = False
    embed: bool = False
    text_completion: bool = False
    rerank: bool = False
    predict: bool = False
    predict_stream: bool = False
    """``Prediction.stream()``: the host streams a run's output while it runs."""
    finetune: bool = False
    batch: bool = False
    """A batch API: requests run asynchronously at the provider's batch prices."""
    bills_failed_requests: bool = False
    """Whether an error response is billed (none of the token APIs bill them)."""

    def names(self) -> list[str]:
        """The names of the capabilities that are on."""
        return [f.name for f in fields(self) if f.name != "bills_failed_requests" and getattr(self, f.name)]


class AdapterSettings(BaseModel):
    """The keys an adapter adds to its ``[providers.NAME]`` table: none, unless the adapter declares some.

    An adapter with settings of its own (an API version, a deployment map, a region, a project ...) subclasses
    this model in its own module and names it in :attr:`Adapter.settings_model`. The configuration validates the
    table's keys that are not common to every provider against that model when it is loaded (a mistake is a
    :class:`~computekit.ConfigError` naming the key, ``providers.NAME.key``), and the adapter reads the validated
    values from :attr:`Adapter.options`. Unknown keys are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """A provider's resolved settings: what an adapter is built from.

    ``api_key`` is a :class:`~pydantic.SecretStr`: its value is read only where a header is built.
    """

    name: str
    base_url: str
    api_key: SecretStr | None
    timeout: float
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotency_header: str | None = None
    key_env_vars: tuple[str, ...] | None = None
    """The env vars the key was looked up in (``api_key_env`` when configured); ``None``: the adapter's."""
    max_body_bytes: Mapping[str, int] = field(default_factory=dict)
    """The largest decoded answer per verb (``complete``, ``embed``, ``rerank``, ``predict``); else the default."""
    max_event_bytes: int = MAX_SSE_EVENT_BYTES
    """The largest server-sent event of a stream."""
    options: AdapterSettings | None = None
    """The adapter's own settings, validated against its :attr:`Adapter.settings_model` (``None``: its defaults)."""
    ambient_credentials: bool = True
    """Whether credentials the adapter finds itself (the AWS credential chain, Google's Application Default
    Credentials) may be sent to ``base_url``: ``False`` for a per-call base URL off the configured origin, which
    gets no configured key either."""

    def __repr__(self) -> str:
        key = "SecretStr('**********')" if self.api_key is not None else "None"
        return f"ProviderSettings(name={self.name!r}, base_url={self.base_url!r}, api_key={key})"


@dataclass(slots=True)
class CompleteRequest:
    """A ``complete()`` call, normalised. ``messages`` are plain dicts in computekit's message shape."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: Any = None
    seed: int | None = None
    service_tier: str | None = None
    user: str | None = None
    stream: bool = False
    prompt: str | None = None
    """For the legacy text-completion endpoint: the raw prompt (``messages`` is then empty)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Provider-specific body fields, passed through as they are."""
    api: str | None = None
    """The wire format asked for this call (``"chat"`` or ``"responses"``), ``None``: the adapter's default."""
    output: OutputType | None = None
    """``response_format`` given as a type: the schema to send in the provider's dialect (``response_format``
    then holds its dict form, for adapters that read only that)."""
    background: bool = False
    """``complete(..., background=True)``: the provider runs it in the background and answers with a handle
    that is polled (only adapters whose :meth:`Adapter.serves_background` is true ever see it set)."""


@dataclass(slots=True)
class EmbedRequest:
    """An ``embed()`` call, normalised."""

    model: str
    inputs: list[str]
    dimensions: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RerankRequest:
    """A ``rerank()`` call, normalised."""

    model: str
    query: str
    documents: list[str]
    top_n: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PredictRequest:
    """A ``predict()`` call, normalised."""

    model: str
    input: dict[str, Any]
    wait: bool = True
    """Ask the host to hold the request open until the run ends, where it can (Replicate ``Prefer: wait``)."""
    hardware: str | None = None
    webhook: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    """The call's ``timeout=``: a host's sync mode must not hold the create request longer."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a host publishes about a model, looked up once per client (:meth:`Adapter.model_info_request`).

    Attributes:
        input_schema: The JSON schema of the model's input (checked before a run is created), if published.
        schema_root: The document ``$ref`` in ``input_schema`` resolve against (an OpenAPI document).
        hardware: The hardware SKU the model runs on, when the host reports it (a deployment's configuration).
        state: The adapter's own notes between lookups (which ones were made, ids learnt on the way).
    """

    input_schema: Mapping[str, Any] | None = None
    schema_root: Mapping[str, Any] | None = None
    hardware: str | None = None
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StreamUpdate:
    """What one piece of a prediction's stream said (an SSE event, or one poll of a polled stream)."""

    output: list[Any] = field(default_factory=list)
    """Output pieces, in order (text for language models; whatever the model yields otherwise)."""
    logs: str = ""
    done: bool = False
    """The stream has ended: the run finished, failed or was canceled."""
    error: Any = None


@dataclass(frozen=True, slots=True)
class FineTuneSpec:
    """How a provider takes fine-tuning data for a model: what computekit checks before anything is uploaded."""

    data: str = "chat"
    """``"chat"``: JSONL of ``{"messages": [...]}`` examples (``"preference"`` examples for DPO), validated and
    uploaded by computekit; ``"url"``: a file the trainer fetches itself (Replicate), passed as it is."""
    methods: tuple[str, ...] = ("supervised",)
    """Training methods offered (``supervised``, ``dpo``)."""
    encoding: str | None = None
    """The tiktoken encoding that counts the model's tokens (``o200k_base``); ``None``: estimated from length."""
    max_example_tokens: int | None = None
    """The longest example the provider accepts, when the price table does not say."""
    provider_estimate: bool = False
    """Whether the provider prices a job before launch (Together's estimate endpoint, Mistral's dry run)."""
    min_examples: int = 1
    """The fewest training examples the provider accepts (OpenAI: 10)."""


@dataclass(slots=True)
class TrainingFile:
    """Fine-tuning data, validated and serialised (or a remote file passed through)."""

    filename: str
    content: bytes = b""
    examples: int = 0
    tokens: int = 0
    """Tokens in one pass over the data (one epoch), as counted by ``counted_by``."""
    counted_by: str = ""
    url: str | None = None
    """A file the trainer fetches itself: nothing is uploaded."""
    input_key: str | None = None
    """Where a remote file goes in the trainer's input (Replicate: ``train_data`` unless named)."""
    ref: str | None = None
    """The provider's id for the uploaded file, once uploaded."""


@dataclass(slots=True)
class FineTuneRequest:
    """A ``finetune()`` call, normalised."""

    model: str
    training: TrainingFile
    validation: TrainingFile | None = None
    epochs: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    method: str = "supervised"
    destination: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BilledPart:
    """One part of a call billed on its own: what a provider ran inside the call beside the answer (a
    compaction pass, an advisor model's turn), priced at ``ref``'s rates. ``kind`` names its cost lines
    (``"compaction input"``); the empty kind is the answer itself."""

    kind: str
    ref: PriceRef
    usage: Usage


@dataclass(frozen=True, slots=True)
class FineTuneBilling:
    """What a provider reported that a job's cost comes from (any may be missing)."""

    trained_tokens: int | None = None
    gpu_seconds: Decimal | None = None
    hours: Decimal | None = None
    reported_total: Decimal | None = None
    """The provider's own figure for the job's price, in USD."""
    reported_as: str = ""
    """Where the provider's figure was read (``total_price``, ``metadata.cost``)."""
    estimated: str | None = None
    """Why this is not a billed figure, when it is not (the host reports no billed quantity): the actual cost is
    then marked estimated. With no figure and no quantity at all, it is priced from the tokens counted at launch
    x the job's epochs."""


BATCH_STATUSES = ("validating", "in_progress", "finalizing", "completed", "failed", "expired", "canceling",
                  "canceled")
"""A batch's normalised statuses: every provider's own states map onto these."""
BATCH_ENDED = frozenset({"completed", "failed", "expired", "canceled"})


class DecodedResponse(HTTPResponse):
    """A response whose body was decoded already (a batch result line's embedded answer, decoded with its line):
    :meth:`json` returns that body without parsing it again, and its bytes are encoded only if a parser asks
    for them (to keep a malformed body, or to scan it)."""

    __slots__ = ("_body", "_encoded")
    _body: Any
    _encoded: bytes | None

    def __init__(self, status: int, headers: Mapping[str, str], body: Any, url: str = "") -> None:
        self.status, self.headers, self.url = status, headers, url
        self._body, self._encoded = body, None

    @property
    def content(self) -> bytes:
        if self._encoded is None:
            self._encoded = json.dumps(self._body).encode()
        return self._encoded

    @content.setter
    def content(self, value: bytes) -> None:
        self._encoded = value

    def json(self) -> Any:
        # A parser that reads the body reads it as it was decoded (the same value json.loads(content) gives).
        return self._body


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """What a provider's batch API accepts: checked on every line before anything is uploaded."""

    max_requests: int | None
    """The most requests one batch takes (``None``: bounded by size only)."""
    max_bytes: int
    """The largest input (the JSONL file, or the create request's body when the lines go inline)."""
    uploads: bool = True
    """``True``: the lines go in a file uploaded first (:meth:`Adapter.build_batch_upload`); ``False``: inline in
    the create request."""
    embed: bool = True
    """Whether ``embed()`` calls can be batched (else only ``complete()`` calls)."""


@dataclass(slots=True)
class BatchState:
    """A batch job as its provider last described it (create, get or cancel answer).

    Attributes:
        id: The provider's batch id.
        status: Normalised (:data:`BATCH_STATUSES`); ``provider_status`` keeps the provider's own word.
        total: Requests in the batch, as the provider counts them (``None`` before it has counted).
        completed: Requests that succeeded so far.
        failed: Requests that failed so far (expired and canceled ones included).
        output_ref: Where the results are read (a file id, a URL), once there are results.
        error_ref: Where the failed requests' lines are read, when the provider keeps them apart.
    """

    id: str
    model: str
    status: str
    provider_status: str
    total: int | None = None
    completed: int = 0
    failed: int = 0
    output_ref: str | None = None
    error_ref: str | None = None
    kind: str = "complete"
    """What the batch runs: ``complete`` or ``embed`` calls."""
    api: str | None = None
    """The wire format its ``complete`` calls use (``"responses"``: OpenAI's Responses API), when not the chat one."""
    created_at: Any = None
    ended_at: Any = None
    raw: Any = None

    @property
    def done(self) -> bool:
        """Whether the batch has ended (completed, failed, expired or canceled)."""
        return self.status in BATCH_ENDED


@dataclass(slots=True)
class BatchItem:
    """One request's outcome, from one line of a batch's results: its answer or its error, never both."""

    custom_id: str
    result: Completion | Embeddings | None = None
    error: ProviderError | None = None
    billed: bool = False
    """Whether the provider billed this request (an answer was produced), whatever its outcome."""


class EventDecoder(Protocol):
    """Frames a streamed body into events (server-sent events by default; AWS's event-stream for Bedrock)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; returns the events it completed.

        A frame that does not parse raises ``computekit._sse.FrameError``, one too large ``SSETooLarge``; both
        carry the ``events`` the chunk completed before it, which the stream still delivers first.
        """
        ...

    def close(self) -> tuple[list[SSEEvent], bool]:
        """End of stream: the last events, and whether the body was cut short mid-event."""
        ...


class StreamDecoder(ABC):
    """Turns one response's server-sent events into chunks, then into the final completion."""

    done: bool = False

    @abstractmethod
    def feed(self, event: SSEEvent) -> list[Chunk]:
        """Decode one event into zero or more chunks.

        Raises:
            ProviderError: The event is an error event (raised typed, mid-stream).
        """

    @abstractmethod
    def result(self) -> Completion:
        """The completion assembled from everything fed so far (usage included when the provider sent it)."""


_REFUSED_STATUSES = frozenset({408, 429})

_E = TypeVar("_E", bound=ProviderError)

# Content parts whose billed tokens are not bounded by their size in the request: an image by URL is a few dozen
# bytes and can cost thousands of tokens, an audio clip or a file is fetched or decoded by the provider.
MEDIA_PARTS = frozenset({"image_url", "image", "input_image", "input_audio", "audio", "file", "input_file",
                         "document", "video", "video_url", "container_upload"})
# ``extra`` (extra_body) is sent as it is, and can carry input billed as such (the Responses API's
# ``instructions``, a host's own system prompt field): counted by its size like the rest.
_REQUEST_TEXT_FIELDS = ("messages", "prompt", "tools", "inputs", "response_format", "tool_choice", "stop", "extra")


def split_media(value: Any, media: list[Mapping[str, Any]]) -> Any:
    """``value`` with every media part (:data:`MEDIA_PARTS`, at any depth: inside a tool result too) replaced by
    ``None`` and collected into ``media``; what is left is text, bounded by its size."""
    if isinstance(value, Mapping):
        if value.get("type") in MEDIA_PARTS:
            media.append(value)
            return None
        return {k: split_media(v, media) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [split_media(v, media) for v in value]
    return value


# The HTTP status each common error ``type`` stands for (OpenAI's and Anthropic's documented error types): an
# error inside a 200 stream carries a type but no HTTP status of its own.
_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "api_error": 500,
    "server_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def event_object(adapter: Adapter, event: SSEEvent, model: str | None) -> dict[str, Any]:
    """A stream event's data as the JSON object it must be.

    Raises:
        MalformedResponseError: It is not JSON, or not an object.
    """
    try:
        data = json.loads(event.data)
    except ValueError:
        raise adapter.malformed(HTTPResponse(200, {}, event.data.encode()), model, "stream event is not JSON") from None
    if not isinstance(data, dict):
        raise adapter.malformed(HTTPResponse(200, {}, event.data.encode()), model, "stream event is not a JSON object")
    return data


def sampling_options(req: CompleteRequest, names: Mapping[str, str]) -> dict[str, Any]:
    """The common sampling options ``req`` sets, under the provider's names, in the order ``names`` gives them.

    ``names`` maps computekit's ``max_tokens``, ``temperature``, ``top_p``, ``stop`` and ``seed`` to the wire's
    names (``{"max_tokens": "maxOutputTokens", ...}``); an option left unset is not sent, and a stop string goes
    as a one-item list, as every wire that names its stop sequences in the plural wants it.
    """
    out: dict[str, Any] = {}
    for option, wire in names.items():
        value = getattr(req, option)
        if value is None:
            continue
        if option == "stop":
            value = [value] if isinstance(value, str) else list(value)
        out[wire] = value
    return out


def carried_status(body: Any, default: int) -> int:
    """The HTTP status an error body says it is: an integer ``status_code`` / ``status`` / ``code`` (in the
    ``error`` object or beside it), else the status of its ``type``, else ``default``. An error sent inside a
    200 stream (or a 200 body) is typed by what it carries, not by the 200."""
    if not isinstance(body, Mapping):
        return default
    err = body.get("error")
    places = [err, body] if isinstance(err, Mapping) else [body]
    for place in places:
        for key in ("status_code", "status", "code"):
            value = place.get(key)
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
                return value
    for place in places:
        kind = place.get("type")
        if isinstance(kind, str) and kind in _TYPE_STATUS:
            return _TYPE_STATUS[kind]
    return default

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "x-amzn-requestid", "cf-ray")


class Adapter(ABC):
    """Base class of every provider adapter. Subclasses set the class attributes and implement the verbs."""

    name: ClassVar[str]
    """The adapter's registry name (``openai``)."""
    capabilities: Capabilities = Capabilities()
    """What this adapter can do. An adapter serving several providers may narrow it per provider."""
    key_env_vars: ClassVar[tuple[str, ...]] = ()
    """Environment variables read for the key, in order."""
    default_base_url: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = None
    """The vendor's own environment variable for its base URL (what its SDKs read), when it documents one."""
    base_url_env_suffix: ClassVar[str] = ""
    """Added to that variable's value when missing: the vendor's convention may leave out the API version
    (``ANTHROPIC_BASE_URL=https://api.anthropic.com``, where computekit's base URL ends in ``/v1``)."""
    requires_key: ClassVar[bool] = True
    unique_run_ids: ClassVar[bool] = False
    """Whether a prediction's id is the host's own id for the run, unique on the host (Replicate, RunPod, fal):
    the run's ledger row is then written once under that id, whichever handle, client or process sees it end.
    A synchronous host's id stands in for one it does not give (a request id, a hash of the output): two runs
    may share it, so its rows are not keyed."""
    table_provider: ClassVar[str | None] = None
    """The provider id in genai-prices, when it prices this provider's models."""
    docs_url: ClassVar[str | None] = None
    settings_model: ClassVar[type[AdapterSettings]] = AdapterSettings
    """The keys this adapter adds to ``[providers.NAME]`` (see :class:`AdapterSettings`)."""
    options: AdapterSettings
    """This provider's validated :attr:`settings_model` (an adapter narrows the annotation to its own model)."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        opts = settings.options
        self.options = opts if isinstance(opts, self.settings_model) else self.settings_model()
        self.provider = settings.name
        self.capabilities = self.capabilities_for(settings.name)

    # ----------------------------------------------------------------------------------------- construction

    @classmethod
    def capabilities_for(cls, provider: str) -> Capabilities:
        """What this adapter can do for ``provider`` (without building it)."""
        return cls.capabilities

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        """Where ``provider``'s prices come from, in words (for the docs and the CLI)."""
        if cls.table_provider:
            return f"genai-prices (`{cls.table_provider}`)"
        return "config `[prices]` only"

    @classmethod
    def defaults_for(cls, provider: str) -> tuple[str | None, tuple[str, ...], bool]:
        """Base URL, key env vars and whether a key is needed, for a provider served by this adapter."""
        return cls.default_base_url, cls.key_env_vars, cls.requires_key

    @classmethod
    def table_for(cls, provider: str) -> str | None:
        """The genai-prices provider id that prices ``provider``'s models, if any."""
        return cls.table_provider

    @classmethod
    def listed(cls, provider: str) -> bool:
        """Whether ``provider`` is offered to users as a provider (in lists, suggestions, bare model names);
        internal adapters (an in-process fake, the generic OpenAI-compatible one) are not."""
        return True

    @classmethod
    def own_endpoint(cls, provider: str, url: str) -> bool:
        """Whether ``url`` is one of the provider's own endpoints, whatever ``base_url`` is configured (another
        region of a cloud provider's): a per-call base URL there keeps the configured credentials."""
        return False

    @classmethod
    def env_base_url(cls, provider: str) -> str | None:
        """The base URL the vendor's own variable sets (``OPENAI_BASE_URL`` ...), in computekit's convention;
        ``None`` when it is unset or empty. Configured and per-call base URLs win over it."""
        return base_url_from_env(cls.base_url_env, cls.base_url_env_suffix)

    auth_scheme: ClassVar[str] = "Bearer"
    """How the key is sent: ``Authorization: {auth_scheme} KEY``."""

    def headers(self) -> dict[str, str]:
        """JSON request headers: configured extra headers, then the credential (built per request, never kept)."""
        h = {"content-type": "application/json", "accept": "application/json"}
        h.update(self.settings.headers)
        h.update(self.auth_headers())
        return h

    def auth_headers(self) -> dict[str, str]:
        """The header that carries the key."""
        return {"authorization": f"{self.auth_scheme} {self.require_key()}"}

    def url(self, path: str) -> str:
        """``{base_url}/{path}``."""
        return f"{self.settings.base_url.rstrip('/')}/{path}"

    def on_origin(self, url: str | None) -> bool:
        """Whether ``url`` is on the configured base URL's exact origin (scheme, host, port): the only place the
        key goes."""
        # ``url("")``: the base URL as this adapter fills it in (a region, for hosts with one endpoint per region).
        return bool(url) and same_origin(url or "", self.url(""))

    def own_url(self, named: str | None, built: str) -> str:
        """The URL a host's answer ``named`` (poll, cancel ...) when it is on the provider's origin, else ``built``
        from the configured base URL: a key never follows a URL from an answer to another host or scheme."""
        return named if named and self.on_origin(named) else built

    def without_key(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` without any header that carries the key (for a request that leaves the provider's origin)."""
        key = self.settings.api_key.get_secret_value() if self.settings.api_key is not None else ""
        auth = {k.lower() for k in self.auth_headers()} if key else set()
        return {k: v for k, v in headers.items() if k.lower() not in auth and not (key and key in v)}

    def renew_auth(self, http: HTTPRequest) -> None:
        """Renew the credential of ``http``, built for an earlier try, before it is sent again: a credential that
        expires (an access token, a signature over the time it was made) may have since. A key never does:
        nothing to do here."""
        return

    def require_key(self) -> str:
        """The key's value, for building an auth header.

        Raises:
            MissingAPIKeyError: No key was configured and none is in the environment.
        """
        if self.settings.api_key is None:
            env_vars = self.settings.key_env_vars
            if env_vars is None:
                _, env_vars, _ = self.defaults_for(self.provider)
            raise MissingAPIKeyError(self.provider, env_vars)
        return self.settings.api_key.get_secret_value()

    def unsupported(self, capability: str) -> UnsupportedCapabilityError:
        """The error for a verb this adapter does not offer."""
        why = self.unsupported_reason(capability)
        return UnsupportedCapabilityError(
            (f"{self.provider} does not support {capability}" + (f": {why}" if why else "")
             + f"; capabilities: {', '.join(self.capabilities.names()) or 'none'}"),
            provider=self.provider,
            capability=capability,
        )

    def unsupported_reason(self, capability: str) -> str | None:
        """Why this provider lacks ``capability``, when there is more to say (a retired API ...)."""
        if capability == "finetune":
            return f"{self.provider} offers no fine-tuning API"
        if capability == "background":
            return (f"{self.provider} has no background responses (a completion polled until it ends); they run "
                    "on the Responses API of the providers that serve them")
        return None

    # ----------------------------------------------------------------------------------------- background

    def serves_background(self) -> bool:
        """Whether ``complete(..., background=True)`` runs here: submitted, then polled until it ends."""
        return False

    def build_background_get(self, response_id: str) -> HTTPRequest:
        """The request that fetches a background response's latest state."""
        raise self.unsupported("background")

    def build_background_cancel(self, response_id: str) -> HTTPRequest:
        """The request that cancels a background response."""
        raise self.unsupported("background")

    def parse_background(self, req: CompleteRequest, resp: HTTPResponse) -> BackgroundResponse:
        """A background response's state (its final :class:`Completion` once it has ended, usage set, cost not)."""
        raise self.unsupported("background")

    # ----------------------------------------------------------------------------------------- verbs

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        """Translate a ``complete()`` call into an HTTP request."""
        raise self.unsupported("complete")

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        """Translate a successful response into a :class:`Completion` (usage set, cost not)."""
        raise self.unsupported("complete")

    def uses_text_endpoint(self, model: str) -> bool:
        """Whether ``model`` is served by a text-completion (prompt in, text out) endpoint."""
        return False

    def input_bound(self, req: CompleteRequest | EmbedRequest, window: int | None) -> int | None:
        """The most input tokens ``req`` can be billed for: a budget's worst case reserves this many.

        Text (messages, tool definitions, the response format, ``extra_body`` ...) counts its size in UTF-8 bytes,
        as JSON (a token is at least one byte); each media part counts :meth:`media_tokens` (the provider's
        published rule), else the model's whole context ``window``; :meth:`input_overhead` is added; the total is
        capped at ``window`` times :meth:`sampling_passes`. ``None``: it cannot be bounded (media with no rule and
        no known window).
        """
        media: list[Mapping[str, Any]] = []
        fields = {name: getattr(req, name, None) for name in _REQUEST_TEXT_FIELDS}
        if isinstance(req, CompleteRequest) and req.output is not None:
            # A type's schema is sent in this provider's dialect, which can be much larger ($refs inlined).
            fields["response_format"] = self.structured_schema(req)
        parts = [split_media(v, media) for v in fields.values() if v]
        # A lone surrogate still counts (as its 3 bytes): the request is refused when it is encoded to be sent.
        tokens = len(json.dumps(parts, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        for part in media:
            each = self.media_tokens(part, req.model)
            if each is None:
                if window is None:
                    return None
                each = window
            tokens += each
        tokens += self.input_overhead(req) if isinstance(req, CompleteRequest) else 0
        passes = self.sampling_passes(req) if isinstance(req, CompleteRequest) else 1
        return min(tokens * passes, window * passes) if window else tokens * passes

    def structured_schema(self, req: CompleteRequest) -> Any:
        """The schema sent for ``req.output`` (``response_format=`` a type), in this provider's dialect: what the
        request carries and a budget counts. ``None`` without a type.

        Raises:
            InvalidRequestError: The type cannot be expressed in this provider's dialect.
        """
        return req.output.schema if req.output is not None else None

    def media_tokens(self, part: Mapping[str, Any], model: str) -> int | None:
        """The most tokens one media part (an image, audio clip, file ...) can be billed as on ``model``, by the
        provider's published rule; ``None`` when it publishes none (a budget then counts the context window)."""
        return None

    def input_overhead(self, req: CompleteRequest) -> int:
        """Input tokens the provider adds to a request on its own (a tool-use system prompt), at most."""
        return 0

    def sampling_passes(self, req: CompleteRequest) -> int:
        """How many times one call can bill its input at most (server-side tool loops sample again)."""
        return 1

    def wire_formats(self) -> tuple[str, ...]:
        """The wire formats ``complete()``/``stream()`` can use on this provider (``api=``): ``"chat"``, and
        ``"responses"`` on hosts that also serve OpenAI's Responses API."""
        return ("chat",)

    def units_bound(self, req: CompleteRequest) -> dict[str, int] | None:
        """The most of each per-call unit (``Usage.units`` key: built-in tool calls ...) ``req`` can be billed for;
        ``None`` when they cannot be bounded (a budget then refuses the call as of unknown cost)."""
        return {}

    def output_limit(self, req: CompleteRequest) -> int | None:
        """The most output tokens ``req`` allows (what a budget reserves and an estimate counts), or ``None``
        when the request sets no limit."""
        return req.max_tokens

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        """A decoder for one streamed response."""
        raise self.unsupported("stream")

    def event_decoder(self, max_event_bytes: int) -> EventDecoder | None:
        """How this provider frames a streamed body into events: ``None`` for server-sent events (the client's
        own decoder); a host with another framing returns its decoder, bounded by ``max_event_bytes``."""
        return None

    def build_embed(self, req: EmbedRequest) -> HTTPRequest:
        """Translate an ``embed()`` call into an HTTP request."""
        raise self.unsupported("embed")

    def parse_embed(self, req: EmbedRequest, resp: HTTPResponse) -> Embeddings:
        """Translate a successful response into :class:`Embeddings` (usage set, cost not)."""
        raise self.unsupported("embed")

    def build_rerank(self, req: RerankRequest) -> HTTPRequest:
        """Translate a ``rerank()`` call into an HTTP request."""
        raise self.unsupported("rerank")

    def parse_rerank(self, req: RerankRequest, resp: HTTPResponse) -> Reranking:
        """Translate a successful response into :class:`Reranking` (usage set, cost not)."""
        raise self.unsupported("rerank")

    def build_predict(self, req: PredictRequest) -> HTTPRequest:
        """Translate a ``predict()`` call into the request that starts the run."""
        raise self.unsupported("predict")

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        """Translate the host's answer (create, get or cancel) into a :class:`Prediction`."""
        raise self.unsupported("predict")

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        """The request that fetches a prediction's latest state (a GET: safe to retry)."""
        raise self.unsupported("predict")

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        """The request that cancels a running prediction."""
        raise self.unsupported("predict")

    def poll_now(self, prediction: Prediction) -> bool:
        """Whether the next poll should go out at once, without the poll interval: the run has ended on the host
        and one more request fetches its result (fal's response URL after ``COMPLETED``)."""
        return False

    def needs_final_state(self, prediction: Prediction) -> bool:
        """Whether an ended prediction lacks the usage the host reports on its status (RunPod's cancel answer
        carries no ``executionTime``): the client then fetches its state once more, so that it is priced."""
        return False

    def model_info_request(self, model: str, info: ModelInfo | None, *, schema: bool,
                           hardware: bool) -> HTTPRequest | None:
        """The next GET that learns what is asked about ``model`` (its input ``schema``, its ``hardware``), given
        what earlier lookups found (``info``); ``None`` when nothing more can be learnt. Hosts that publish
        nothing keep this default."""
        return None

    def parse_model_info(self, model: str, info: ModelInfo | None, resp: HTTPResponse) -> ModelInfo:
        """Fold the answer to :meth:`model_info_request` into ``info``."""
        raise self.unsupported("model lookups")

    def build_prediction_stream(self, prediction: Prediction) -> HTTPRequest:
        """The request that streams a running prediction's output: ``stream=True`` for server-sent events (fed
        to :meth:`parse_stream_event`), else a GET the client repeats until done (:meth:`parse_stream_poll`).

        Raises:
            UnsupportedCapabilityError: The host (or this model) does not stream.
        """
        raise self.unsupported("predict_stream")

    def parse_stream_event(self, prediction: Prediction, event: SSEEvent) -> StreamUpdate:
        """Translate one server-sent event of a prediction's stream."""
        raise self.unsupported("predict_stream")

    def parse_stream_poll(self, prediction: Prediction, resp: HTTPResponse) -> StreamUpdate:
        """Translate one answer of a polled prediction stream."""
        raise self.unsupported("predict_stream")

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        """Translate the provider's usage object into :class:`Usage`."""
        return Usage()

    # ----------------------------------------------------------------------------------------- fine-tuning
    # The order of a launch: build_uploads/parse_upload for each file, build_finetune_estimate (where offered),
    # build_finetune/parse_finetune; then build_finetune_get/cancel/events/checkpoints while it runs.

    def finetune_spec(self, model: str) -> FineTuneSpec:
        """How fine-tuning data for ``model`` is checked and counted."""
        raise self.unsupported("finetune")

    def check_finetune(self, req: FineTuneRequest) -> None:
        """Refuse a request this provider cannot launch, before anything is sent (a missing destination ...).

        Raises:
            InvalidRequestError: The request lacks what the provider needs.
        """
        if req.destination is not None:
            from .._exceptions import InvalidRequestError

            raise InvalidRequestError(f"destination= is not used by {self.provider}: the job names its own model")

    def default_epochs(self, model: str, examples: int) -> int | None:
        """The epochs the provider runs when none are asked for (its documented default), for the estimate."""
        return None

    def training_price_model(self, req: FineTuneRequest) -> str | None:
        """The model id whose training price (``training.toml`` / ``[prices]``) applies to ``req``; ``None`` when
        the tables do not price this kind of job (a method or training type the provider bills at another rate)."""
        return req.model

    def build_uploads(self, req: FineTuneRequest, file: TrainingFile, purpose: str) -> list[HTTPRequest]:
        """The requests that upload ``file`` (``purpose``: ``training`` or ``validation``), in order; the last
        one's answer names it. Empty when nothing is uploaded (a remote file)."""
        raise self.unsupported("finetune")

    def parse_upload(self, req: FineTuneRequest, file: TrainingFile, resp: HTTPResponse) -> str:
        """The provider's id for an uploaded file, from the last upload request's answer."""
        raise self.unsupported("finetune")

    def build_finetune_estimate(self, req: FineTuneRequest) -> HTTPRequest | None:
        """A request that prices the job before launch (files uploaded), or ``None`` where there is none."""
        return None

    def parse_finetune_estimate(self, req: FineTuneRequest, resp: HTTPResponse) -> FineTuneBilling:
        """The provider's pre-launch estimate."""
        return FineTuneBilling()

    def build_finetune(self, req: FineTuneRequest) -> HTTPRequest:
        """The request that launches the job (files uploaded: ``req.training.ref``)."""
        raise self.unsupported("finetune")

    def parse_finetune(self, model: str, resp: HTTPResponse) -> FineTuneJob:
        """A job object (create, get or cancel answer) -> :class:`FineTuneJob` (cost not set)."""
        raise self.unsupported("finetune")

    def build_finetune_get(self, job: FineTuneJob) -> HTTPRequest:
        """The request that fetches a job's latest state (a GET: safe to retry)."""
        raise self.unsupported("finetune")

    def build_finetune_cancel(self, job: FineTuneJob) -> HTTPRequest:
        """The request that cancels a job."""
        raise self.unsupported("finetune")

    def build_finetune_events(self, job: FineTuneJob, limit: int) -> HTTPRequest | None:
        """The request that lists a job's latest events (``None``: they come with the job itself)."""
        return None

    def parse_finetune_events(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneEvent]:
        """A job's events, oldest first (``resp`` is ``None`` when they come with the job: read ``job.raw``)."""
        return []

    def build_finetune_checkpoints(self, job: FineTuneJob) -> HTTPRequest | None:
        """The request that lists a job's checkpoints (``None``: none offered, or they come with the job)."""
        return None

    def parse_finetune_checkpoints(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneCheckpoint]:
        """A job's checkpoints (``resp`` is ``None`` when they come with the job: read ``job.raw``)."""
        return []

    def finetune_billing(self, job: FineTuneJob) -> FineTuneBilling:
        """What the provider reported that the job's cost comes from."""
        return FineTuneBilling(trained_tokens=job.trained_tokens)

    # ----------------------------------------------------------------------------------------- batches
    # The order of a batch: batch_line for each request, build_batch_upload/parse_batch_upload (where the lines
    # go in a file), build_batch_create/parse_batch; build_batch_get/cancel while it runs; then
    # build_batch_results and parse_batch_line for each line of what they answer (batch_inline_results when the
    # results come with the batch itself).

    def batch_spec(self, model: str) -> BatchSpec:
        """What the batch API accepts for ``model``.

        Raises:
            UnsupportedCapabilityError: The provider has no batch API.
        """
        raise self.unsupported("batch")

    def batch_line(self, custom_id: str, req: CompleteRequest | EmbedRequest) -> dict[str, Any]:
        """One request of a batch: the same body ``complete()`` / ``embed()`` would send, with its ``custom_id``.

        Raises:
            UnsupportedCapabilityError: The provider has no batch API (or cannot batch this kind of call).
            InvalidRequestError: The request cannot be batched as it is (a stream).
        """
        raise self.unsupported("batch")

    def build_batch_upload(self, model: str, content: bytes) -> HTTPRequest:
        """The request that uploads a batch's JSONL lines (:attr:`BatchSpec.uploads`)."""
        raise self.unsupported("batch")

    def parse_batch_upload(self, model: str, resp: HTTPResponse) -> str:
        """The uploaded file's id."""
        raise self.unsupported("batch")

    def build_batch_create(self, model: str, kind: str, file_ref: str | None, lines: Sequence[Mapping[str, Any]],
                           metadata: Mapping[str, str]) -> HTTPRequest:
        """The request that creates the batch: from the uploaded ``file_ref``, or with ``lines`` inline."""
        raise self.unsupported("batch")

    def parse_batch(self, model: str, resp: HTTPResponse) -> BatchState:
        """A batch object (create, get or cancel answer) -> :class:`BatchState`.

        Raises:
            MalformedResponseError: The answer is not a batch object.
        """
        raise self.unsupported("batch")

    def build_batch_get(self, state: BatchState) -> HTTPRequest:
        """The request that fetches a batch's latest state (a GET: safe to retry)."""
        raise self.unsupported("batch")

    def build_batch_cancel(self, state: BatchState) -> HTTPRequest:
        """The request that cancels a batch."""
        raise self.unsupported("batch")

    def build_batch_results(self, state: BatchState) -> list[HTTPRequest]:
        """The streamed GETs of an ended batch's result files (answers first, then errors), each read line by
        line into :meth:`parse_batch_line`. Empty when the results come with the batch
        (:meth:`batch_inline_results`)."""
        raise self.unsupported("batch")

    def batch_inline_results(self, state: BatchState) -> list[Any]:
        """The result lines that come inside the batch object itself, when they do."""
        return []

    def parse_batch_line(self, state: BatchState, line: bytes | Mapping[str, Any]) -> BatchItem:
        """One result line -> the request's answer (with its usage) or its typed error.

        Raises:
            MalformedResponseError: The line is not what the API documents.
        """
        raise self.unsupported("batch")

    def batch_price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        """What the price tables should look up for a batch item: :meth:`price_ref` in the batch price context."""
        ref = self.price_ref(model, result)
        return dataclasses.replace(ref, context=(*ref.context, BATCH_CONTEXT))

    def batch_response(self, status: int, body: Any, request_id: str | None = None) -> HTTPResponse:
        """A result line's embedded answer as the response the synchronous parser reads (already decoded with its
        line: the parser gets it as it is, not encoded and decoded again)."""
        headers = {"x-request-id": request_id} if request_id else {}
        return DecodedResponse(status, headers, body)

    def batch_answer(self, state: BatchState, custom_id: str, body: Any, request_id: str | None = None) -> BatchItem:
        """A result line's successful answer, read by the same parser as the synchronous call's."""
        resp = self.batch_response(200, body, request_id)
        result: Completion | Embeddings
        if state.kind == "embed":
            result = self.parse_embed(EmbedRequest(model=state.model, inputs=[]), resp)
        else:
            result = self.parse_complete(CompleteRequest(model=state.model, messages=[], api=state.api), resp)
        return BatchItem(custom_id=custom_id, result=result, billed=True)

    def batch_failure(self, state: BatchState, custom_id: str, status: int | None, body: Any,
                      request_id: str | None = None, *, billed: bool = False) -> BatchItem:
        """A result line's error, typed as the synchronous call's would be (``status`` ``None``: the request
        never ran — it expired or the batch was canceled)."""
        if status is not None:
            error = self.map_error(self.batch_response(status, body, request_id), state.model)
        else:
            body = self.redact(body)
            error = ProviderError(self.error_message(body), provider=self.provider, model=state.model, body=body,
                                  request_id=request_id)
        return BatchItem(custom_id=custom_id, error=error, billed=billed)

    def check_batch_ids(self, resp: HTTPResponse, model: str, ids: Mapping[str, Any]) -> None:
        """Refuse a batch object whose ids (named by their field) are not one path segment each.

        A batch's or a file's id goes into the URLs of its polls and downloads: anything else (a slash, dot
        segments, a query) would point them, with the key, at another resource of the host, whose lines would be
        recorded as this batch's.

        Raises:
            MalformedResponseError: An id is not one.
        """
        for key, ref in ids.items():
            if ref not in (None, "") and not (isinstance(ref, str) and _ID_SEGMENT.fullmatch(ref)):
                raise self.malformed(resp, model, f"the batch's {key} {ref!r} is not an id")

    def batch_line_id(self, line: bytes | Mapping[str, Any]) -> str | None:
        """The ``custom_id`` a result line names, read as leniently as can be (the line did not parse as a
        result): ``None`` when it names none (it is not JSON, or has no such field)."""
        data = line if isinstance(line, Mapping) else _json_object(line)
        found = self.batch_record_id(data) if data is not None else None
        return found if isinstance(found, str) and found else None

    def batch_record_id(self, data: Mapping[str, Any]) -> Any:
        """Where a result line keeps its request's ``custom_id``."""
        return data.get("custom_id")

    def batch_record(self, state: BatchState, line: bytes | Mapping[str, Any]) -> dict[str, Any]:
        """One result line as a JSON object.

        Raises:
            MalformedResponseError: The line is not a JSON object.
        """
        if isinstance(line, Mapping):
            # A copy of its own (its answer is handed to a parser as it is): the batch object keeps the original.
            copied: dict[str, Any] = json.loads(json.dumps(line))
            return copied
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self.malformed(HTTPResponse(200, {}, bytes(line)), state.model,
                                 "a batch result line is not a JSON object")
        return data

    # ----------------------------------------------------------------------------------------- pricing

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        """What the price tables should look up for ``model`` (and, once known, the result)."""
        return PriceRef(provider=self.provider, model=model, table_provider=self.table_provider)

    def billed_total(self, result: Result) -> tuple[Decimal, PriceSource] | None:
        """What the provider says it charged for ``result`` (USD) and where that figure was read, when its answer
        says so: the call's cost is then that figure, with computekit's own price kept beside it."""
        return None

    def note_head(self, result: Result, headers: Mapping[str, str]) -> None:
        """Read what the response head says about ``result`` that its body (or a stream's events) did not: the
        request id, by default."""
        result.request_id = result.request_id or self.request_id(headers)

    def billed_parts(self, ref: PriceRef, result: Result) -> list[BilledPart]:
        """The parts ``result`` is billed in, when it is more than one (``ref`` is the answer's own): each is
        priced at its own rates and has cost lines of its own. Empty (the default): ``result.usage`` at
        ``ref``'s rates is the whole bill."""
        return []

    def error_cost(self, error: ProviderError) -> Cost | None:
        """What a failed attempt cost: 0 for an error response the provider does not bill, else unknown."""
        if isinstance(error, APIStatusError) and not self.capabilities.bills_failed_requests:
            return Cost(total=_ZERO_COST, reason="error response: not billed")
        return None

    # ----------------------------------------------------------------------------------------- errors

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        """The provider's request id from response headers."""
        for h in _REQUEST_ID_HEADERS:
            v = headers.get(h)
            if v:
                return v
        return None

    def error_message(self, body: Any) -> str:
        """The human message from an error body."""
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict):
                msg = err.get("message") or err.get("detail") or err.get("title")
                if msg:
                    return str(msg)
            elif isinstance(err, str):
                return err
            for k in ("message", "detail", "title"):
                if body.get(k):
                    return str(body[k])
        text = body if isinstance(body, str) else json.dumps(body)
        return text[:500] or "(empty body)"

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        """A more precise error type from the body (context window, content filter ...), or ``None``."""
        return None

    def sent_secrets(self) -> list[str]:
        """The secret values this adapter's requests carry, masked wherever a host echoes them: the configured
        key. An adapter whose credentials are not a key (a session token, an access token) adds them."""
        return [self.settings.api_key.get_secret_value()] if self.settings.api_key is not None else []

    def redact(self, value: Any) -> Any:
        """``value`` (str, or dicts/lists of them) with the credentials' values masked (:meth:`sent_secrets`).

        A server may echo the credential back (in an error body or header); errors keep what the server said,
        but never the key.
        """
        # The longest first: a value that holds a shorter one is masked whole.
        for secret in sorted(self.sent_secrets(), key=len, reverse=True):
            if len(secret) >= _MIN_REDACTED_KEY:
                value = _scrub(value, secret)
        return value

    def map_error(self, resp: HTTPResponse, model: str | None) -> ProviderError:
        """Translate an error response into a typed error that keeps its facts (never the key)."""
        body = self.redact(resp.body_for_error())
        headers = self.redact({k.lower(): v for k, v in resp.headers.items()})
        cls = self.classify_error(resp.status, body) or STATUS_ERRORS.get(resp.status)
        if cls is None:
            cls = ServerError if resp.status >= 500 else APIStatusError
        err = cls(
            self.error_message(body),
            provider=self.provider,
            model=model,
            status=resp.status,
            headers=headers,
            body=body,
            request_id=self.request_id(headers),
        )
        err.maybe_processed = not self.refused(resp.status, body)
        return err

    def refused(self, status: int, body: Any) -> bool:
        """Whether an error answer says the host did not act on the request at all (so even a request that
        starts billed work may be sent again): a 408 or 429 by default."""
        return status in _REFUSED_STATUSES

    def json_object(self, resp: HTTPResponse, model: str | None) -> dict[str, Any]:
        """A 2xx response's body as a JSON object.

        Raises:
            MalformedResponseError: The body is not JSON, or not an object.
        """
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, model, "body is not JSON") from None
        if not isinstance(data, dict):
            raise self.malformed(resp, model, "body is not a JSON object")
        return data

    def timed_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        """A synchronous host's answer as an ended prediction: the body (JSON, else text) is the output, the
        request id header stands in for the id the answer lacks (a local one when there is none), and the call's
        measured time stands in for the instance time the host bills but does not report (an estimate)."""
        try:
            output: Any = resp.json()
        except ValueError:
            output = resp.content.decode("utf-8", "replace")
        request_id = self.request_id(resp.headers)
        pred = Prediction(provider=self.provider, model=model, id=request_id or f"local-{uuid.uuid4().hex}",
                          status="succeeded", output=output, usage=Usage(requests=1), request_id=request_id,
                          raw=output)
        pred._wall_time = True
        return pred

    def checked(self, resp: HTTPResponse, model: str | None, parse: Callable[[], _T]) -> _T:
        """``parse()`` (a translation of ``resp``), with the values computekit's types refuse — a negative, a
        fractional or an absurd usage count — reported as what they are: a malformed response.

        Raises:
            MalformedResponseError: A value of the answer is out of its range.
        """
        try:
            return parse()
        except ValidationError as e:
            raise self.malformed(resp, model, refused_values(e)) from e

    def malformed(self, resp: HTTPResponse, model: str | None, why: str) -> MalformedResponseError:
        """The error for a 2xx response whose body is not what the API documents."""
        return self.answer_error(MalformedResponseError, resp, model, f"malformed response: {why}")

    def answer_error(self, cls: type[_E], resp: HTTPResponse, model: str | None, message: str) -> _E:
        """A ``cls`` error raised about an answer that came with a 2xx status (a malformed body, a refusal the
        provider reports inside a success): status, headers and body kept, the key masked."""
        headers = self.redact({k.lower(): v for k, v in resp.headers.items()})
        return cls(
            message,
            provider=self.provider,
            model=model,
            status=resp.status,
            headers=headers,
            body=self.redact(resp.body_for_error()),
            request_id=self.request_id(headers),
        )


_ID_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._:-]*")
"""One path segment that names a batch or a file: no slash, no dot segment, no query."""


def _json_object(raw: bytes) -> Mapping[str, Any] | None:
    """``raw`` as a JSON object, or ``None`` (not JSON, nested too deep, or not an object)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, Mapping) else None


def refused_values(e: ValidationError) -> str:
    """Which values a provider sent that a computekit type refused, and why (the values themselves are in the
    error's body)."""
    where = "; ".join(f"{e.title.lower()}.{'.'.join(str(p) for p in err['loc'])}: {err['msg'].lower()}"
                      for err in e.errors()[:5])
    return f"values out of range ({where})"


_ZERO_COST = Decimal(0)
_MIN_REDACTED_KEY = 8
"""Shorter "keys" (placeholders for local servers) are not secrets, and masking them would mangle messages."""
_MASK = "**********"


def _scrub(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, _MASK)
    if isinstance(value, dict):
        return {k: _scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    return value


def multipart(fields: Mapping[str, str], file_field: str, file: TrainingFile,
              content_type: str = "application/jsonl") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (text fields, then the file) and its content type. The boundary is derived
    from the content, so the same upload is the same bytes (recorded cassettes match it)."""
    import hashlib

    boundary = "computekit-" + hashlib.sha256(file.content).hexdigest()[:24]
    out: list[bytes] = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{file.filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
    )
    out.append(file.content)
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def count(value: Any) -> int | None:
    """A count a provider reported: a non-negative integer (or the digit string JSON int64 fields arrive as);
    anything else (missing, null, garbage) -> ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def token_count(raw: Mapping[str, Any], *keys: str, where: str = "usage") -> int:
    """A token count in a usage object ``raw`` (named ``where`` in the message), under the first of ``keys``
    present: absent is 0; anything but a whole number of 0 or more is not a count, and the answer is malformed
    (read as 0, it would be billed for fewer tokens than it used).

    Raises:
        ValueError: The field holds something else (the client reports a malformed answer).
    """
    key = next((k for k in keys if raw.get(k) is not None), keys[0])
    value = raw.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}.{key} is not a token count: {str(value)[:40]!r}")
    return value


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (provider fields that may be missing or null)."""
    return value if isinstance(value, dict) else {}


def unix_time(value: Any) -> Any:
    """A Unix timestamp (seconds) or an ISO-8601 string -> an aware UTC datetime; anything else -> ``None``."""
    import datetime as dt

    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str) and value:
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return None


def env_key(env_vars: Sequence[str]) -> SecretStr | None:
    """The first non-empty key among ``env_vars``, without the whitespace around it (a secret mounted from a file
    often ends in a newline, which no header can carry)."""
    for var in env_vars:
        v = (os.environ.get(var) or "").strip()
        if v:
            return SecretStr(v)
    return None


def env_key_source(env_vars: Sequence[str]) -> str | None:
    """``"$NAME"`` of the variable :func:`env_key` reads its key from (``None``: none is set)."""
    return next((f"${var}" for var in env_vars if (os.environ.get(var) or "").strip()), None)


_HEADER_SAFE = frozenset(map(chr, range(0x21, 0x7F)))
"""The characters a key may hold: visible ASCII. A control character (a newline inside the key) would split the
header, and a space or a non-ASCII letter (a typographic dash pasted in) is never part of a real key."""


def key_problem(key: str) -> str | None:
    """Why ``key`` (already stripped) cannot be sent in a header, or ``None``; the message never shows the key."""
    if not key:
        return "it is empty"
    at = next((i for i, c in enumerate(key) if c not in _HEADER_SAFE), None)
    if at is None:
        return None
    bad = key[at]
    kind = ("a control character" if ord(bad) < 0x20 or ord(bad) == 0x7F else "a space" if bad.isspace()
            else "a character that is not ASCII")
    return f"it holds {kind} at character {at + 1}, which no HTTP header can carry: set it to the key alone"


def base_url_from_env(var: str | None, suffix: str = "") -> str | None:
    """``$var`` as a base URL: stripped, without a trailing slash, with ``suffix`` added when it is missing."""
    value = (os.environ.get(var) or "").strip().rstrip("/") if var else ""
    if not value:
        return None
    return value if not suffix or value.endswith(suffix) else value + suffix
