"""Any OpenAI-compatible server, with built-in profiles for hosted ones and local servers.

A profile is a base URL, the env var that holds the key, and the provider's id in the price tables. Use a
profile by name (``together:meta-llama/...``, ``groq:llama-3.1-8b-instant``, ``ollama:llama3.2``), or declare
your own in config::

    [providers.myhost]
    adapter = "openai-compatible"
    base_url = "https://llm.example.com/v1"
    api_key_env = "MYHOST_KEY"
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from pydantic import Field

from .._exceptions import ConfigError
from .._types import Completion, FineTuneEvent, FineTuneJob, FineTuneStatus, PriceSource, Result, Usage
from ..pricing import PriceRef
from ._base import (
    AdapterSettings,
    Capabilities,
    CompleteRequest,
    FineTuneBilling,
    FineTuneRequest,
    FineTuneSpec,
    HTTPRequest,
    HTTPResponse,
    TrainingFile,
    base_url_from_env,
    multipart,
    obj,
    unix_time,
)
from .openai import OpenAIWire

__all__ = ["PROFILES", "OpenAICompatibleAdapter", "OpenAICompatibleSettings", "Profile"]


_ALL = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True, text_completion=True)


@dataclass(frozen=True, slots=True)
class Profile:
    """Where a known OpenAI-compatible host lives and how it is keyed and priced."""

    base_url: str
    key_env_vars: tuple[str, ...] = ()
    table_provider: str | None = None
    requires_key: bool = True
    metered: bool = True
    """False for self-hosted servers: no per-call charge (a config price still applies)."""
    text_only_engines: bool = False
    """GooseAI: text completions at ``engines/{engine}/completions``, no chat endpoint."""
    capabilities: Capabilities = _ALL
    docs_url: str | None = None
    finetune: str | None = None
    """The host's own fine-tuning API (``"together"``, ``"fireworks"``): see the sections below."""
    billed: tuple[str, ...] = ()
    """Where in the usage object the host states what it billed for the call, in USD (OpenRouter: ``cost``)."""
    search_usage: bool = False
    """Perplexity: reasoning, citation tokens and search queries are reported beside the token counts."""
    reasoning_by_total: bool = False
    """The host may leave reasoning tokens out of ``completion_tokens`` (Gemini's OpenAI endpoint, where thoughts are
    counted apart from the answer): read from ``total_tokens`` which way it counted."""
    route_header: str | None = None
    """A router: the response header that names the provider which served the call."""
    route_tables: str | None = None
    """A router: the genai-prices provider id of a route's prices, ``{}`` standing for the route's provider."""
    base_url_env: str | None = None
    """The host's own SDK variable for its base URL, and what to add to its value (see ``Adapter.base_url_env``)."""
    base_url_env_suffix: str = ""
    responses: bool = False
    """The host also serves OpenAI's Responses API (``POST /responses``): ``api="responses"`` (or the ``api``
    setting) sends calls there."""
    structured: str = "json_schema"
    """How the host takes ``response_format=`` a type (its API reference): ``"json_schema"`` (the schema, best
    effort), ``"strict"`` (OpenAI's strict mode) or ``"json_object"`` (JSON mode only: the schema goes in a
    system message)."""


# What the hosted APIs offer on their OpenAI-compatible endpoints (each host's API reference).
_CHAT_ONLY = Capabilities(complete=True, stream=True, tools=True, json_mode=True)
_CHAT_AND_EMBED = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True)
_CHAT_EMBED_FINETUNE = Capabilities(complete=True, stream=True, tools=True, json_mode=True, embed=True,
                                    finetune=True)
_TEXT_ONLY = Capabilities(complete=True, stream=True, text_completion=True)
_CHAT_NO_TOOLS = Capabilities(complete=True, stream=True, json_mode=True)


