"""AWS Bedrock: the Converse and ConverseStream APIs (``bedrock:`` models), and embeddings through InvokeModel
for the Titan and Cohere embedding models.

Wire handling follows the Bedrock Runtime API reference (docs.aws.amazon.com/bedrock/latest/APIReference:
``Converse``, ``ConverseStream``, ``InvokeModel``) and is kept honest by the real recordings in
``shared/conformance/bedrock``. What computekit takes from AWS's own library, botocore (the ``computekit[bedrock]``
extra, imported on first use, never at ``import computekit``):

- **SigV4 signing** (``botocore.auth.SigV4Auth``) with credentials from the standard AWS chain
  (``botocore.session``: environment, shared credentials/config profile, SSO, container and instance roles),
  refreshed by botocore when they are temporary;
- **event-stream framing** (``botocore.eventstream.EventStreamBuffer``): ConverseStream answers with AWS's binary
  event-stream frames, not server-sent events; each frame (prelude, headers, payload, CRCs checked) becomes one
  event for the stream decoder here.

A Bedrock API key (``AWS_BEARER_TOKEN_BEDROCK``, or ``api_key`` in config) is sent as ``Authorization: Bearer``
and nothing is signed: botocore is then needed only to read streams.

Model ids are Bedrock's: a foundation model (``amazon.nova-micro-v1:0``), a cross-region inference profile
(``us.``/``eu.``/``apac.``/``global.`` ... prefixes: priced as their base model, at the profile's rate where
genai-prices lists one), or an application inference profile ARN (no price known: the cost is ``None``, never a
guess). The region is ``[providers.bedrock] base_url``'s when it names one, else ``region`` (a setting this
adapter declares, :class:`BedrockSettings`), else ``$AWS_REGION``, else ``$AWS_DEFAULT_REGION``, else the AWS
profile's.

Translations (computekit's shape -> Converse's):

- ``system``/``developer`` messages -> the top-level ``system`` blocks;
- text and image parts -> ``{"text"}`` / ``{"image": {"format", "source": {"bytes"}}}`` blocks (images as data
  URLs; Converse takes no image URLs); Bedrock-native blocks (``document``, ``cachePoint``, ``reasoningContent``,
  ``guardContent`` ...) pass as they are;
- tools -> ``toolConfig.tools[].toolSpec`` with ``inputSchema.json``; ``tool_choice`` -> ``toolConfig.toolChoice``;
- an assistant message's ``tool_calls`` -> ``toolUse`` blocks; ``tool`` messages -> one user message of
  ``toolResult`` blocks;
- ``max_tokens``/``temperature``/``top_p``/``stop`` -> ``inferenceConfig``; ``service_tier`` -> ``serviceTier``;
- ``extra_body`` passes through at the top level: ``additionalModelRequestFields``, ``guardrailConfig``,
  ``performanceConfig``, ``promptVariables``, ``requestMetadata`` ...

Usage: Converse's ``inputTokens`` **excludes** ``cacheReadInputTokens`` and ``cacheWriteInputTokens``;
computekit's :class:`~computekit.Usage` counts all input, so they are added back, and each is priced at its own
rate. Reasoning is billed inside ``outputTokens``. Reasoning text is kept in ``raw``, never in ``text``.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import logging
import os
import re
import struct
import threading
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator

from .._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    MissingAPIKeyError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from .._http import encode_json
from .._sse import FrameError, SSETooLarge
from .._structured import FORCED_TOOL_NAME, forced_tool, forced_tool_answer
from .._types import Chunk, Completion, Embeddings, Message, Result, ToolCall, Usage
from ..pricing import PriceRef
from ._base import (
    Adapter,
    AdapterSettings,
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    HTTPResponse,
    ProviderSettings,
    SSEEvent,
    StreamDecoder,
    sampling_options,
    token_count,
)

__all__ = [
    "BEARER_ENV_VAR",
    "DEFAULT_BASE_URL",
    "INFERENCE_PROFILE_PREFIXES",
    "BedrockAdapter",
    "BedrockSettings",
    "EventStreamDecoder",
]

DEFAULT_BASE_URL: Final = "https://bedrock-runtime.{region}.amazonaws.com"
"""Bedrock Runtime's endpoint; ``{region}`` is filled in with the resolved region."""

BEARER_ENV_VAR: Final = "AWS_BEARER_TOKEN_BEDROCK"
"""A Bedrock API key: sent as a bearer token, with no SigV4 signing."""

REGION_ENV_VARS: Final = ("AWS_REGION", "AWS_DEFAULT_REGION")
PROFILE_ENV_VAR: Final = "AWS_PROFILE"
SIGNING_NAME: Final = "bedrock"
"""The service name SigV4 signs Bedrock Runtime requests for."""

SIGNING_LOGGER: Final = "botocore.auth"
"""The logger botocore's signer writes each canonical request to (at DEBUG)."""

INFERENCE_PROFILE_PREFIXES: Final = ("us-gov.", "us.", "eu.", "apac.", "global.", "jp.", "au.", "ca.", "in.")
"""Cross-region inference profile prefixes: the rest of the id is the base model."""

_EXTRA_HINT: Final = "AWS Bedrock needs botocore: pip install 'computekit[bedrock]'"

