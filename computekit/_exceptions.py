"""The error tree. Every error computekit raises is a :class:`ComputeKitError`.

::

    ComputeKitError
    ├── ConfigError                    bad config file / keyword / missing key (names what to fix)
    │   └── MissingAPIKeyError         no key for a provider: names the env var to set
    ├── InvalidRequestError            the call's own arguments are wrong (raised before any HTTP)
    │   └── UnsafeURLError             a URL parsers could read as different hosts, or a download to a
    │                                  private, loopback or link-local address (nothing is sent)
    │   └── TrainingDataError          a fine-tuning file is refused (``line``: where, and what is wrong)
    │   └── InputValidationError       predict() input does not match the model's published schema
    ├── UnsupportedCapabilityError     the provider has no such verb or feature (raised before any HTTP)
    ├── BudgetExceededError            a budget refused an attempt: its worst-case cost does not fit, or is
    │                                  unknown (raised before any HTTP; names the budget, limit, spent,
    │                                  reserved and the request's reservation)
    ├── LedgerError                    the ledger's store failed making a budget's reservation (raised
    │                                  before any HTTP), or being read; the store's error is the cause
    ├── AllTargetsFailedError          every target of a fallback plan failed (also an ExceptionGroup of
    │                                  each target's last error; ``attempts`` lists every try)
    ├── WebhookVerificationError       a webhook's signature, timestamp or headers do not check out
    └── ProviderError                  anything that came from, or failed on the way to, a provider
        ├── APIStatusError             the provider answered with an error status
        │   ├── BadRequestError                400 / 422
        │   │   ├── ContextWindowExceededError prompt + output too long for the model
        │   │   └── ContentFilteredError       refused by the provider's content filter
        │   ├── AuthenticationError            401
        │   ├── PermissionDeniedError          403
        │   ├── NotFoundError                  404 (unknown model, deployment, job ...)
        │   ├── ConflictError                  409
        │   ├── RateLimitError                 429
        │   └── ServerError                    5xx
        │       └── OverloadedError            529 / "overloaded"
        ├── PredictionFailedError      a prediction ran and failed (``.prediction``: its logs, error, cost)
        ├── FineTuneFailedError        a fine-tuning job failed (``.job``; ``body`` is the provider's error object)
        ├── BackgroundFailedError      a background response failed (``.response``; ``body`` is its error object)
        ├── BatchFailedError           a batch failed as a whole: its input was refused (``.job``; ``body``: why)
        ├── APIConnectionError         could not connect, or the connection broke
        │   └── APITimeoutError        no answer in time (connect, read, or the total deadline)
        │       ├── PredictionTimeoutError a prediction did not finish in time (``.prediction``; canceled)
        │       ├── FineTuneTimeoutError   ``wait(timeout=)`` passed before a job ended (``.job``; not canceled)
        │       └── BackgroundTimeoutError a background response did not end in time (``.response``; cancelled)
        │       └── BatchTimeoutError      ``wait(timeout=)`` passed before a batch ended (``.job``; not canceled)
        ├── MalformedResponseError     a 2xx whose body is not what the API documents
        │   └── ResponseTooLargeError  a body or stream event over its size limit (``limit``: the bytes allowed)
        └── StructuredOutputError      the model refused, or its answer does not fit ``response_format``'s type
                                       (billed: ``.cost``, ``.text``, ``.errors``, ``.completion``)

Every :class:`ProviderError` keeps its facts: ``provider``, ``model``, ``status`` (also ``status_code``),
``headers`` (lowercased names), ``body`` and ``request_id``. None of them ever holds a credential: request
headers are never kept, and messages are built from the response only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Self

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTargetsFailedError",
    "AuthenticationError",
    "BackgroundFailedError",
    "BackgroundTimeoutError",
    "BadRequestError",
    "BatchFailedError",
    "BatchTimeoutError",
    "BudgetExceededError",
    "ComputeKitError",
    "ConfigError",
    "ConflictError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "FineTuneFailedError",
    "FineTuneTimeoutError",
    "InputValidationError",
    "InvalidRequestError",
    "LedgerError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "PredictionFailedError",
    "PredictionTimeoutError",
    "ProviderError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ServerError",
    "StructuredOutputError",
    "TrainingDataError",
    "UnsafeURLError",
    "UnsupportedCapabilityError",
    "WebhookVerificationError",
]

_BODY_IN_MESSAGE = 500  # characters of the body shown in str(error); the full body stays on .body


class ComputeKitError(Exception):
    """Base class of every error computekit raises."""


class ConfigError(ComputeKitError):
    """The configuration (file, environment or keyword arguments) is invalid; the message says what to fix."""


class MissingAPIKeyError(ConfigError):
    """No API key was found for a provider.

    Attributes:
        provider: The provider that needs a key.
        env_vars: The environment variables that would have been read, in order.
    """

    def __init__(self, provider: str, env_vars: tuple[str, ...], message: str | None = None) -> None:
        self.provider = provider
        self.env_vars = env_vars
        where = " or ".join(env_vars) if env_vars else f"providers.{provider}.api_key_env"
        super().__init__(
            message or f"no API key for provider {provider!r}: set {where}, or pass api_key= "
            f"(in Client(providers={{{provider!r}: {{'api_key': ...}}}}) or computekit.toml)"
        )


class InvalidRequestError(ComputeKitError, ValueError):
    """The arguments of a call are wrong (a bad message, an unknown model id form); nothing was sent."""


class TrainingDataError(InvalidRequestError):
    """Fine-tuning data was refused before anything was uploaded.

    Attributes:
        line: The 1-based line (JSONL) or example number that is wrong, when one is.
        source: The file (or ``"examples"`` for a list) the data came from.
    """

    def __init__(self, message: str, *, line: int | None = None, source: str | None = None) -> None:
        where = f"{source or 'training data'}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}")
        self.line = line
        self.source = source
class UnsafeURLError(InvalidRequestError):
    """A URL refused before anything is sent: URL parsers could read it as different hosts (a backslash, user
    info, a control character ...), or a download would go to a private, loopback or link-local address."""


class InputValidationError(InvalidRequestError):
    """``predict()`` input does not match the schema the host publishes for the model (Replicate versions carry
    one); nothing was sent and nothing was billed.

    Attributes:
        field: The first input field at fault (``"num_outputs"``, ``"size[1]"``), or ``None`` for the input itself.
        problems: Every problem found, as ``(field, message)`` pairs.
        provider: The host.
        model: The model whose schema refused the input.
    """

    def __init__(self, message: str, *, field: str | None, problems: Sequence[tuple[str, str]] = (),
                 provider: str | None = None, model: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.problems = list(problems)
        self.provider = provider
        self.model = model


class UnsupportedCapabilityError(ComputeKitError):
    """The provider (or model) does not offer what was asked; raised before any HTTP is sent."""

    def __init__(self, message: str, *, provider: str | None = None, capability: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.capability = capability


class BudgetExceededError(ComputeKitError):
    """A budget refused an attempt before anything was sent: its worst-case cost does not fit in what is left,
    or it is unknown (under ``unknown_price = "refuse"``).

    Attributes:
        budget: The budget's name (``"default"`` for ``[budget]``).
        limit: Its limit in USD.
        period: ``"day"``, ``"week"``, ``"month"`` or ``"total"``.
        spent: What the calls it covers have cost so far this period (an attempt of unknown cost that may have
            been billed counts its reservation).
        reserved: What calls in flight hold (their worst cases, until they settle).
        requested: This attempt's worst-case cost, or ``None`` when it could not be priced.
        provider: The target refused.
        model: Its model.
    """

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        limit: Decimal,
        period: str,
        spent: Decimal,
        reserved: Decimal,
        requested: Decimal | None,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit = limit
        self.period = period
        self.spent = spent
        self.reserved = reserved
        self.requested = requested
        self.provider = provider
        self.model = model

    @property
    def remaining(self) -> Decimal:
        """What is left of the limit once spend and reservations are counted (never below 0)."""
        return max(self.limit - self.spent - self.reserved, Decimal(0))


class LedgerError(ComputeKitError):
    """The ledger's store failed where a call cannot go on without it: a budget's reservation could not be made
    (the store is locked past its busy timeout, unreachable, read-only ...), so nothing was sent. The store's own
    error is the cause (``__cause__``); the message names the target.

    A store that fails *after* a call was answered never fails the call: its row is logged in full instead (logger
    ``computekit.ledger``) and its reservation, if any, counts its worst case until its time to live lapses.

    Also raised by reading a ledger whose store fails (opening a ``SQLiteLedger``, ``rows()``, ``report()``,
    ``budget_status()``): the message names the ledger, and ``provider`` and ``model`` are ``None``.

    Attributes:
        provider: The target's provider.
        model: Its model.
    """

    def __init__(self, message: str, *, provider: str | None = None, model: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class WebhookVerificationError(ComputeKitError):
    """A webhook could not be verified (``computekit.webhooks``): a header is missing, the timestamp is too old,
    or no signature matches. Answer the request with a 4xx and do not act on its body."""


class AllTargetsFailedError(ExceptionGroup, ComputeKitError):
    """Every target of a call failed. Its ``exceptions`` are each target's last error, in the order tried;
    ``attempts`` lists every try (retries included), so nothing that was billed is lost.

    Catch it as a whole (``except ck.AllTargetsFailedError``) or by kind (``except* ck.RateLimitError``).
    """

    attempts: list[Any]

    def __new__(cls, message: str, exceptions: Sequence[Exception], attempts: Sequence[Any] = ()) -> Self:
        self = super().__new__(cls, message, exceptions)
        self.attempts = list(attempts)
        return self

    def __init__(self, message: str, exceptions: Sequence[Exception], attempts: Sequence[Any] = ()) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> AllTargetsFailedError:  # type: ignore[override]
        return AllTargetsFailedError(self.message, excs, self.attempts)


class ProviderError(ComputeKitError):
    """An error from a provider, or on the way to it.

    Attributes:
        provider: The provider name (``"openai"``, ``"together"`` ...).
        model: The model asked for, if any.
        status: The HTTP status, or ``None`` when no response arrived (also ``status_code``).
        headers: The response headers, names lowercased.
        body: The response body: parsed JSON when it was JSON, else text.
        request_id: The provider's request id, when it sent one.
        cost: What this failure cost (a :class:`~computekit.Cost`), when it was priced on its own: a failed batch
            item's (``0`` when the provider did not bill it, ``total=None`` with the reason when it billed it
            without saying for what). ``None`` otherwise: a failed call's billed attempts are in its ledger rows.
        maybe_processed: Whether the provider may have acted on the request. ``False`` only when it surely did
            not: no connection was made (refused, DNS failure, connect timeout), or the provider answered that it
            refused the request (429, or an endpoint still scaling up). A request that starts billed work (a
            prediction) is retried only then, so that one call never runs two billed jobs.
    """

    maybe_processed: bool = True
    _cost: Any = None
    _billed: Any = None
    """The answer this failure was billed for, when the provider ran the call and said so (a Responses answer
    whose status is ``failed``, whole or in a stream's ``response.failed`` event): its attempt's ledger row is
    priced from its usage, or unknown when it reported none, never the 0 of an error response."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.body = body
        self.request_id = request_id

    @property
    def status_code(self) -> int | None:
        """The HTTP status, as openai-python, anthropic, httpx and litellm name it (the same as ``status``)."""
        return self.status

    @property
    def cost(self) -> Any:
        """What this failure cost, when it was priced on its own (a failed batch item's); else ``None``."""
        return self._cost

    def __str__(self) -> str:
        where = f"{self.provider}:{self.model}" if self.model else self.provider
        parts = [f"[{where}]"]
        if self.status is not None:
            parts.append(str(self.status))
        parts.append(self.message)
        if self.request_id:
            parts.append(f"(request id {self.request_id})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r}, status={self.status!r}, "
            f"request_id={self.request_id!r}, message={self.message[:_BODY_IN_MESSAGE]!r})"
        )


class APIStatusError(ProviderError):
    """The provider answered with an error status."""


class BadRequestError(APIStatusError):
    """The request was refused as invalid (400/422): retrying or falling back will not help."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus the requested output) does not fit the model's context window."""


class ContentFilteredError(BadRequestError):
    """The provider's content filter refused the prompt or the output."""


class AuthenticationError(APIStatusError):
    """The key was refused (401)."""


class PermissionDeniedError(APIStatusError):
    """The key may not use this resource (403)."""


class NotFoundError(APIStatusError):
    """The model, deployment or object does not exist (404)."""


class ConflictError(APIStatusError):
    """The request conflicts with the resource's state (409)."""


class RateLimitError(APIStatusError):
    """Too many requests or tokens (429); see ``headers`` for ``retry-after``."""


class ServerError(APIStatusError):
    """The provider failed (5xx)."""


class OverloadedError(ServerError):
    """The provider is overloaded (529, or an ``overloaded_error``)."""


class APIConnectionError(ProviderError):
    """The connection could not be made, or broke before the answer was complete."""


class APITimeoutError(APIConnectionError):
    """No answer in time: connect, read, or the total deadline. A kind of :class:`APIConnectionError`, as in
    openai-python (catch it first to tell the two apart)."""


class PredictionFailedError(ProviderError):
    """A prediction ran and failed on the host. ``prediction`` carries its error, logs and cost (the GPU time was
    billed all the same)."""

    prediction: Any = None


class FineTuneFailedError(ProviderError):
    """A fine-tuning job ended ``failed``. ``job`` is its last state (its cost, if any was billed, is in the ledger);
    ``body`` is the provider's error object (code, message, param ...)."""

    job: Any = None


class FineTuneTimeoutError(APITimeoutError):
    """``wait(timeout=)`` passed before the job ended. ``job`` is its last state; the job keeps running (training
    is not canceled on a client-side timeout: call ``job.cancel()`` to stop it)."""

    job: Any = None


class BackgroundFailedError(ProviderError):
    """A background response ended ``failed``. ``response`` is its last state (what it was billed is in the
    ledger); ``body`` is the provider's error object, and the error it maps to (``RateLimitError``,
    ``ServerError`` ...) is the ``__cause__``."""

    response: Any = None


class BackgroundTimeoutError(APITimeoutError):
    """A background response did not end within ``wait(timeout=)``. ``response`` is its last state (cancelled
    on the provider, unless ``cancel_on_timeout=False``)."""

    response: Any = None
class BatchFailedError(ProviderError):
    """A batch ended ``failed`` as a whole (the provider refused its input: nothing ran, nothing was billed).
    ``job`` is its last state; ``body`` is the provider's list of errors."""

    job: Any = None


class BatchTimeoutError(APITimeoutError):
    """``wait(timeout=)`` passed before the batch ended. ``job`` is its last state; the batch keeps running (call
    ``job.cancel()`` to stop it)."""

    job: Any = None


class PredictionTimeoutError(APITimeoutError):
    """A prediction did not finish within ``timeout``. ``prediction`` is its last state (canceled on the host,
    unless ``cancel_on_timeout=False``)."""

    prediction: Any = None


class MalformedResponseError(ProviderError):
    """A successful status whose body is not what the API documents (not JSON, wrong shape, cut short)."""


class ResponseTooLargeError(MalformedResponseError):
    """A response body, or one server-sent event, grew past its size limit and was refused unread.

    ``limit`` is the number of bytes allowed (set per verb under ``[limits]`` in ``computekit.toml``).
    """

    limit: int | None = None


class StructuredOutputError(ProviderError):
    """The model refused, or answered with something that does not validate against ``response_format``'s type.

    The call was billed: its attempt is in the ledger with this cost. Not retried (the same request tends to get
    the same answer); a route falls back from it to its next target when ``routing.on_invalid_output`` is
    ``"fallback"``.

    Attributes:
        text: The model's raw answer (what failed validation), or its refusal.
        errors: pydantic's validation errors (``ValidationError.errors()``); empty for a refusal.
        refusal: The model's refusal message, when it refused.
        completion: The whole completion (usage, cost, attempts), ``parsed`` unset.
        cost: What the attempt cost (``completion.cost``).
    """

    def __init__(self, message: str, *, provider: str, model: str | None = None, text: str = "",
                 errors: Sequence[Any] = (), refusal: str | None = None, completion: Any = None,
                 request_id: str | None = None) -> None:
        super().__init__(message, provider=provider, model=model, request_id=request_id)
        self.text = text
        self.errors = list(errors)
        self.refusal = refusal
        self.completion = completion

    @property
    def cost(self) -> Any:
        """What the failed attempt cost (a :class:`~computekit.Cost`), ``None`` before it was priced."""
        return getattr(self.completion, "cost", None)