PROFILES: Final[dict[str, Profile]] = {
    "together": Profile("https://api.together.xyz/v1", ("TOGETHER_API_KEY",), "together",
                        capabilities=_CHAT_EMBED_FINETUNE,
                        docs_url="https://docs.together.ai/reference", finetune="together",
                        base_url_env="TOGETHER_BASE_URL", base_url_env_suffix="/v1"),
    "groq": Profile("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), "groq", capabilities=_CHAT_ONLY,
                    docs_url="https://console.groq.com/docs/api-reference",
                    base_url_env="GROQ_BASE_URL", base_url_env_suffix="/openai/v1"),
    "fireworks": Profile("https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",), "fireworks",
                         capabilities=_CHAT_EMBED_FINETUNE,
                         docs_url="https://docs.fireworks.ai/api-reference", finetune="fireworks"),
    # DeepSeek and Moonshot document JSON mode (json_object) only.
    "deepseek": Profile("https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), "deepseek", capabilities=_CHAT_ONLY,
                        structured="json_object", responses=True,
                        docs_url="https://api-docs.deepseek.com"),
    "huggingface": Profile("https://router.huggingface.co/v1", ("HF_TOKEN", "HUGGINGFACE_API_KEY"), None,
                           capabilities=_CHAT_ONLY,
                           docs_url="https://huggingface.co/docs/inference-providers",
                           route_header="x-inference-provider", route_tables="huggingface_{}"),
    "baseten": Profile("https://inference.baseten.co/v1", ("BASETEN_API_KEY",), "baseten", capabilities=_CHAT_ONLY,
                       docs_url="https://docs.baseten.co/development/model-apis/overview"),
    "gooseai": Profile("https://api.goose.ai/v1", ("GOOSEAI_API_KEY",), None, text_only_engines=True,
                       capabilities=_TEXT_ONLY,
                       docs_url="https://goose.ai/docs/api"),
    # OpenRouter's usage.cost is what it charged (tool and search fees included): the call's cost when present.
    "openrouter": Profile("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), "openrouter",
                          capabilities=_CHAT_ONLY, responses=True,
                          docs_url="https://openrouter.ai/docs/api-reference/overview",
                          billed=("cost",)),
    "cerebras": Profile("https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), "cerebras", capabilities=_CHAT_ONLY,
                        docs_url="https://inference-docs.cerebras.ai/api-reference/chat-completions"),
    "xai": Profile("https://api.x.ai/v1", ("XAI_API_KEY",), "x-ai", capabilities=_CHAT_ONLY,
                   docs_url="https://docs.x.ai/docs/api-reference"),
    # Perplexity's Sonar models: a per-request search fee (genai-prices' requests_kcount) on top of the tokens;
    # usage.cost.total_cost, when sent, is what it charged.
    "perplexity": Profile("https://api.perplexity.ai", ("PERPLEXITY_API_KEY", "PPLX_API_KEY"), "perplexity",
                          capabilities=_CHAT_NO_TOOLS, docs_url="https://docs.perplexity.ai/api-reference",
                          billed=("cost", "total_cost"), search_usage=True),
    "moonshot": Profile("https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY",), "moonshotai", capabilities=_CHAT_ONLY,
                        structured="json_object",
                        docs_url="https://platform.moonshot.ai/docs/api/chat"),
    "novita": Profile("https://api.novita.ai/openai", ("NOVITA_API_KEY",), "novita", capabilities=_CHAT_AND_EMBED,
                      docs_url="https://novita.ai/docs/guides/llm-api"),
    # Gemini's OpenAI-compatible endpoint (the native Gemini API is the ``gemini`` adapter).
    "gemini-openai": Profile("https://generativelanguage.googleapis.com/v1beta/openai",
                             ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "google", capabilities=_CHAT_AND_EMBED,
                             docs_url="https://ai.google.dev/gemini-api/docs/openai", reasoning_by_total=True),
    "vllm": Profile("http://localhost:8000/v1", requires_key=False, metered=False, responses=True),
    "ollama": Profile("http://localhost:11434/v1", requires_key=False, metered=False),
    "llamacpp": Profile("http://localhost:8080/v1", requires_key=False, metered=False),
}

_GENERIC = Profile(base_url="", requires_key=False)

# Model suffixes of Hugging Face's router that pick a provider by policy, not by name: the route is then known only
# from the provider the router reports.
_ROUTE_POLICIES: Final = frozenset({"fastest", "cheapest", "preferred", "auto"})


