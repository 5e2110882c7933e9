"""Mistral: chat completions (tools, JSON mode, streaming with usage), embeddings, reasoning (Magistral).

Mistral's API (``https://api.mistral.ai/v1``) is a close relative of OpenAI's wire format, so this adapter reuses
:class:`~computekit.adapters.openai.OpenAIWire` and overrides only what differs:

- ``seed`` is sent as ``random_seed``; ``user`` and ``service_tier`` are not Mistral parameters (asking for them
  raises :class:`~computekit.InvalidRequestError` before any HTTP); ``dimensions`` of ``embed()`` is sent as
  ``output_dimension``;
- streams are sent without ``stream_options``: Mistral reports the usage in the final chunk on its own;
- usage: ``prompt_tokens`` / ``completion_tokens``, and ``prompt_tokens_details.cached_tokens`` when prompt
  caching hit (priced at the cache-read rate). Reasoning (Magistral) tokens are billed as output and already
  counted in ``completion_tokens``; ``completion_tokens_details.reasoning_tokens`` is read when present;
- reasoning models answer with ``content`` as a list of chunks: ``{"type": "thinking", "thinking": [...]}`` and
  ``{"type": "text", "text": ...}``. ``text`` is the answer only; the thinking stays in ``raw`` (the response as
  sent, and ``raw["thinking"]`` for a stream);
- ``finish_reason: model_length`` (the model's context was full) is normalised to ``length``;
- errors: ``{"object": "error", "message": ..., "type": ..., "code": ...}`` (``message`` is an object for 422
  validation errors), or the gateway's ``{"message": "Unauthorized", "request_id": ...}``.

Fine-tuning: ``/v1/files`` (multipart, ``purpose=fine-tune``) then ``/v1/fine_tuning/jobs`` with
``auto_start: true``. Before launch, the same body is posted with ``?dry_run=true``: Mistral answers with its own
estimate (``cost``, ``train_tokens``), which becomes the job's estimate. The finished job reports its price in
``metadata.cost`` (with ``cost_currency``): that is the actual cost. Events and checkpoints come with the job
(``GET /v1/fine_tuning/jobs/{id}``). Mistral's tokenizer is not tiktoken: the local count is an estimate by length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .._exceptions import APIStatusError, ContextWindowExceededError, InvalidRequestError, ProviderError
from .._types import Chunk, Completion, FineTuneCheckpoint, FineTuneEvent, FineTuneJob, FineTuneStatus, Usage
from ._base import (
    BatchSpec,
    BatchState,
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    FineTuneBilling,
    FineTuneRequest,
    FineTuneSpec,
    HTTPRequest,
    HTTPResponse,
    SSEEvent,
    StreamDecoder,
    count,
    obj,
    unix_time,
)
from .openai import OpenAIWire, _ChatStream

__all__ = ["MistralAdapter"]

_UNSUPPORTED_FIELDS = ("user", "service_tier")
_FINISH = {"model_length": "length"}
_REQUEST_ID_HEADERS = ("x-kong-request-id", "mistral-correlation-id")
# A content list (reasoning chunks) in a response body: only then is the body rewritten before parsing.
_CONTENT_LIST = re.compile(rb'"content"\s*:\s*\[')
# Mistral's job statuses (API reference, JobOut.status) -> computekit's. VALIDATED waits for a start (auto_start
# false): queued.
_FT_STATUS: dict[str, FineTuneStatus] = {
    "QUEUED": "queued", "VALIDATING": "validating", "VALIDATED": "queued", "STARTED": "running",
    "RUNNING": "running", "CANCELLATION_REQUESTED": "running", "SUCCESS": "succeeded", "FAILED": "failed",
    "FAILED_VALIDATION": "failed", "CANCELLED": "canceled",
}
# Mistral's batch job statuses (API reference, BatchJobOut.status) -> computekit's batch statuses.
_BATCH_STATUS: dict[str, str] = {
    "QUEUED": "validating", "RUNNING": "in_progress", "SUCCESS": "completed", "FAILED": "failed",
    "TIMEOUT_EXCEEDED": "expired", "CANCELLATION_REQUESTED": "canceling", "CANCELLED": "canceled",
}
MISTRAL_BATCH_MAX_REQUESTS = 1_000_000
"""Ongoing batch requests a workspace may have (https://docs.mistral.ai/capabilities/batch/)."""
MISTRAL_BATCH_MAX_BYTES = 512 * 1024 * 1024
"""The largest file the Files API takes (https://docs.mistral.ai/api/#tag/files)."""
_CONTEXT_WORDS = ("too large for model", "maximum context length", "context length")


def split_content(content: Any) -> tuple[str, str]:
    """(answer text, thinking text) of a Mistral message ``content``: a string, or a list of chunks."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    text: list[str] = []
    thinking: list[str] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            text.append(str(part.get("text") or ""))
        elif kind == "thinking":
            for inner in part.get("thinking") or []:
                if isinstance(inner, dict) and inner.get("type") == "text":
                    thinking.append(str(inner.get("text") or ""))
    return "".join(text), "".join(thinking)


class MistralAdapter(OpenAIWire):
    """Mistral La Plateforme (``mistral:`` models). Keys: ``MISTRAL_API_KEY``."""

    name = "mistral"
    capabilities = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True, finetune=True,
                                batch=True)
    key_env_vars = ("MISTRAL_API_KEY",)
    default_base_url = "https://api.mistral.ai/v1"
    table_provider = "mistral"
    include_stream_usage = False  # the final chunk carries usage without stream_options
    # ``prefix`` on an answer is always false; sent back true it would mean "continue this message".
    response_only_fields = OpenAIWire.response_only_fields | {"prefix"}
    docs_url = "https://docs.mistral.ai/api/"

    # ----------------------------------------------------------------------------------------- batches
    # Files (purpose=batch) + /batch/jobs; result lines have OpenAI's shape.

    def batch_spec(self, model: str) -> BatchSpec:
        return BatchSpec(max_requests=MISTRAL_BATCH_MAX_REQUESTS, max_bytes=MISTRAL_BATCH_MAX_BYTES)

    def batch_line(self, custom_id: str, req: CompleteRequest | EmbedRequest) -> dict[str, Any]:
        _, body = self.batch_body(req)
        body.pop("model", None)  # the job names the model
        return {"custom_id": custom_id, "body": body}

    def build_batch_create(self, model: str, kind: str, file_ref: str | None, lines: Any,
                           metadata: Mapping[str, str]) -> HTTPRequest:
        body: dict[str, Any] = {"input_files": [file_ref], "model": model,
                                "endpoint": "/v1/embeddings" if kind == "embed" else "/v1/chat/completions"}
        if metadata:
            body["metadata"] = dict(metadata)
        return HTTPRequest("POST", self.url("batch/jobs"), self.headers(), json=body)

    def parse_batch(self, model: str, resp: HTTPResponse) -> BatchState:
        data = self.json_object(resp, model)
        status = data.get("status")
        if not isinstance(data.get("id"), str) or status not in _BATCH_STATUS:
            raise self.malformed(resp, model, "not a batch job")
        self.check_batch_ids(resp, model, {k: data.get(k) for k in ("id", "output_file", "error_file")})
        return BatchState(
            id=data["id"], model=model or str(data.get("model") or ""), status=_BATCH_STATUS[status],
            provider_status=str(status),
            total=count(data.get("total_requests")), completed=count(data.get("succeeded_requests")) or 0,
            failed=count(data.get("failed_requests")) or 0, output_ref=data.get("output_file"),
            error_ref=data.get("error_file"),
            kind="embed" if str(data.get("endpoint") or "").endswith("embeddings") else "complete",
            created_at=unix_time(data.get("created_at")), ended_at=unix_time(data.get("completed_at")), raw=data,
        )

    def build_batch_get(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("GET", self.url(f"batch/jobs/{state.id}"), self.headers())

    def build_batch_cancel(self, state: BatchState) -> HTTPRequest:
        return HTTPRequest("POST", self.url(f"batch/jobs/{state.id}/cancel"), self.headers())

    # ----------------------------------------------------------------------------------------- complete

    def _common_body(self, req: CompleteRequest) -> dict[str, Any]:
        for name in _UNSUPPORTED_FIELDS:
            if getattr(req, name) is not None:
                raise InvalidRequestError(f"mistral: the chat API has no {name!r} parameter")
        body = super()._common_body(req)
        if "seed" in body:
            body["random_seed"] = body.pop("seed")
        return body

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        if not _CONTENT_LIST.search(resp.content):
            return self._finish(super().parse_complete(req, resp))
        # A reasoning answer: content is a list of chunks. Parse it as text-only, keep the original as raw.
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, req.model, "body is not JSON") from None
        flat = json.loads(json.dumps(data))  # a copy to rewrite
        for choice in flat.get("choices") or [] if isinstance(flat, dict) else []:
            msg = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(msg, dict) and isinstance(msg.get("content"), list):
                msg["content"], _ = split_content(msg["content"])
        rewritten = HTTPResponse(resp.status, resp.headers, json.dumps(flat).encode(), resp.url)
        result = self._finish(super().parse_complete(req, rewritten))
        result.raw = data
        return result

    def stream_decoder(self, req: CompleteRequest) -> StreamDecoder:
        return _MistralStream(self, req)

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        usage = super().usage(raw)
        if raw and not usage.cached_input_tokens and isinstance(raw.get("num_cached_tokens"), int):
            # Mistral reports prompt-cache hits at the top of ``usage`` (the OpenAI-style
            # ``prompt_tokens_details.cached_tokens`` is read first when both are there).
            usage.cached_input_tokens = raw["num_cached_tokens"]
        return usage

    @staticmethod
    def _finish(result: Completion) -> Completion:
        if result.finish_reason in _FINISH:
            result.finish_reason = _FINISH[result.finish_reason]
        return result

    # ----------------------------------------------------------------------------------------- embed

    def embed_body(self, req: EmbedRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": req.model, "input": req.inputs, "encoding_format": "float"}
        if req.dimensions is not None:
            body["output_dimension"] = req.dimensions
        body.update(req.extra)
        return body

    # ----------------------------------------------------------------------------------------- errors

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        for h in _REQUEST_ID_HEADERS:
            v = headers.get(h)
            if v:
                return v
        return super().request_id(headers)

    def error_message(self, body: Any) -> str:
        if isinstance(body, dict) and "error" not in body:
            msg = body.get("message")
            if isinstance(msg, str) and msg:
                return msg
            if isinstance(msg, dict):  # 422: {"detail": [{"loc", "msg", "type"}]}
                detail = msg.get("detail")
                if isinstance(detail, list):
                    return "; ".join(
                        f"{'.'.join(str(p) for p in d.get('loc') or [])}: {d.get('msg', '')}"
                        if isinstance(d, dict)
                        else str(d)
                        for d in detail
                    )
                return json.dumps(msg)[:500]
        return super().error_message(body)

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        if status in (400, 422):
            text = self.error_message(body).lower()
            if any(w in text for w in _CONTEXT_WORDS):
                return ContextWindowExceededError
        return super().classify_error(status, body)

    def map_error(self, resp: HTTPResponse, model: str | None) -> ProviderError:
        error = super().map_error(resp, model)
        if error.request_id is None and isinstance(error.body, dict) and isinstance(error.body.get("request_id"), str):
            error.request_id = error.body["request_id"]  # the gateway's 401/429 bodies carry it
        return error

    # ----------------------------------------------------------------------------------------- fine-tuning

    def finetune_spec(self, model: str) -> FineTuneSpec:
        return FineTuneSpec(data="chat", methods=("supervised",), encoding=None, provider_estimate=True)

    def default_epochs(self, model: str, examples: int) -> int | None:
        return None  # not OpenAI's auto rule (inherited from OpenAIWire): Mistral documents no default to estimate with

    # The file upload (multipart to /v1/files) is OpenAIWire's: the same request and answer.

    def _job_body(self, req: FineTuneRequest) -> dict[str, Any]:
        hyper = dict(req.hyperparameters)
        if req.epochs is not None:
            hyper["epochs"] = req.epochs
        body: dict[str, Any] = {
            "model": req.model,
            "training_files": [{"file_id": req.training.ref, "weight": 1}],
            "hyperparameters": hyper,
            "auto_start": True,
        }
        if req.validation is not None:
            body["validation_files"] = [req.validation.ref]
        if req.suffix:
            body["suffix"] = req.suffix
        body.update(req.extra)
        return body

    def build_finetune_estimate(self, req: FineTuneRequest) -> HTTPRequest | None:
        return HTTPRequest("POST", self.url("fine_tuning/jobs") + "?dry_run=true", self.headers(),
                           json=self._job_body(req))

    def parse_finetune_estimate(self, req: FineTuneRequest, resp: HTTPResponse) -> FineTuneBilling:
        data = self.json_object(resp, req.model)
        return FineTuneBilling(trained_tokens=data.get("train_tokens"),
                               reported_total=_usd(data.get("cost"), data.get("cost_currency")),
                               reported_as="dry run cost")

    def build_finetune(self, req: FineTuneRequest) -> HTTPRequest:
        return HTTPRequest("POST", self.url("fine_tuning/jobs"), self.headers(), json=self._job_body(req))

    def parse_finetune(self, model: str, resp: HTTPResponse) -> FineTuneJob:
        data = self.json_object(resp, model)
        status = _FT_STATUS.get(str(data.get("status")))
        if not isinstance(data.get("id"), str) or status is None:
            raise self.malformed(resp, model, f"not a fine-tuning job (status {data.get('status')!r})")
        hyper = obj(data.get("hyperparameters"))
        files = data.get("training_files") or []
        error = None
        if status == "failed":  # the reason is in the last error event, when there is one
            errs = [e for e in data.get("events") or [] if isinstance(e, dict) and e.get("data", {}).get("error")]
            error = errs[-1]["data"] if errs else {"message": f"job ended {data.get('status')}"}
        ckpts = [c for c in data.get("checkpoints") or [] if isinstance(c, dict)]
        metrics = dict(ckpts[-1].get("metrics") or {}, step=ckpts[-1].get("step_number")) if ckpts else {}
        return FineTuneJob(
            id=data["id"], provider=self.provider, base_model=str(data.get("model") or model), status=status,
            fine_tuned_model=f"{self.provider}:{data['fine_tuned_model']}" if data.get("fine_tuned_model") else None,
            trained_tokens=data.get("trained_tokens") if isinstance(data.get("trained_tokens"), int) else None,
            epochs=hyper.get("epochs"), hyperparameters=dict(hyper),
            training_file=(files[0] if isinstance(files[0], str) else files[0].get("file_id")) if files else None,
            validation_file=(data.get("validation_files") or [None])[0], error=error, metrics=metrics,
            created_at=unix_time(data.get("created_at")),
            finished_at=unix_time(data.get("modified_at")) if status in ("succeeded", "failed", "canceled") else None,
            request_id=self.request_id(resp.headers), raw=data,
        )

    def build_finetune_get(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("GET", self.url(f"fine_tuning/jobs/{job.id}"), self.headers())

    def build_finetune_cancel(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("POST", self.url(f"fine_tuning/jobs/{job.id}/cancel"), self.headers())

    def build_finetune_events(self, job: FineTuneJob, limit: int) -> HTTPRequest | None:
        return None  # events come with the job itself

    def build_finetune_checkpoints(self, job: FineTuneJob) -> HTTPRequest | None:
        return None  # so do checkpoints

    def parse_finetune_events(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneEvent]:
        raw = job.raw if isinstance(job.raw, dict) else {}
        return [FineTuneEvent(message=str(e.get("name") or ""), created_at=unix_time(e.get("created_at")),
                              type="message", data=obj(e.get("data")))
                for e in raw.get("events") or [] if isinstance(e, dict)]

    def parse_finetune_checkpoints(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneCheckpoint]:
        raw = job.raw if isinstance(job.raw, dict) else {}
        return [FineTuneCheckpoint(id=f"{job.id}:{c.get('step_number')}", step=c.get("step_number"),
                                   metrics=c.get("metrics") or {}, created_at=unix_time(c.get("created_at")))
                for c in raw.get("checkpoints") or [] if isinstance(c, dict)]

    def finetune_billing(self, job: FineTuneJob) -> FineTuneBilling:
        meta = (job.raw or {}).get("metadata") if isinstance(job.raw, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        return FineTuneBilling(trained_tokens=job.trained_tokens,
                               reported_total=_usd(meta.get("cost"), meta.get("cost_currency")),
                               reported_as="metadata.cost")


def _usd(amount: Any, currency: Any) -> Decimal | None:
    """Mistral's reported cost, when it is in USD (another currency is not converted: no rate is known)."""
    if amount is None or isinstance(amount, bool) or (currency and str(currency).upper() != "USD"):
        return None
    try:
        return Decimal(str(amount))
    except InvalidOperation:
        return None


class _MistralStream(_ChatStream):
    """OpenAI-style chunks, where ``delta.content`` may be a list of thinking/text chunks (reasoning models)."""

    def __init__(self, adapter: MistralAdapter, req: CompleteRequest) -> None:
        super().__init__(adapter, req)
        self.thinking: list[str] = []

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if '"thinking"' not in event.data and not _CONTENT_LIST.search(event.data.encode()):
            return self._finish(super().feed(event))
        try:
            data = json.loads(event.data)
        except ValueError:
            return super().feed(event)  # raises the malformed-event error
        original = json.loads(event.data)
        for choice in data.get("choices") or [] if isinstance(data, dict) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), list):
                delta["content"], thought = split_content(delta["content"])
                if thought:
                    self.thinking.append(thought)
        chunks = self._finish(super().feed(SSEEvent(data=json.dumps(data), event=event.event, id=event.id)))
        for c in chunks:
            c.raw = original
        return chunks

    def _finish(self, chunks: list[Chunk]) -> list[Chunk]:
        for c in chunks:
            if c.finish_reason in _FINISH:
                c.finish_reason = _FINISH[c.finish_reason]
        if self.finish in _FINISH:
            self.finish = _FINISH[self.finish]
        return chunks

    def result(self) -> Completion:
        result = super().result()
        if self.thinking:
            result.raw = {**result.raw, "thinking": "".join(self.thinking)}
        return result