_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# Bedrock's exception names (x-amzn-errortype, or the event-stream ``:exception-type``) -> computekit's errors.
_ERROR_TYPES: Final[dict[str, type[APIStatusError]]] = {
    "ValidationException": BadRequestError,
    "AccessDeniedException": PermissionDeniedError,
    "UnrecognizedClientException": AuthenticationError,
    "InvalidSignatureException": AuthenticationError,
    "IncompleteSignatureException": AuthenticationError,
    "MissingAuthenticationTokenException": AuthenticationError,
    "ExpiredTokenException": AuthenticationError,
    "ResourceNotFoundException": NotFoundError,
    "ThrottlingException": RateLimitError,
    "ServiceQuotaExceededException": RateLimitError,
    "ModelNotReadyException": OverloadedError,
    "ServiceUnavailableException": ServerError,
    "InternalServerException": ServerError,
    "ModelErrorException": ServerError,
    "ModelTimeoutException": ServerError,
    "ModelStreamErrorException": ServerError,
}
# The HTTP status AWS documents for each (an exception frame inside a 200 stream carries none).
_ERROR_STATUS: Final = {
    "ValidationException": 400, "AccessDeniedException": 403, "UnrecognizedClientException": 403,
    "ExpiredTokenException": 403, "ResourceNotFoundException": 404, "ThrottlingException": 429,
    "ServiceQuotaExceededException": 400, "ModelNotReadyException": 429, "ServiceUnavailableException": 503,
    "InternalServerException": 500, "ModelErrorException": 424, "ModelTimeoutException": 408,
    "ModelStreamErrorException": 424,
}
# Statuses retried by the client that AWS gives to exceptions it documents as retryable.
_RETRIED_STATUS: Final = {"ModelErrorException": 503, "ModelTimeoutException": 504, "ModelStreamErrorException": 503}

_MESSAGE_TYPES: Final = ("event", "exception", "error")
"""The ``:message-type`` of every event-stream frame AWS sends."""

_CONTEXT_PHRASES: Final = ("too many input tokens", "input is too long", "prompt is too long", "context window",
                           "too many total text bytes", "exceeds the maximum")

_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
# Converse content blocks, by their single key: passed as they are when given in Bedrock's own shape.
_NATIVE_BLOCKS: Final = frozenset({"text", "image", "document", "video", "toolUse", "toolResult", "guardContent",
                                   "cachePoint", "reasoningContent", "citationsContent", "searchResult", "audio"})