def split_route(model: str) -> tuple[str, str | None]:
    """``org/model:provider`` -> (``org/model``, ``provider``); a policy suffix (``:fastest``) names no provider."""
    name, sep, route = model.rpartition(":")
    if not sep or "/" in route or not name:
        return model, None
    return name, (None if route in _ROUTE_POLICIES else route)


class OpenAICompatibleSettings(AdapterSettings):
    """``[providers.NAME]`` of an OpenAI-compatible host: the account its fine-tuning runs under."""

    organization: str | None = Field(
        None, description="The account fine-tuning runs under (Fireworks: the account id, else $FIREWORKS_ACCOUNT_ID)."
    )
    api: Literal["chat", "responses"] = Field(
        "chat", description="The wire format of complete() and stream() on a host that serves both (openrouter, "
        "deepseek, vllm, or a declared host): 'chat' or 'responses'. A call's api= wins.",
    )


class OpenAICompatibleAdapter(OpenAIWire):
    """Any server that speaks OpenAI's chat-completions wire format."""

    name = "openai-compatible"
    capabilities = _ALL
    requires_key = False
    settings_model = OpenAICompatibleSettings
    options: OpenAICompatibleSettings

    @property
    def profile(self) -> Profile:
        """This provider's profile (a generic one for a configured host)."""
        return PROFILES.get(self.provider, _GENERIC)

    @classmethod
    def capabilities_for(cls, provider: str) -> Capabilities:
        return PROFILES.get(provider, _GENERIC).capabilities

    @classmethod
    def defaults_for(cls, provider: str) -> tuple[str | None, tuple[str, ...], bool]:
        p = PROFILES.get(provider, _GENERIC)
        return p.base_url or None, p.key_env_vars, p.requires_key

    @classmethod
    def table_for(cls, provider: str) -> str | None:
        return PROFILES.get(provider, _GENERIC).table_provider

    @classmethod
    def listed(cls, provider: str) -> bool:
        return provider in PROFILES  # "openai-compatible" itself is the adapter for hosts of your own

    @classmethod
    def env_base_url(cls, provider: str) -> str | None:
        p = PROFILES.get(provider, _GENERIC)  # a host's own variable, never OPENAI_BASE_URL
        return base_url_from_env(p.base_url_env, p.base_url_env_suffix)

    def uses_text_endpoint(self, model: str) -> bool:
        return self.profile.text_only_engines or super().uses_text_endpoint(model)

    def text_path(self, model: str) -> str:
        return f"engines/{model}/completions" if self.profile.text_only_engines else "completions"

    def structured_mode(self, model: str) -> str:
        return self.profile.structured

    def serves_responses(self) -> bool:
        # A declared host (no profile) may serve it: the call's api= (or the setting) is the user's word for it.
        return self.profile.responses or self.provider not in PROFILES

    def default_api(self, model: str) -> str:
        return self.options.api

    def serves_background(self) -> bool:
        # No profile's host documents background responses (polling, cancel): refused before any request.
        return False

    def build_complete(self, req: CompleteRequest) -> HTTPRequest:
        http = super().build_complete(req)
        if self.profile.text_only_engines and isinstance(http.json, dict):
            http.json.pop("model", None)  # the engine is in the URL
        return http

    def usage(self, raw: Mapping[str, Any] | None) -> Usage:
        usage = super().usage(raw)
        if raw and self.profile.reasoning_by_total and usage.reasoning_tokens:
            # Thoughts billed as output but left out of completion_tokens: the total says so (prompt + completion
            # + reasoning), and then they are added to the output, where computekit counts them.
            total = raw.get("total_tokens")
            if total == usage.input_tokens + usage.output_tokens + usage.reasoning_tokens:
                usage.output_tokens += usage.reasoning_tokens
        if not raw or not self.profile.search_usage:
            return usage
        # Perplexity counts reasoning and citation tokens apart from completion_tokens, each at its own rate
        # (genai-prices: output_reasoning_mtok, output_citation_mtok), and reports num_search_queries where they
        # are billed apart from the request fee (Sonar Deep Research: docs.perplexity.ai/getting-started/pricing).
        reasoning = _count(raw.get("reasoning_tokens"))
        citations = _count(raw.get("citation_tokens"))
        searches = _count(raw.get("num_search_queries"))
        usage.output_tokens += reasoning
        usage.reasoning_tokens += reasoning
        if citations:
            usage.units["output_citation_tokens"] = Decimal(citations)
        if searches:
            usage.units["web_searches"] = Decimal(searches)
        return usage

    def billed_total(self, result: Result) -> tuple[Decimal, PriceSource] | None:
        path = self.profile.billed
        raw = result.raw.get("usage") if path and isinstance(result.raw, dict) else None
        if not isinstance(raw, dict):
            return None
        value: Any = raw
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            return None
        total = Decimal(str(value))
        details = obj(raw.get("cost_details"))
        upstream = details.get("upstream_inference_cost")
        if raw.get("is_byok") is True and isinstance(upstream, int | float) and upstream > 0:
            # Bring-your-own-key: cost is the router's fee; the upstream provider bills the inference to the key.
            total += Decimal(str(upstream))
        return total, PriceSource(table=f"{self.provider}: usage.{'.'.join(path)}", url=self.profile.docs_url)

    def parse_complete(self, req: CompleteRequest, resp: HTTPResponse) -> Completion:
        result = super().parse_complete(req, resp)
        self.note_head(result, resp.headers)
        return result

    def note_head(self, result: Result, headers: Mapping[str, str]) -> None:
        super().note_head(result, headers)
        if self.profile.route_header and headers.get(self.profile.route_header):
            result._served_by = str(headers[self.profile.route_header]).strip().lower()

    def price_ref(self, model: str, result: Result | None = None) -> PriceRef:
        p = self.profile
        if p.route_tables:
            # A router's bill is the route's: priced from the route provider's table, under the model id the
            # router takes (the response's own id may be the upstream provider's name for it).
            name, route = split_route(model)
            route = route or (result._served_by if result is not None else None)
            return PriceRef(provider=self.provider, model=name if route else model,
                            table_provider=p.route_tables.format(route) if route else None, metered=p.metered)
        ref = super().price_ref(model, result)
        return PriceRef(
            provider=ref.provider,
            model=ref.model,
            table_provider=p.table_provider,
            context=ref.context,
            metered=p.metered,
        )

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        p = PROFILES.get(provider, _GENERIC)
        if p.route_tables:
            return f"genai-prices (`{p.route_tables.format('<route>')}`, the route's provider)"
        if not p.metered:
            return "self-hosted: $0 (config `[prices]` to charge)"
        source = f"genai-prices (`{p.table_provider}`)" if p.table_provider else "config `[prices]` only"
        return source + (f"; what it billed (`usage.{'.'.join(p.billed)}`) when sent" if p.billed else "")

    # ----------------------------------------------------------------------------------------- fine-tuning
    # A hosted profile with its own fine-tuning API translates through its dialect below; the others have none
    # (their capabilities say so, and finetune() refuses them before any HTTP).

    def _ft(self) -> _TogetherFineTune | _FireworksFineTune:
        kind = self.profile.finetune
        if kind == "together":
            return _TogetherFineTune(self)
        if kind == "fireworks":
            return _FireworksFineTune(self)
        raise self.unsupported("finetune")

    def finetune_spec(self, model: str) -> FineTuneSpec:
        return self._ft().spec(model)

    def default_epochs(self, model: str, examples: int) -> int | None:
        return self._ft().default_epochs

    def training_price_model(self, req: FineTuneRequest) -> str | None:
        return self._ft().price_model(req)

    def build_uploads(self, req: FineTuneRequest, file: TrainingFile, purpose: str) -> list[HTTPRequest]:
        return self._ft().build_uploads(req, file, purpose)

    def parse_upload(self, req: FineTuneRequest, file: TrainingFile, resp: HTTPResponse) -> str:
        return self._ft().parse_upload(req, file, resp)

    def build_finetune_estimate(self, req: FineTuneRequest) -> HTTPRequest | None:
        return self._ft().build_estimate(req)

    def parse_finetune_estimate(self, req: FineTuneRequest, resp: HTTPResponse) -> FineTuneBilling:
        return self._ft().parse_estimate(req, resp)

    def build_finetune(self, req: FineTuneRequest) -> HTTPRequest:
        return self._ft().build(req)

    def parse_finetune(self, model: str, resp: HTTPResponse) -> FineTuneJob:
        return self._ft().parse(model, resp)

    def build_finetune_get(self, job: FineTuneJob) -> HTTPRequest:
        return self._ft().build_get(job)

    def build_finetune_cancel(self, job: FineTuneJob) -> HTTPRequest:
        return self._ft().build_cancel(job)

    def build_finetune_events(self, job: FineTuneJob, limit: int) -> HTTPRequest | None:
        return self._ft().build_events(job, limit)

    def parse_finetune_events(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneEvent]:
        return self._ft().parse_events(job, resp)

    def build_finetune_checkpoints(self, job: FineTuneJob) -> HTTPRequest | None:
        return None  # neither host lists checkpoints apart from the job's events

    def finetune_billing(self, job: FineTuneJob) -> FineTuneBilling:
        return self._ft().billing(job)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _upload_headers(adapter: OpenAICompatibleAdapter, content_type: str) -> dict[str, str]:
    headers = {k: v for k, v in adapter.headers().items() if k != "content-type"}
    headers["content-type"] = content_type
    return headers


