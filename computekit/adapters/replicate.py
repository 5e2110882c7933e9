"""Replicate: run a model (``replicate:owner/name``, ``replicate:owner/name:version``,
``replicate:deployments/owner/name``) and price it from the GPU-seconds Replicate reports.

The adapter speaks Replicate's HTTP API directly (no I/O here: computekit's transports and its one retry loop do
that, which also keeps vcrpy recording uniform); its shapes are checked against Replicate's OpenAPI description
and the real recordings in ``shared/conformance/replicate``. Cost = ``metrics.predict_time`` x the per-second
price of the hardware the model runs on, which Replicate does not put in the prediction: it comes from
``predict(hardware=...)`` or config, never from a guess.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from .._types import Prediction, PredictionStatus, Usage
from ._base import Adapter, Capabilities, HTTPRequest, HTTPResponse, PredictRequest

__all__ = ["ReplicateAdapter"]

# Replicate's statuses -> computekit's.
_STATUS: Final[dict[str, PredictionStatus]] = {
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "aborted": "canceled",
}

SYNC_WAIT_S: Final = 60
"""How long Replicate may hold a create request open (``Prefer: wait=N``; Replicate's maximum is 60)."""


class ReplicateAdapter(Adapter):
    """Replicate (``replicate:`` models). Key: ``REPLICATE_API_TOKEN``."""

    name = "replicate"
    capabilities = Capabilities(predict=True)
    key_env_vars = ("REPLICATE_API_TOKEN",)
    default_base_url = "https://api.replicate.com/v1"
    docs_url = "https://replicate.com/docs/reference/http"

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return "computekit's `gpu.toml` (Replicate's pricing page) x `metrics.predict_time`"

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
            headers["prefer"] = f"wait={SYNC_WAIT_S}"
        return HTTPRequest("POST", url, headers, json=body)

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, model, "body is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise self.malformed(resp, model, "not a prediction object")
        status = _STATUS.get(str(data.get("status")))
        if status is None:
            raise self.malformed(resp, model, f"unknown prediction status {data.get('status')!r}")
        raw_metrics = data.get("metrics")
        metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
        seconds = metrics.get("predict_time")
        units: dict[str, Decimal] = {}
        for key in ("input_token_count", "output_token_count"):
            if isinstance(metrics.get(key), int | float):
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

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        url = prediction.urls.get("get") or self.url(f"predictions/{prediction.id}")
        return HTTPRequest("GET", url, self.headers())

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        url = prediction.urls.get("cancel") or self.url(f"predictions/{prediction.id}/cancel")
        return HTTPRequest("POST", url, self.headers())