_SYSTEM_BLOCKS: Final = frozenset({"text", "guardContent", "cachePoint"})
_IMAGE_FORMATS: Final = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                         "image/webp": "webp"}
_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
# An AWS region is one DNS label in lowercase: it is written into the endpoint's host name and the signature's
# scope, so anything else ("us-east-1.evil.com/", "../") would send the signed request to another host.
_REGION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CHAIN: Final = (BEARER_ENV_VAR, "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                 "an AWS profile (AWS_PROFILE, SSO, instance role)")
"""Where credentials come from, for the error that says none were found."""
_MAX_WHY: Final = 300
"""Characters of the credential chain's own error kept in computekit's."""
_SECRETS_KEPT: Final = 8
"""Credentials of the last refreshes remembered, to mask a host's echo of one a request was signed with."""
# Credential headers of a SigV4-signed request (the signature and the session token of temporary credentials).
_SIGV4_HEADERS: Final = frozenset({"authorization", "x-amz-security-token"})


@functools.cache
def _aws_endpoint(url: str) -> bool:
    """Whether ``url`` is one of AWS's own Bedrock Runtime endpoints (``https://bedrock-runtime.REGION...``)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.port is None and bool(_HOST.match(parts.hostname or ""))


def check_region(region: str, source: str) -> str:
    """``region`` when it is an AWS region name (``us-east-1``), else a :class:`ConfigError` naming ``source``.

    Raises:
        ConfigError: It is not one lowercase DNS label.
    """
    if not _REGION.fullmatch(region):
        shown = region if len(region) <= 64 else region[:64] + "..."
        raise ConfigError(
            f"{shown!r} from {source} is not an AWS region name: a region is lowercase letters, digits and "
            "hyphens, such as us-east-1 (it becomes part of the endpoint's host name)"
        )
    return region


class BedrockSettings(AdapterSettings):
    """``[providers.bedrock]``: the AWS region of the Bedrock Runtime endpoint, and the shared-config profile that
    credentials (and, by default, the region) come from.

    Each defaults to the AWS convention: ``$AWS_REGION`` / ``$AWS_DEFAULT_REGION`` (else the profile's region),
    ``$AWS_PROFILE`` (else the default profile). A ``base_url`` that names its region wins over ``region``.
    """

    region: str | None = Field(None, min_length=1, description="AWS region of the Bedrock Runtime endpoint "
                               "(e.g. us-east-1); default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's.")
    profile: str | None = Field(None, min_length=1, description="AWS shared-config profile credentials and region "
                                "are read from; default: $AWS_PROFILE, else the default profile.")

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.fullmatch(value):
            raise ValueError("an AWS region is lowercase letters, digits and hyphens, such as us-east-1")
        return value


_MASKED_LINE: Final = r"\1**********"


class _SessionTokenMask(logging.Filter):
    """Masks the session token in the canonical requests botocore's signer logs at DEBUG: a request signed with
    temporary credentials has an ``x-amz-security-token`` line there. The rest of the record, what a signature
    mismatch is debugged with, is kept."""

    _LINE = re.compile(r"^(x-amz-security-token:).+$", re.IGNORECASE | re.MULTILINE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._LINE.sub(_MASKED_LINE, record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._LINE.sub(_MASKED_LINE, a) if isinstance(a, str) else a for a in record.args)
        return True


_SESSION_TOKEN_MASK: Final = _SessionTokenMask()


def _botocore() -> Any:
    try:
        import botocore.session
    except ImportError as e:  # the extra is not installed
        raise ConfigError(_EXTRA_HINT) from e
    return botocore


def base_model(model: str) -> str:
    """A cross-region inference profile id without its geography prefix (``us.amazon.nova-micro-v1:0`` ->
    ``amazon.nova-micro-v1:0``); other ids unchanged."""
    for prefix in INFERENCE_PROFILE_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


# --------------------------------------------------------------------------------------------- request side


def _image_block(url: str) -> dict[str, Any]:
    if not url.startswith("data:"):
        raise InvalidRequestError(
            "Bedrock Converse takes images as bytes, not URLs: pass a data URL (data:image/png;base64,...) or a "
            'native block {"image": {"format": "png", "source": {"s3Location": {...}}}}'
        )
    head, _, data = url.partition(",")
    media = head[5:].split(";")[0].lower()
    fmt = _IMAGE_FORMATS.get(media)
    if fmt is None:
        raise InvalidRequestError(f"Bedrock Converse takes png, jpeg, gif or webp images, not {media or 'this'}")
    if ";base64" not in head:
        data = base64.b64encode(data.encode()).decode()
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _block(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"text": part}
    if not isinstance(part, Mapping):
        raise InvalidRequestError(f"a message content part must be a string or an object, not {type(part).__name__}")
    if len(part) == 1 and next(iter(part)) in _NATIVE_BLOCKS:
        return dict(part)
    kind = part.get("type")
    if kind == "text":
        return {"text": part.get("text") or ""}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else (image if isinstance(image, str) else part.get("url"))
        if isinstance(url, str):
            return _image_block(url)
    raise InvalidRequestError(f"Bedrock Converse has no content block for {dict(part)!r}")


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, list):
        return [_block(p) for p in content]
    return [_block(content)]


def _tool_use(tc: Mapping[str, Any]) -> dict[str, Any]:
    fn = tc.get("function")
    name, arguments = (fn.get("name", ""), fn.get("arguments", "")) if isinstance(fn, Mapping) else (
        tc.get("name", ""), tc.get("arguments", ""))
    if isinstance(arguments, str):
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise InvalidRequestError(
                f"tool call {tc.get('id')!r} has arguments that are not JSON; Bedrock needs a JSON object"
            ) from None
    else:
        args = arguments
    return {"toolUse": {"toolUseId": tc.get("id", ""), "name": name, "input": args}}


def _tool_result(m: Mapping[str, Any]) -> dict[str, Any]:
    if not m.get("tool_call_id"):
        raise InvalidRequestError("a tool message needs the tool_call_id of the call it answers")
    content = m.get("content")
    blocks = _blocks(content) if content not in (None, "") else [{"text": ""}]
    out: dict[str, Any] = {"toolUseId": m["tool_call_id"], "content": blocks}
    if m.get("is_error"):
        out["status"] = "error"
    return {"toolResult": out}


def wire_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """computekit's messages -> Converse's ``system`` blocks and ``messages``."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def flush() -> None:
        if results:
            out.append({"role": "user", "content": list(results)})
            results.clear()

    for m in messages:
        role = m.get("role")
        if role in _SYSTEM_ROLES:
            for b in _blocks(m.get("content")):
                if next(iter(b)) not in _SYSTEM_BLOCKS:
                    raise InvalidRequestError("Bedrock system prompts take text, guardContent and cachePoint blocks")
                system.append(b)
            continue
        if role == "tool":
            results.append(_tool_result(m))
            continue
        flush()
        if role == "assistant":
            blocks = _blocks(m.get("content"))
            blocks.extend(_tool_use(tc) for tc in m.get("tool_calls") or [])
            out.append({"role": "assistant", "content": blocks})
        elif role == "user":
            out.append({"role": "user", "content": _blocks(m.get("content"))})
        else:
            raise InvalidRequestError(f"unknown message role {role!r}")
    flush()
    return system, out


def wire_tool(t: Mapping[str, Any]) -> dict[str, Any]:
    """A tool as a Converse ``toolSpec``; OpenAI's shape and ``{"name", "description", "parameters"}`` are
    converted, a Bedrock-native tool (``toolSpec``, ``systemTool``, ``cachePoint``) passes as it is."""
    if len(t) == 1 and next(iter(t)) in ("toolSpec", "systemTool", "cachePoint"):
        return dict(t)
    fn = t.get("function") if isinstance(t.get("function"), Mapping) else t
    assert isinstance(fn, Mapping)
    spec: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        spec["description"] = fn["description"]
    spec["inputSchema"] = {"json": fn.get("parameters") or {"type": "object", "properties": {}}}
    return {"toolSpec": spec}


def wire_tool_choice(choice: Any) -> dict[str, Any]:
    """OpenAI-style ``tool_choice`` -> Converse's (``auto``, ``any``/``required``, or a named tool)."""
    if choice in ("auto", "any", "required"):
        return {"auto": {}} if choice == "auto" else {"any": {}}
    if choice == "none":
        raise InvalidRequestError("Bedrock Converse has no tool_choice 'none': send the call without tools")
    if isinstance(choice, str):
        return {"tool": {"name": choice}}
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, Mapping):
            return {"tool": {"name": fn["name"]}}
        return dict(choice)
    raise InvalidRequestError(f"tool_choice {choice!r} is not understood")


# --------------------------------------------------------------------------------------------- response side


def _usage(raw: Mapping[str, Any] | None) -> Usage:
    """Converse's ``usage`` -> :class:`Usage`.

    Raises:
        ValueError: A count is not a whole number of 0 or more (the client reports a malformed answer).
    """
    if not raw:
        return Usage()
    # cacheRead/WriteInputTokenCount: the same counts under their older names, still sent beside the new ones.
    read = token_count(raw, "cacheReadInputTokens", "cacheReadInputTokenCount")
    write = token_count(raw, "cacheWriteInputTokens", "cacheWriteInputTokenCount")
    # The cache writes' split by lifetime (cacheDetails: [{"ttl": "1h", "inputTokens": n}]): 1-hour writes cost more.
    details = raw.get("cacheDetails")
    write_1h = sum(token_count(d, "inputTokens") for d in details if isinstance(d, Mapping) and d.get("ttl") == "1h") \
        if isinstance(details, list) else 0
    return Usage(
        input_tokens=token_count(raw, "inputTokens") + read + write,
        output_tokens=token_count(raw, "outputTokens"),
        cached_input_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write_1h, write),
    )