# ------------------------------------------------------------------------------------------------- Together
# https://docs.together.ai/reference (Fine-tuning, Files). Files: POST /files/upload (multipart); jobs: /fine-tunes;
# a pre-launch price from POST /fine-tunes/estimate-price (USD); the job's own price in ``total_price``, with
# ``token_count`` the tokens it billed (training x epochs + validation x evals: docs.together.ai fine-tuning-pricing).
# ``total_price`` is in nano-dollars: checked 2026-11-26 in togethercomputer/together-python, whose CLI prints a job's
# price as ``finetune_price_to_dollars(total_price)`` (src/together/cli/api/finetune.py, ``list``) and whose
# ``finetune_price_to_dollars`` is ``price / NANODOLLAR`` (1e9; src/together/utils/tools.py, "Convert fine-tune
# nano-dollar price to dollars"). estimate-price's ``estimated_total_price`` is read as USD, as documented.
# The local estimate (dry_run) uses the supervised-LoRA rates in training.toml, Together's default job; DPO and full
# fine-tuning are billed at other rates, so their local estimate is None until Together's own at launch.

_TOGETHER_STATUS: dict[str, FineTuneStatus] = {
    "pending": "queued", "queued": "queued", "running": "running", "compressing": "running",
    "uploading": "running", "cancel_requested": "running", "cancelled": "canceled", "error": "failed",
    "user_error": "failed", "completed": "succeeded",
}
_NANO = Decimal(1_000_000_000)
TOGETHER_DEFAULT_EPOCHS: Final = 1
"""Together runs one epoch when ``n_epochs`` is not given (its API reference)."""


