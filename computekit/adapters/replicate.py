"""Replicate: run a model (``replicate:owner/name``, ``replicate:owner/name:version``,
``replicate:deployments/owner/name``) and price it from the GPU-seconds Replicate reports.

The adapter speaks Replicate's HTTP API directly (no I/O here: computekit's transports and its one retry loop do
that, which also keeps vcrpy recording uniform); its shapes are checked against Replicate's OpenAPI description
and the real recordings in ``shared/conformance/replicate``. Cost = ``metrics.predict_time`` x the per-second
price of the hardware the model runs on, which Replicate does not put in the prediction: it comes from
``predict(hardware=...)``, config, or a deployment's configuration (``GET /v1/deployments/{owner}/{name}``),
never from a guess. Official models bill per token or per output instead: their ``metrics.input_token_count`` /
``output_token_count`` go to ``Usage.units`` and are priced from computekit's ``units.toml`` when it lists the model.

Before a run is created the input is checked against the version's OpenAPI ``Input`` schema (``GET`` of the
version, or of the model for its latest version, or of a deployment then its version; once per client), and
``Prediction.stream()`` reads ``urls.stream`` (server-sent ``output`` / ``logs`` / ``error`` / ``done`` events).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

from .. import _urls
from .._exceptions import InvalidRequestError, MalformedResponseError
from .._extras import require
from .._types import FineTuneEvent, FineTuneJob, Prediction, PredictionStatus, Usage
from ..pricing import PriceRef
from ._base import (
    Adapter,
    Capabilities,
    FineTuneBilling,
    FineTuneRequest,
    FineTuneSpec,
    HTTPRequest,
    HTTPResponse,
    ModelInfo,
    PredictRequest,
    SSEEvent,
    StreamUpdate,
    TrainingFile,
    obj,
    unix_time,
)

__all__ = ["ReplicateAdapter", "to_sdk"]

# Replicate's statuses -> computekit's.
_STATUS: Final[dict[str, PredictionStatus]] = {
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "aborted": "canceled",
}

TRAINING_INPUT_KEY: Final = "train_data"
"""The trainer input a training file's URL goes to unless named (Replicate's HTTP API reference example)."""

SYNC_WAIT_S: Final = 60
"""How long Replicate may hold a create request open (``Prefer: wait=N``; Replicate's maximum is 60)."""

_UNIT_METRICS: Final = ("input_token_count", "output_token_count")
"""Metrics that official models are billed on (priced per unit from ``units.toml``)."""


def _openapi_input(doc: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The ``Input`` schema of a version's OpenAPI document, and the document (its ``$ref`` root)."""
    if not isinstance(doc, dict):
        return None, None
    schemas = (doc.get("components") or {}).get("schemas") or {}
    found = schemas.get("Input") if isinstance(schemas, dict) else None
    return (found, doc) if isinstance(found, dict) else (None, None)


class ReplicateAdapter(Adapter):
    """Replicate (``replicate:`` models). Key: ``REPLICATE_API_TOKEN``."""

    name = "replicate"
    capabilities = Capabilities(predict=True, predict_stream=True, finetune=True)
    key_env_vars = ("REPLICATE_API_TOKEN",)
    unique_run_ids = True
    default_base_url = "https://api.replicate.com/v1"
    base_url_env = "REPLICATE_BASE_URL"  # replicate-python: the host, without /v1
    base_url_env_suffix = "/v1"
    docs_url = "https://replicate.com/docs/reference/http"

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return ("computekit's `gpu.toml` (Replicate's pricing page) x `metrics.predict_time`; official models per "
                "token from `units.toml`")

    def price_ref(self, model: str, result: Any = None) -> PriceRef:
        # Per-unit prices are the model's, whatever version ran: "owner/name:version" is priced as "owner/name".
        return PriceRef(provider=self.provider, model=model.split(":", 1)[0], table_provider=None)

    def build_predict(self, req: PredictRequest) -> HTTPRequest:
        body: dict[str, Any] = {"input": dict(req.input)}
        if req.webhook:
            body["webhook"] = req.webhook
        body.update(req.extra)
        model = req.model
        if model.startswith("deployments/"):
            url = self.url(f"{model}/predictions")
        elif ":" in model:  # owner/name:version -> the version endpoint
            body["version"] = model.split(":", 1)[1]
            url = self.url("predictions")
        else:
            url = self.url(f"models/{model}/predictions")
        headers = self.headers()
        if req.wait:
            hold = SYNC_WAIT_S
            if req.timeout is not None:  # never hold the create longer than the call may take
                hold = max(1, min(SYNC_WAIT_S, math.floor(req.timeout)))
            headers["prefer"] = f"wait={hold}"
        return HTTPRequest("POST", url, headers, json=body)

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        data = self.json_object(resp, model)
        if not isinstance(data.get("id"), str):
            raise self.malformed(resp, model, "not a prediction object")
        status = _STATUS.get(str(data.get("status")))
        if status is None:
            raise self.malformed(resp, model, f"unknown prediction status {data.get('status')!r}")
        raw_metrics = data.get("metrics")
        metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
        seconds = metrics.get("predict_time")
        units: dict[str, Decimal] = {}
        for key in _UNIT_METRICS:
            if isinstance(metrics.get(key), int | float) and not isinstance(metrics.get(key), bool):
                units[key] = Decimal(str(metrics[key]))
        return Prediction(
            provider=self.provider,
            model=model,
            id=data["id"],
            status=status,
            output=data.get("output"),
            logs=data.get("logs") or "",
            error=data.get("error"),
            metrics=metrics,
            urls={k: v for k, v in (data.get("urls") or {}).items() if isinstance(v, str)},
            usage=Usage(
                requests=1,
                gpu_seconds=Decimal(str(seconds)) if isinstance(seconds, int | float) else None,
                units=units,
            ),
            request_id=self.request_id(resp.headers),
            raw=data,
        )

    # ------------------------------------------------------------------------------------- model lookups

    def model_info_request(self, model: str, info: ModelInfo | None, *, schema: bool,
                           hardware: bool) -> HTTPRequest | None:
        state = info.state if info is not None else {}
        if model.startswith("deployments/"):
            # The deployment names its hardware and the version it runs (whose schema checks the input).
            if "deployment" not in state and (schema or hardware):
                return HTTPRequest("GET", self.url(model), self.headers())
            if schema and "schema" not in state and state.get("model") and state.get("version"):
                return HTTPRequest("GET", self.url(f"models/{state['model']}/versions/{state['version']}"),
                                   self.headers())
            return None
        if not schema or "schema" in state:
            return None  # Replicate reports no hardware for a model: it comes from hardware= or config
        if ":" in model:
            name, version = model.split(":", 1)
            return HTTPRequest("GET", self.url(f"models/{name}/versions/{version}"), self.headers())
        return HTTPRequest("GET", self.url(f"models/{model}"), self.headers())  # its latest_version's schema

    def parse_model_info(self, model: str, info: ModelInfo | None, resp: HTTPResponse) -> ModelInfo:
        data = self.json_object(resp, model)
        state = dict(info.state) if info is not None else {}
        found_schema, root = (info.input_schema, info.schema_root) if info is not None else (None, None)
        hw = info.hardware if info is not None else None
        path = urlsplit(resp.url).path
        if "/deployments/" in path:
            release: dict[str, Any] = data["current_release"] if isinstance(data.get("current_release"), dict) else {}
            config: dict[str, Any] = (release["configuration"] if isinstance(release.get("configuration"), dict)
                                      else {})
            state["deployment"] = True
            if isinstance(release.get("model"), str) and isinstance(release.get("version"), str):
                state["model"], state["version"] = release["model"], release["version"]
            if isinstance(config.get("hardware"), str) and config["hardware"]:
                hw = config["hardware"]
        else:
            version = data if "/versions/" in path else data.get("latest_version")
            state["schema"] = True
            found_schema, root = _openapi_input(version.get("openapi_schema") if isinstance(version, dict) else None)
            if isinstance(data.get("is_official"), bool):
                state["is_official"] = data["is_official"]
        return ModelInfo(input_schema=found_schema, schema_root=root, hardware=hw, state=state)

    # ------------------------------------------------------------------------------------- streaming

    def build_prediction_stream(self, prediction: Prediction) -> HTTPRequest:
        url = prediction.urls.get("stream")
        if not url:
            raise self.unsupported("predict_stream (this model's prediction has no urls.stream: it does not "
                                   "stream its output)")
        headers = self.headers()
        headers["accept"] = "text/event-stream"
        headers["cache-control"] = "no-store"
        headers.pop("content-type", None)
        if not self.on_origin(url):
            # Replicate streams from another host (stream.replicate.com ...): the stream URL is itself the
            # capability and is read with no credential. Over plain http or to an ambiguous URL it is refused.
            if not url.lower().startswith("https://") or not _urls.is_safe(url):
                raise MalformedResponseError(
                    f"refusing to stream from {_urls.without_query(url)}: a stream URL on another host than "
                    f"{self.settings.base_url} must be a plain https URL", provider=self.provider,
                    model=prediction.model)
            headers = self.without_key(headers)
        return HTTPRequest("GET", url, headers, stream=True)

    def parse_stream_event(self, prediction: Prediction, event: SSEEvent) -> StreamUpdate:
        # https://replicate.com/docs/topics/predictions/streaming: output, logs, error, done.
        kind = event.event or "output"
        if kind == "output":
            return StreamUpdate(output=[event.data])
        if kind == "logs":
            return StreamUpdate(logs=event.data + "\n")
        if kind == "error":
            return StreamUpdate(error=event.data or "the prediction failed", done=True)
        if kind == "done":
            return StreamUpdate(done=True)
        return StreamUpdate()  # an event kind Replicate may add later: nothing to show

    # ------------------------------------------------------------------------------------- lifecycle

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        url = self.own_url(prediction.urls.get("get"), self.url(f"predictions/{prediction.id}"))
        return HTTPRequest("GET", url, self.headers())

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        url = self.own_url(prediction.urls.get("cancel"), self.url(f"predictions/{prediction.id}/cancel"))
        return HTTPRequest("POST", url, self.headers())

    # ========================================================================================= trainings
    # Fine-tuning on Replicate is a *training*: POST /models/{owner}/{name}/versions/{version}/trainings with the
    # trainer's input and a ``destination`` model the new version is pushed to; GET /trainings/{id},
    # POST /trainings/{id}/cancel. The trainer fetches its data itself (``training_file`` is a URL, sent under
    # ``train_data`` unless named: ``{"input_images": url}``). Cost = ``metrics.predict_time`` x the per-second
    # price of the training hardware (from config ``[providers.replicate] hardware``, as for predictions).

    def finetune_spec(self, model: str) -> FineTuneSpec:
        return FineTuneSpec(data="url", methods=("supervised",))

    def check_finetune(self, req: FineTuneRequest) -> None:
        if ":" not in req.model:
            raise InvalidRequestError(
                f"replicate trainings start from a model version: write 'replicate:{req.model}:<version id>'"
            )
        if not req.destination:
            raise InvalidRequestError(
                "replicate trainings push the trained version to a model of yours: pass destination='owner/name'"
            )

    def build_uploads(self, req: FineTuneRequest, file: TrainingFile, purpose: str) -> list[HTTPRequest]:
        return []  # the trainer fetches the file from its URL

    def build_finetune(self, req: FineTuneRequest) -> HTTPRequest:
        name, version = req.model.split(":", 1)
        data = req.training
        body: dict[str, Any] = {
            "input": {data.input_key or TRAINING_INPUT_KEY: data.url, **req.hyperparameters},
            "destination": req.destination,
        }
        body.update(req.extra)
        return HTTPRequest("POST", self.url(f"models/{name}/versions/{version}/trainings"), self.headers(),
                           json=body)

    def parse_finetune(self, model: str, resp: HTTPResponse) -> FineTuneJob:
        data = self.json_object(resp, model)
        if not isinstance(data.get("id"), str):
            raise self.malformed(resp, model, "not a training object")
        status = _STATUS.get(str(data.get("status")))
        if status is None:
            raise self.malformed(resp, model, f"unknown training status {data.get('status')!r}")
        output = obj(data.get("output"))
        metrics = obj(data.get("metrics"))
        version = data.get("version")
        base = model or (f"{data.get('model')}:{version}" if version else str(data.get("model")))
        inp = obj(data.get("input"))
        return FineTuneJob(
            id=data["id"], provider=self.provider, base_model=base, status=status,
            fine_tuned_model=f"{self.provider}:{output['version']}" if output.get("version") else None,
            hyperparameters=dict(inp), error={"message": data["error"]} if data.get("error") else None,
            metrics=dict(metrics), created_at=unix_time(data.get("created_at")),
            finished_at=unix_time(data.get("completed_at")), request_id=self.request_id(resp.headers), raw=data,
        )

    def build_finetune_get(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("GET", self.url(f"trainings/{job.id}"), self.headers())

    def build_finetune_cancel(self, job: FineTuneJob) -> HTTPRequest:
        return HTTPRequest("POST", self.url(f"trainings/{job.id}/cancel"), self.headers())

    def parse_finetune_events(self, job: FineTuneJob, resp: HTTPResponse | None) -> list[FineTuneEvent]:
        logs = (job.raw or {}).get("logs") if isinstance(job.raw, dict) else None
        return [FineTuneEvent(message=line, type="log") for line in str(logs or "").splitlines() if line.strip()]

    def finetune_billing(self, job: FineTuneJob) -> FineTuneBilling:
        seconds = job.metrics.get("predict_time")
        return FineTuneBilling(gpu_seconds=Decimal(str(seconds)) if isinstance(seconds, int | float) else None)


def to_sdk(result: Prediction) -> Any:
    """The official SDK's ``replicate.prediction.Prediction`` for a prediction's ``raw`` body (imports
    ``replicate`` on first call). It is detached from any SDK client: read its fields, do not ``reload()`` it.

    Raises:
        ModuleNotFoundError: ``replicate`` is not installed (``pip install 'computekit[replicate]'``).
        ValueError: The result has no response body.
    """
    prediction = require("replicate.prediction", "replicate", "replicate.to_sdk()")
    if not isinstance(result.raw, Mapping):
        raise ValueError("this prediction has no response body to convert")
    return prediction.Prediction.parse_obj(result.raw)