def _finish(reason: Any) -> str | None:
    return _FINISH.get(reason, reason) if isinstance(reason, str) and reason else None


def _text(blocks: list[Any]) -> str:
    return "".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


def _calls(blocks: list[Any]) -> list[ToolCall]:
    out = []
    for b in blocks:
        use = b.get("toolUse") if isinstance(b, dict) else None
        if isinstance(use, dict):
            args = use.get("input")
            out.append(ToolCall(id=str(use.get("toolUseId") or ""), name=str(use.get("name") or ""),
                                arguments=json.dumps(args if args is not None else {}, ensure_ascii=False)))
    return out


def _service_tier(data: Mapping[str, Any]) -> str | None:
    tier = data.get("serviceTier")
    return tier.get("type") if isinstance(tier, Mapping) and isinstance(tier.get("type"), str) else None


class BedrockAdapter(Adapter):
    """AWS Bedrock's Converse API (``bedrock:`` models). Credentials: the AWS chain, or ``AWS_BEARER_TOKEN_BEDROCK``."""

    name = "bedrock"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=False, embed=True)
    key_env_vars = (BEARER_ENV_VAR,)
    default_base_url = DEFAULT_BASE_URL
    requires_key = False  # SigV4 credentials from the AWS chain stand in for a key
    table_provider = "aws"
    docs_url = "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html"

    settings_model = BedrockSettings
    options: BedrockSettings

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self._session: Any = None
        self._credentials: Any = None
        self._region: str | None = None
        self._sent: collections.deque[SecretStr] = collections.deque(maxlen=_SECRETS_KEPT)

    def unsupported_reason(self, capability: str) -> str | None:
        if capability == "finetune":
            return "Bedrock model customization jobs are not offered by computekit yet"
        if capability == "json_mode":
            return ("Converse has no JSON mode: pass response_format= a type (a pydantic model), which is asked for "
                    "through a forced tool")
        return super().unsupported_reason(capability)

    # ----------------------------------------------------------------------------------------- region & auth

    def _aws_session(self) -> Any:
        with self._lock:
            if self._session is None:
                profile = self.options.profile or os.environ.get(PROFILE_ENV_VAR) or None
                self._session = _botocore().session.Session(profile=profile)
            return self._session

    @property
    def region(self) -> str:
        """The AWS region requests go to and are signed for.

        Raises:
            ConfigError: No region is set anywhere.
        """
        if self._region is not None:
            return self._region
        host = urlsplit(self.settings.base_url.replace("{region}", "region")).hostname or ""
        found = _HOST.match(host)
        # An endpoint that names its region is signed for that region (AWS rejects any other).
        region: str | None = None
        if found and "{region}" not in self.settings.base_url:
            region, source = found.group(1), f"[providers.{self.provider}] base_url"
        elif self.options.region:
            region, source = self.options.region, f"[providers.{self.provider}] region"
        else:
            region, source = next(((os.environ[v], f"${v}") for v in REGION_ENV_VARS if os.environ.get(v)),
                                  (None, ""))
        if region is None and self.settings.api_key is None:
            try:
                region, source = self._aws_session().get_config_variable("region"), "the AWS profile"
            except Exception as e:  # an unknown or unreadable profile (botocore's own errors)
                raise ConfigError(f"the AWS profile of {self.provider} could not be read for its region "
                                  f"({type(e).__name__}: {str(e)[:_MAX_WHY]}): set [providers.{self.provider}] "
                                  "region, or $AWS_REGION, or fix AWS_PROFILE") from e
        if not region:
            raise ConfigError(
                f"no AWS region for {self.provider}: set [providers.{self.provider}] region = \"us-east-1\", or "
                "$AWS_REGION ($AWS_DEFAULT_REGION), or a region in your AWS profile"
            )
        self._region = check_region(str(region), source)
        return self._region

    def url(self, path: str) -> str:
        base = self.settings.base_url
        if "{region}" in base:
            base = base.replace("{region}", self.region)
        return f"{base.rstrip('/')}/{path}"

    def model_url(self, model: str, action: str) -> str:
        # The model id goes in the path with its colons as they are and everything else escaped (an ARN's "/"):
        # every transport then sends the same bytes, so the SigV4 signature is over what goes on the wire.
        return self.url(f"model/{quote(model, safe=':')}/{action}")

    @classmethod
    def own_endpoint(cls, provider: str, url: str) -> bool:
        return _aws_endpoint(url)

    def without_key(self, headers: Mapping[str, str]) -> dict[str, str]:
        # A SigV4 signature and the session token of temporary credentials are no configured key: by name too.
        return {k: v for k, v in super().without_key(headers).items() if k.lower() not in _SIGV4_HEADERS}

    def _signed(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """``headers`` plus the credential: a bearer API key, else a SigV4 signature over this exact request.

        Raises:
            MissingAPIKeyError: A per-call base URL that is not a Bedrock Runtime endpoint of AWS, without a key
                of its own: the AWS chain's credentials are not sent there.
        """
        if self.settings.api_key is not None:
            return {**headers, "authorization": f"Bearer {self.require_key()}"}
        if not self.settings.ambient_credentials and not _aws_endpoint(url):
            raise MissingAPIKeyError(self.provider, (BEARER_ENV_VAR,), (
                f"the AWS credentials of {self.provider} are not sent to a per-call base_url off AWS's Bedrock "
                f"Runtime endpoints ({urlsplit(url).hostname}): configure it as [providers.{self.provider}] "
                "base_url, or pass api_key= (a Bedrock API key) with it"))
        creds = self._frozen_credentials()
        with self._lock:
            for secret in (creds.access_key, creds.secret_key, creds.token):
                if secret and all(s.get_secret_value() != secret for s in self._sent):
                    self._sent.append(SecretStr(secret))  # held masked: never in a repr
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        logging.getLogger(SIGNING_LOGGER).addFilter(_SESSION_TOKEN_MASK)  # a no-op once it is there
        aws = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(creds, SIGNING_NAME, self.region).add_auth(aws)
        return {k.lower(): v for k, v in aws.headers.items()}

    def sent_secrets(self) -> list[str]:
        # The access key id, secret access key and session token of the credentials signed with lately: a host
        # may echo them.
        with self._lock:
            return [*super().sent_secrets(), *(s.get_secret_value() for s in self._sent)]

    def renew_auth(self, http: HTTPRequest) -> None:
        # A SigV4 signature is dated (AWS refuses one minutes old) and temporary credentials expire: a retry after
        # a long first try is signed again, with the chain's current credentials. A bearer key never expires.
        if self.settings.api_key is None and "authorization" in http.headers:
            unsigned = {k: v for k, v in http.headers.items() if k not in _SIGV4_HEADERS and k != "x-amz-date"}
            http.headers = self._signed(http.method, http.url, unsigned, http.body() or b"")

    def _frozen_credentials(self) -> Any:
        """The AWS chain's current credentials (botocore refreshes temporary ones near their expiry).

        Raises:
            MissingAPIKeyError: The chain found none, or failed: partial credentials, an unknown profile, an SSO
                session that expired, a credential process that failed (the message says which).
        """
        try:
            return self._aws_credentials().get_frozen_credentials()
        except MissingAPIKeyError:
            raise
        except Exception as e:  # the chain runs what the profile names (a process, SSO, STS): any failure is "none"
            why = f"{type(e).__name__}: {e}"
            raise MissingAPIKeyError(self.provider, _CHAIN, (
                f"the AWS credentials of {self.provider} could not be loaded ({why[:_MAX_WHY]}): set "
                f"{BEARER_ENV_VAR}, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or fix the AWS profile "
                "(AWS_PROFILE; `aws sso login` when its SSO session has expired)")) from e

    def _aws_credentials(self) -> Any:
        with self._lock:
            creds = self._credentials
        if creds is None:
            creds = self._aws_session().get_credentials()
            if creds is None:
                raise MissingAPIKeyError(self.provider, _CHAIN)
            with self._lock:
                self._credentials = creds
        return creds

    def _request(self, url: str, body: dict[str, Any], *, stream: bool = False,
                 accept: str = "application/json") -> HTTPRequest:
        content = encode_json(body)  # signed as it is sent: encoded once, here
        headers = {"content-type": "application/json", "accept": accept}
        headers.update(self.settings.headers)
        return HTTPRequest("POST", url, self._signed("POST", url, headers, content), content=content, stream=stream)

    # ----------------------------------------------------------------------------------------- complete

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        if req.response_format is not None and req.output is None:
            raise self.unsupported("json_mode")
        if req.seed is not None:
            raise InvalidRequestError("Bedrock Converse has no seed parameter")
        system, messages = wire_messages(req.messages)
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        inference = sampling_options(req, {"max_tokens": "maxTokens", "temperature": "temperature", "top_p": "topP",
                                           "stop": "stopSequences"})
        if inference:
            body["inferenceConfig"] = inference
        if req.output is not None:
            # Converse has no schema mode: the documented way to a typed answer is one tool the model must call.
            if req.tools:
                raise InvalidRequestError("Bedrock Converse gets a typed answer through a forced tool, which "
                                          "leaves no room for your tools: drop tools= or response_format=")
            body["toolConfig"] = {"tools": [wire_tool(forced_tool(req.output))],
                                  "toolChoice": {"tool": {"name": FORCED_TOOL_NAME}}}
        elif req.tools:
            tool_config: dict[str, Any] = {"tools": [wire_tool(t) for t in req.tools]}
            if req.tool_choice is not None:
                tool_config["toolChoice"] = wire_tool_choice(req.tool_choice)
            body["toolConfig"] = tool_config
        elif req.tool_choice is not None:
            raise InvalidRequestError("tool_choice needs tools")
        if req.service_tier is not None:
            body["serviceTier"] = {"type": req.service_tier}
        if req.user is not None:
            body["requestMetadata"] = {"user": req.user}
        if req.extra:
            body.update(req.extra)  # additionalModelRequestFields, guardrailConfig, performanceConfig ...
        action = "converse-stream" if req.stream else "converse"
        accept = "application/vnd.amazon.eventstream" if req.stream else "application/json"
        return self._request(self.model_url(req.model, action), body, stream=req.stream, accept=accept)

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        data = self.json_object(resp, req.model)
        message = (data.get("output") or {}).get("message") if isinstance(data.get("output"), dict) else None
        blocks = message.get("content") if isinstance(message, dict) else None
        if not isinstance(blocks, list):
            raise self.malformed(resp, req.model, "no output.message.content in the response")
        text = _text(blocks)
        calls = _calls(blocks)
        raw_usage = data.get("usage")
        result = Completion(
            provider=self.provider,
            model=req.model,
            text=text,
            message=Message(role="assistant", content=text, tool_calls=calls or None),
            tool_calls=calls,
            finish_reason=_finish(data.get("stopReason")),
            service_tier=_service_tier(data),
            usage=self.usage(raw_usage if isinstance(raw_usage, dict) else None),
            request_id=self.request_id(resp.headers),
            raw=data,
        )
        result._usage_reported = isinstance(raw_usage, dict)
        return forced_tool_answer(result) if req.output is not None else result

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return _ConverseStream(self, req)

    def event_decoder(self, max_event_bytes: int) -> EventStreamDecoder:
        return EventStreamDecoder(max_event_bytes)

    # ----------------------------------------------------------------------------------------- embed

    def build_embed(self, req: EmbedRequest) -> HTTPRequest:
        family = base_model(req.model)
        if family.startswith("amazon.titan-embed"):
            if len(req.inputs) != 1:
                raise InvalidRequestError(
                    f"{req.model} embeds one text per request: call embed() once per text (got {len(req.inputs)})"
                )
            body: dict[str, Any] = {"inputText": req.inputs[0]}
            if req.dimensions is not None:
                body["dimensions"] = req.dimensions
        elif family.startswith("cohere.embed"):
            body = {"texts": req.inputs, "input_type": "search_document"}
            if req.dimensions is not None:
                body["output_dimension"] = req.dimensions
        else:
            raise InvalidRequestError(
                f"{req.model}: computekit embeds through Bedrock with the Titan (amazon.titan-embed-*) and Cohere "
                "(cohere.embed-*) models"
            )
        body.update(req.extra)
        return self._request(self.model_url(req.model, "invoke"), body)

    def parse_embed(self, req: EmbedRequest, resp: HTTPResponse) -> Embeddings:
        data = self.json_object(resp, req.model)
        vectors: Any = data.get("embeddings")
        if isinstance(vectors, dict):  # Cohere with embedding_types: {"float": [...]}
            vectors = vectors.get("float")
        if vectors is None and "embedding" in data:  # Titan: one vector
            vectors = [data["embedding"]]
        if not (isinstance(vectors, list) and all(isinstance(v, list) for v in vectors)):
            raise self.malformed(resp, req.model, "no embeddings in the response")
        counted = data.get("inputTextTokenCount")
        header = resp.headers.get("x-amzn-bedrock-input-token-count")
        tokens = counted if isinstance(counted, int) else (int(header) if header and header.isdigit() else None)
        result = Embeddings(
            provider=self.provider, model=req.model, vectors=[[float(x) for x in v] for v in vectors],
            usage=Usage(input_tokens=tokens or 0), request_id=self.request_id(resp.headers), raw=data,
        )
        result._usage_reported = tokens is not None
        return result

    # ----------------------------------------------------------------------------------------- usage & price

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        return _usage(raw)

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        """genai-prices' ``aws`` table, which lists cross-region profiles (``us.``, ``global.`` ...) at the profile's
        own rate where it differs; a profile it does not list is priced as its base model. A service tier other
        than the default is passed on."""
        ctx: tuple[tuple[str, str], ...] = ()
        if isinstance(result, Completion) and result.service_tier and result.service_tier != "default":
            ctx = (("service_tier", result.service_tier),)
        base = base_model(model)
        return PriceRef(provider=self.provider, model=model, table_provider=self.table_provider, context=ctx,
                        alternatives=(base,) if base != model else ())

    # ----------------------------------------------------------------------------------------- errors

    @staticmethod
    def error_type(headers: Mapping[str, str], body: Any) -> str | None:
        """The AWS exception name: ``x-amzn-errortype`` (``ThrottlingException:http://...``), else ``__type``."""
        kind = headers.get("x-amzn-errortype")
        if not kind and isinstance(body, dict):
            kind = body.get("__type") or body.get("code")
        if not isinstance(kind, str) or not kind:
            return None
        return kind.split(":", 1)[0].rsplit("#", 1)[-1]

    def error_message(self, body: Any) -> str:
        if isinstance(body, dict):
            msg = body.get("message") or body.get("Message")
            if isinstance(msg, str) and msg:
                return msg
        return super().error_message(body)

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        kind = self.error_type({}, body)
        return self._classify(kind, body)

    def _classify(self, kind: str | None, body: Any) -> type[APIStatusError] | None:
        cls = _ERROR_TYPES.get(kind or "")
        if cls is BadRequestError:
            msg = self.error_message(body).lower()
            if any(p in msg for p in _CONTEXT_PHRASES):
                return ContextWindowExceededError
            if "content filter" in msg or "guardrail" in msg:
                return ContentFilteredError
        return cls

    def map_error(self, resp: HTTPResponse, model: str | None) -> ProviderError:
        kind = self.error_type(resp.headers, resp.body_for_error())
        err = super().map_error(resp, model)
        cls = self._classify(kind, err.body)
        if cls is not None and type(err) is not cls:
            fixed = cls(err.message, provider=err.provider, model=err.model, status=err.status, headers=err.headers,
                        body=err.body, request_id=err.request_id)
            fixed.maybe_processed = err.maybe_processed
            return fixed
        return err

    def stream_error(self, kind: str, payload: bytes, model: str | None) -> ProviderError:
        """An exception frame inside a 200 stream, raised typed with the status AWS documents for it."""
        status = _RETRIED_STATUS.get(kind) or _ERROR_STATUS.get(kind, 500)
        return self.map_error(HTTPResponse(status, {"x-amzn-errortype": kind}, payload), model)


# --------------------------------------------------------------------------------------------- event stream


class EventStreamDecoder:
    """AWS event-stream frames -> events, decoded by botocore's parser (CRCs checked), with a bound on memory.

    An ``event`` frame becomes ``SSEEvent(event=<:event-type>, data=<payload>)``; an ``exception`` or ``error``
    frame becomes ``SSEEvent(event="exception", id=<:exception-type or :error-code>, data=<payload>)``.

    Args:
        max_event_bytes: The largest frame buffered before giving up.
    """

    def __init__(self, max_event_bytes: int) -> None:
        from botocore.eventstream import EventStreamBuffer

        _botocore()
        self._buf = EventStreamBuffer()
        self._max = max_event_bytes
        self._pending = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; returns the events it completed.

        Raises:
            SSETooLarge: A frame exceeds ``max_event_bytes``.
            FrameError: A frame is corrupt (bad CRC, impossible lengths); its ``events``: those before it.
        """
        self._pending += len(chunk)
        self._buf.add_data(chunk)
        out: list[SSEEvent] = []
        try:
            while (message := self._next()) is not None:
                size = message.prelude.total_length
                if size > self._max:
                    raise SSETooLarge(self._max, f"an event-stream frame of {size} bytes")
                self._pending -= size
                out.append(_event(message.headers, message.payload))
            if self._pending > self._max:
                raise SSETooLarge(self._max, "an event-stream frame")
        except FrameError as e:
            e.events = out  # the frames before it are still delivered
            raise
        except SSETooLarge as e:
            e.events = out
            raise
        return out

    def _next(self) -> Any:
        """The next whole frame, or ``None``.

        Raises:
            FrameError: The frame does not parse.
        """
        from botocore.eventstream import ParserError

        try:
            return next(self._buf, None)
        except ParserError as e:  # a checksum that does not match, a length past the limits
            raise FrameError(f"corrupt event-stream frame: {e}") from e
        except (ValueError, LookupError, struct.error) as e:
            # botocore's parser lets these out as they are: a header of an unknown type (KeyError), a name or
            # value that is not UTF-8 (UnicodeDecodeError), headers that end inside a header (struct.error).
            raise FrameError(f"corrupt event-stream frame ({type(e).__name__}: {e})") from e

    def close(self) -> tuple[list[SSEEvent], bool]:
        """End of stream: no more events, and whether a frame was cut short."""
        return [], self._pending > 0


def _event(headers: Mapping[str, Any], payload: bytes) -> SSEEvent:
    """One frame as an event.

    Raises:
        FrameError: The frame is not an event, an exception or an error (its ``:message-type`` is missing or
            unknown): no frame AWS sends, so not one to read as a server's error either.
    """
    kind = headers.get(":message-type")
    if kind not in _MESSAGE_TYPES:
        raise FrameError(f"corrupt event-stream frame: :message-type {str(kind)[:40]!r} is not one of "
                         f"{', '.join(_MESSAGE_TYPES)}")
    text = payload.decode("utf-8", "replace")
    if kind == "event":
        return SSEEvent(data=text, event=str(headers.get(":event-type") or ""))
    name = headers.get(":exception-type") or headers.get(":error-code") or "InternalServerException"
    if kind == "error" and not text:
        text = json.dumps({"message": str(headers.get(":error-message") or name)})
    return SSEEvent(data=text, event="exception", id=_exception_name(str(name)))


def _exception_name(name: str) -> str:
    # Stream frames name exceptions in camel case (throttlingException); HTTP headers in Pascal case.
    return name[:1].upper() + name[1:]


class _ConverseStream(StreamDecoder):
    """ConverseStream events -> Chunk, assembling the final message (the same shape as a Converse answer)."""

    def __init__(self, adapter: BedrockAdapter, req: CompleteRequest) -> None:
        self.adapter = adapter
        self.req = req
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial: dict[int, list[str]] = {}
        self.tool_index: dict[int, int] = {}
        self.text: list[str] = []
        self.stop: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        self.role = "assistant"
        self.done = False

    def _bad(self, event: SSEEvent, why: str) -> ProviderError:
        return self.adapter.malformed(HTTPResponse(200, {}, event.data.encode()), self.req.model, why)

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if event.event == "exception":
            raise self.adapter.stream_error(event.id or "InternalServerException", event.data.encode(),
                                            self.req.model)
        try:
            data = json.loads(event.data)
        except ValueError:
            raise self._bad(event, "stream event is not JSON") from None
        if not isinstance(data, dict):
            raise self._bad(event, "stream event is not a JSON object")
        kind = event.event
        if kind == "messageStart":
            self.role = str(data.get("role") or "assistant")
            return []
        if kind == "contentBlockStart":
            return self._start(data)
        if kind == "contentBlockDelta":
            return self._delta(event, data)
        if kind == "contentBlockStop":
            self._stop(data)
            return []
        if kind == "messageStop":
            self.stop = data
            reason = _finish(data.get("stopReason"))
            return [Chunk(finish_reason=reason, raw=data)] if reason else []
        if kind == "metadata":
            self.metadata = data
            self.done = True
            usage = data.get("usage")
            return [Chunk(usage=self.adapter.usage(usage), raw=data)] if isinstance(usage, dict) else []
        return []  # new event types are ignored

    def _start(self, data: dict[str, Any]) -> list[Chunk]:
        idx = data.get("contentBlockIndex", len(self.blocks))
        start = data.get("start") or {}
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return []
        self.blocks[idx] = {"toolUse": {"toolUseId": use.get("toolUseId"), "name": use.get("name")}}
        n = self.tool_index[idx] = len(self.tool_index)
        self.partial[idx] = []
        return [Chunk(tool_calls=[{"index": n, "id": use.get("toolUseId"), "name": use.get("name"),
                                   "arguments": None}], raw=data)]

    def _delta(self, event: SSEEvent, data: dict[str, Any]) -> list[Chunk]:
        idx = data.get("contentBlockIndex", 0)
        delta = data.get("delta")
        if not isinstance(delta, dict):
            raise self._bad(event, "contentBlockDelta without a delta")
        chunk = Chunk(raw=data)
        if isinstance(delta.get("text"), str):
            piece = delta["text"]
            block = self.blocks.setdefault(idx, {"text": ""})
            block["text"] = (block.get("text") or "") + piece
            self.text.append(piece)
            chunk.text = piece
        elif isinstance(delta.get("toolUse"), dict):
            piece = str(delta["toolUse"].get("input") or "")
            self.partial.setdefault(idx, []).append(piece)
            n = self.tool_index.setdefault(idx, len(self.tool_index))
            if piece:
                chunk.tool_calls.append({"index": n, "id": None, "name": None, "arguments": piece})
        elif isinstance(delta.get("reasoningContent"), dict):
            reasoning = delta["reasoningContent"]
            block = self.blocks.setdefault(idx, {"reasoningContent": {"reasoningText": {"text": ""}}})
            content = block.setdefault("reasoningContent", {})
            if isinstance(reasoning.get("text"), str):
                rt = content.setdefault("reasoningText", {"text": ""})
                rt["text"] = (rt.get("text") or "") + reasoning["text"]
            if isinstance(reasoning.get("signature"), str):
                content.setdefault("reasoningText", {"text": ""})["signature"] = reasoning["signature"]
            if isinstance(reasoning.get("redactedContent"), str):
                content["redactedContent"] = (content.get("redactedContent") or "") + reasoning["redactedContent"]
        return [chunk]

    def _stop(self, data: dict[str, Any]) -> None:
        idx = data.get("contentBlockIndex", 0)
        block = self.blocks.get(idx)
        if block is not None and "toolUse" in block:
            text = "".join(self.partial.get(idx, []))
            try:
                block["toolUse"]["input"] = json.loads(text) if text.strip() else {}
            except ValueError:
                block["toolUse"]["input"] = text  # kept as the model wrote it; ToolCall.arguments has the same text

    def _calls(self) -> list[ToolCall]:
        out = []
        for idx in sorted(self.tool_index, key=lambda i: self.tool_index[i]):
            use = self.blocks.get(idx, {}).get("toolUse") or {}
            args = "".join(self.partial.get(idx, [])) or "{}"
            out.append(ToolCall(id=str(use.get("toolUseId") or ""), name=str(use.get("name") or ""), arguments=args))
        return out

    def result(self) -> Completion:
        text = "".join(self.text)
        calls = self._calls()
        usage = self.metadata.get("usage")
        raw = {
            "output": {"message": {"role": self.role, "content": [self.blocks[i] for i in sorted(self.blocks)]}},
            "stopReason": self.stop.get("stopReason"),
            **{k: v for k, v in self.stop.items() if k != "stopReason"},
            **self.metadata,
        }
        result = Completion(
            provider=self.adapter.provider,
            model=self.req.model,
            text=text,
            message=Message(role="assistant", content=text, tool_calls=calls or None),
            tool_calls=calls,
            finish_reason=_finish(self.stop.get("stopReason")),
            service_tier=_service_tier(self.metadata),
            usage=self.adapter.usage(usage if isinstance(usage, dict) else None),
            raw=raw,
        )
        result._usage_reported = isinstance(usage, dict)
        return forced_tool_answer(result) if self.req.output is not None else result