class _TogetherFineTune:
    default_epochs = TOGETHER_DEFAULT_EPOCHS

    def __init__(self, adapter: OpenAICompatibleAdapter) -> None:
        self.a = adapter

    def spec(self, model: str) -> FineTuneSpec:
        return FineTuneSpec(data="chat", methods=("supervised", "dpo"), encoding=None, provider_estimate=True)

    @staticmethod
    def price_model(req: FineTuneRequest) -> str | None:
        """The tables hold Together's supervised LoRA rates: a DPO or full fine-tuning job is not priced there."""
        opts = {**req.hyperparameters, **req.extra}
        ttype = opts.get("training_type")
        full = (isinstance(ttype, dict) and str(ttype.get("type", "")).lower() == "full") or opts.get("lora") is False
        return None if req.method != "supervised" or full else req.model

    def build_uploads(self, req: FineTuneRequest, file: TrainingFile, purpose: str) -> list[HTTPRequest]:
        body, ctype = multipart({"purpose": "fine-tune", "file_name": file.filename, "file_type": "jsonl"},
                                "file", file)
        return [HTTPRequest("POST", self.a.url("files/upload"), _upload_headers(self.a, ctype), content=body)]

    def parse_upload(self, req: FineTuneRequest, file: TrainingFile, resp: HTTPResponse) -> str:
        data = self.a.json_object(resp, req.model)
        if not isinstance(data.get("id"), str):
            raise self.a.malformed(resp, req.model, "the uploaded file has no id")
        return str(data["id"])

    def _method(self, req: FineTuneRequest) -> dict[str, Any]:
        return {"method": "dpo" if req.method == "dpo" else "sft"}

    def build_estimate(self, req: FineTuneRequest) -> HTTPRequest | None:
        body: dict[str, Any] = {"training_file": req.training.ref, "model": req.model,
                                "n_epochs": req.epochs or TOGETHER_DEFAULT_EPOCHS,
                                "training_method": self._method(req)}
        if req.validation is not None:
            body["validation_file"] = req.validation.ref
        return HTTPRequest("POST", self.a.url("fine-tunes/estimate-price"), self.a.headers(), json=body)

    def parse_estimate(self, req: FineTuneRequest, resp: HTTPResponse) -> FineTuneBilling:
        data = self.a.json_object(resp, req.model)
        price = data.get("estimated_total_price")
        tokens = data.get("estimated_train_token_count")
        return FineTuneBilling(
            trained_tokens=int(tokens) if isinstance(tokens, int | float) else None,
            reported_total=Decimal(str(price)) if isinstance(price, int | float) else None,
            reported_as="estimate-price",
        )

    def build(self, req: FineTuneRequest) -> HTTPRequest:
        body: dict[str, Any] = {"training_file": req.training.ref, "model": req.model,
                                "training_method": self._method(req)}
        if req.epochs is not None:
            body["n_epochs"] = req.epochs
        if req.validation is not None:
            body["validation_file"] = req.validation.ref
        if req.suffix:
            body["suffix"] = req.suffix
        body.update(req.hyperparameters)
        body.update(req.extra)
        return HTTPRequest("POST", self.a.url("fine-tunes"), self.a.headers(), json=body)

    def parse(self, model: str, resp: HTTPResponse) -> FineTuneJob:
        data = self.a.json_object(resp, model)
        status = _TOGETHER_STATUS.get(str(data.get("status")))
        if not isinstance(data.get("id"), str) or status is None:
            raise self.a.malformed(resp, model, f"not a fine-tuning job (status {data.get('status')!r})")
        output = data.get("output_name") or data.get("model_output_name")
        tokens = data.get("token_count")
        error = None
        if status == "failed":
            errs = [e for e in data.get("events") or [] if isinstance(e, dict) and e.get("level") == "error"]
            error = {"message": errs[-1].get("message")} if errs else {"message": f"job ended {data.get('status')}"}
        return FineTuneJob(
            id=data["id"], provider=self.a.provider, base_model=str(data.get("model") or model), status=status,
            fine_tuned_model=f"{self.a.provider}:{output}" if output and status == "succeeded" else None,
            trained_tokens=int(tokens) if isinstance(tokens, int | float) else None,
            epochs=data.get("n_epochs"), training_file=data.get("training_file"),
            validation_file=data.get("validation_file") or None, error=error,
            created_at=unix_time(data.get("created_at")),
            finished_at=unix_time(data.get("updated_at")) if status in ("succeeded", "failed", "canceled") else None,
            request_id=self.a.request_id(resp.headers), raw=data,
        )

    def build_get(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("GET", self.a.url(f"fine-tunes/{job.id}"), self.a.headers())

    def build_cancel(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("POST", self.a.url(f"fine-tunes/{job.id}/cancel"), self.a.headers())

    def build_events(self, job: FineTuneJob, limit: int) -> HTTPRequest | None:
        return HTTPRequest("GET", self.a.url(f"fine-tunes/{job.id}/events"), self.a.headers())

    def parse_events(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneEvent]:
        data = self.a.json_object(resp, job.base_model) if resp is not None else (job.raw or {})
        items = data.get("data") if resp is not None else data.get("events")
        return [FineTuneEvent(message=str(e.get("message") or ""), created_at=unix_time(e.get("created_at")),
                              level=e.get("level"), type=e.get("type"),
                              data={k: e[k] for k in ("step", "checkpoint_path", "model_path") if e.get(k)})
                for e in items or [] if isinstance(e, dict)]

    def billing(self, job: FineTuneJob) -> FineTuneBilling:
        raw = job.raw if isinstance(job.raw, dict) else {}
        price = raw.get("total_price")
        total = Decimal(str(price)) / _NANO if isinstance(price, int | float) and price else None
        return FineTuneBilling(trained_tokens=job.trained_tokens, reported_total=total,
                               reported_as="total_price")


# ------------------------------------------------------------------------------------------------- Fireworks
# https://docs.fireworks.ai/api-reference (Datasets, Supervised Fine-tuning Jobs), on https://api.fireworks.ai/v1,
# under an account: [providers.fireworks] organization = "<account id>", or $FIREWORKS_ACCOUNT_ID. Data goes into a
# dataset (create the record, then upload the file into it); the job reads it by name.
# Cost: Fireworks bills supervised fine-tuning per token of the dataset x epochs (fireworks.ai/pricing), but a job
# reports no billed quantity. ``jobProgress`` (gatewayJobProgress: "Progress of a job, e.g. RLOR, EVJ, BIJ") has
# ``inputTokens`` "Total number of input tokens processed", a field shared with batch-inference and evaluation jobs
# and not documented as the trained (billed) tokens: it is kept in ``metrics``, not priced. Newer API versions add
# ``estimatedCost`` (google.type.Money: units + nanos) "The estimated cost of the job": when present it is the total,
# marked estimated. Otherwise the cost is computekit's launch count x the job's epochs x training.toml's rate, also
# marked estimated; None (never 0) when either is unknown.

_FIREWORKS_STATUS: dict[str, FineTuneStatus] = {
    "JOB_STATE_CREATING": "queued", "JOB_STATE_PENDING": "queued", "JOB_STATE_RE_QUEUEING": "queued",
    "JOB_STATE_IDLE": "queued", "JOB_STATE_VALIDATING": "validating", "JOB_STATE_CREATING_INPUT_DATASET": "validating",
    "JOB_STATE_RUNNING": "running", "JOB_STATE_WRITING_RESULTS": "running", "JOB_STATE_CANCELLING": "running",
    "JOB_STATE_COMPLETED": "succeeded", "JOB_STATE_EARLY_STOPPED": "succeeded", "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "failed", "JOB_STATE_CANCELLED": "canceled", "JOB_STATE_DELETING": "canceled",
}
FIREWORKS_DEFAULT_EPOCHS: Final = 1
FIREWORKS_ACCOUNT_ENV: Final = "FIREWORKS_ACCOUNT_ID"
_FIREWORKS_METRICS = ("percent", "epoch", "inputTokens", "outputTokens")
_FIREWORKS_NO_BILL = "fireworks reports no billed quantity on the job"


class _FireworksFineTune:
    default_epochs = FIREWORKS_DEFAULT_EPOCHS

    def __init__(self, adapter: OpenAICompatibleAdapter) -> None:
        self.a = adapter

    def spec(self, model: str) -> FineTuneSpec:
        return FineTuneSpec(data="chat", methods=("supervised",), encoding=None)

    @staticmethod
    def price_model(req: FineTuneRequest) -> str | None:
        return req.model.removeprefix("accounts/fireworks/models/")

    @property
    def account(self) -> str:
        account = self.a.options.organization or os.environ.get(FIREWORKS_ACCOUNT_ENV)
        if not account:
            raise ConfigError(
                f"fireworks fine-tuning runs under an account: set [providers.fireworks] organization = "
                f'"<account id>", or ${FIREWORKS_ACCOUNT_ENV}'
            )
        return account

    def url(self, path: str) -> str:
        base = self.a.settings.base_url.rstrip("/").removesuffix("/inference/v1").removesuffix("/v1")
        return f"{base}/v1/accounts/{self.account}/{path}"

    @staticmethod
    def dataset_id(file: TrainingFile) -> str:
        """A dataset id named after the content: uploading the same data again reuses the same name."""
        return "ck-" + hashlib.sha256(file.content).hexdigest()[:20]

    def build_uploads(self, req: FineTuneRequest, file: TrainingFile, purpose: str) -> list[HTTPRequest]:
        did = self.dataset_id(file)
        create = HTTPRequest("POST", self.url("datasets"), self.a.headers(),
                             json={"datasetId": did, "dataset": {"userUploaded": {},
                                                                 "exampleCount": str(file.examples)}})
        body, ctype = multipart({}, "file", file)
        upload = HTTPRequest("POST", self.url(f"datasets/{did}:upload"), _upload_headers(self.a, ctype),
                             content=body)
        return [create, upload]

    def parse_upload(self, req: FineTuneRequest, file: TrainingFile, resp: HTTPResponse) -> str:
        self.a.json_object(resp, req.model)
        return f"accounts/{self.account}/datasets/{self.dataset_id(file)}"

    def build_estimate(self, req: FineTuneRequest) -> HTTPRequest | None:
        return None

    def parse_estimate(self, req: FineTuneRequest, resp: HTTPResponse) -> FineTuneBilling:
        return FineTuneBilling()

    def build(self, req: FineTuneRequest) -> HTTPRequest:
        base = req.model if "/" in req.model else f"accounts/fireworks/models/{req.model}"
        body: dict[str, Any] = {"dataset": req.training.ref, "baseModel": base}
        if req.epochs is not None:
            body["epochs"] = req.epochs
        if req.validation is not None:
            body["evaluationDataset"] = req.validation.ref
        if req.suffix:
            body["displayName"] = req.suffix
        body.update(req.hyperparameters)
        body.update(req.extra)
        return HTTPRequest("POST", self.url("supervisedFineTuningJobs"), self.a.headers(), json=body)

    def parse(self, model: str, resp: HTTPResponse) -> FineTuneJob:
        data = self.a.json_object(resp, model)
        status = _FIREWORKS_STATUS.get(str(data.get("state")))
        name = data.get("name")
        if not isinstance(name, str) or status is None:
            raise self.a.malformed(resp, model, f"not a fine-tuning job (state {data.get('state')!r})")
        output = data.get("outputModel")
        progress = obj(data.get("jobProgress"))
        st = obj(data.get("status"))
        return FineTuneJob(
            id=name.rsplit("/", 1)[-1], provider=self.a.provider,
            base_model=str(data.get("baseModel") or model).removeprefix("accounts/fireworks/models/"),
            status=status,
            fine_tuned_model=f"{self.a.provider}:{output}" if output and status == "succeeded" else None,
            epochs=data.get("epochs"), training_file=data.get("dataset"),
            validation_file=data.get("evaluationDataset") or None,
            error=st if status == "failed" else None,
            metrics={k: v for k, v in progress.items() if k in _FIREWORKS_METRICS},
            created_at=unix_time(data.get("createTime")), finished_at=unix_time(data.get("completedTime")),
            request_id=self.a.request_id(resp.headers), raw=data,
        )

    def build_get(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("GET", self.url(f"supervisedFineTuningJobs/{job.id}"), self.a.headers())

    def build_cancel(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("POST", self.url(f"supervisedFineTuningJobs/{job.id}:cancel"), self.a.headers(), json={})

    def build_events(self, job: FineTuneJob, limit: int) -> HTTPRequest | None:
        return None

    def parse_events(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneEvent]:
        raw = job.raw if isinstance(job.raw, dict) else {}
        st = obj(raw.get("status"))
        if not st.get("message"):
            return []
        return [FineTuneEvent(message=str(st["message"]), level=str(st.get("code") or ""),
                              created_at=unix_time(raw.get("updateTime")), type="status")]

    def billing(self, job: FineTuneJob) -> FineTuneBilling:
        raw = job.raw if isinstance(job.raw, dict) else {}
        money = obj(raw.get("estimatedCost"))
        total = _money_usd(money)
        if total is not None:
            return FineTuneBilling(reported_total=total, reported_as="estimatedCost",
                                   estimated=f"{_FIREWORKS_NO_BILL}: its estimatedCost is an estimate")
        return FineTuneBilling(estimated=_FIREWORKS_NO_BILL)


def _money_usd(money: dict[str, Any]) -> Decimal | None:
    """A google.type.Money in USD (``units`` is an int64 string, ``nanos`` 1e-9 units); ``None`` when absent, not
    USD, or zero (an unset Money is all zeros: never read as $0)."""
    if not money or str(money.get("currencyCode") or "USD") != "USD":
        return None
    try:
        total = Decimal(str(money.get("units") or 0)) + Decimal(int(money.get("nanos") or 0)) / _NANO
    except (ArithmeticError, ValueError, TypeError):
        return None
    return total if total > 0 else None
