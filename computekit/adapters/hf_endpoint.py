"""Hugging Face Inference Endpoints: call a model you deployed on a dedicated endpoint with ``predict()``, and
estimate its cost from the call's measured time.

Model ids, two forms:

- ``hf-endpoint:https://xyz.us-east-1.aws.endpoints.huggingface.cloud``: the endpoint's URL itself. Only
  ``https`` URLs on ``*.endpoints.huggingface.cloud`` are accepted in the model id (the Hugging Face token is
  sent to that URL); an endpoint on another domain (a private link) is configured by name instead.
- ``hf-endpoint:NAME``: an endpoint name, looked up in config. ``[providers.hf-endpoint] deployments =
  { NAME = "https://..." }`` maps each endpoint name to its URL; otherwise ``[providers.hf-endpoint] base_url``
  is the URL (one endpoint per config). An endpoint's URL is random, so a name alone cannot be resolved.

The key is ``HF_TOKEN`` (then ``HUGGINGFACE_API_KEY``), sent as ``Authorization: Bearer ...``.

The request is ``POST {endpoint_url}`` with the predict input as the JSON body, as it is (usually
``{"inputs": ..., "parameters": {...}}``). The answer is the model's output, synchronously: no id, no status, no
usage. An endpoint that is scaled to zero (or still initializing) answers 503 while a replica starts, often
with ``{"error": "...", "estimated_time": N}``: that is a retryable :class:`OverloadedError` whose message keeps
the estimate.

Cost: Hugging Face bills the endpoint's instance time and reports none per call, so the prediction is marked
``_wall_time``: the client fills ``usage.gpu_seconds`` with the measured time of the call and prices it at the
per-second price of the endpoint's hardware (``hardware=`` or ``[providers.hf-endpoint] hardware = {NAME =
SKU}``), from config ``[prices] "hf-endpoint:SKU" = { per_second = "..." }`` (the hourly rate / 3600). The cost
is marked ``estimated=True``.
"""

from __future__ import annotations

import math
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import Field

from .. import _urls
from .._exceptions import APIStatusError, InvalidRequestError, OverloadedError, UnsupportedCapabilityError
from .._types import Prediction
from ._base import Adapter, AdapterSettings, Capabilities, HTTPRequest, HTTPResponse, PredictRequest

__all__ = ["HFEndpointAdapter", "HFEndpointSettings"]

_NO_ENDPOINT: Final = "https://endpoints.huggingface.cloud"
"""The default base URL: a placeholder meaning "no endpoint configured" (each endpoint has its own URL; the
client needs some base URL to build the adapter)."""

_ENDPOINT_DOMAIN: Final = ".endpoints.huggingface.cloud"
_UNAVAILABLE: Final = 503


class HFEndpointSettings(AdapterSettings):
    """``[providers.hf-endpoint]``: endpoints by name."""

    deployments: dict[str, str] = Field(
        default_factory=dict, description="Endpoint name -> its URL (https://...endpoints.huggingface.cloud)."
    )


class HFEndpointAdapter(Adapter):
    """Hugging Face Inference Endpoints (``hf-endpoint:NAME`` or ``hf-endpoint:https://...``), with
    ``predict()``. Key: ``HF_TOKEN``, then ``HUGGINGFACE_API_KEY``."""

    name = "hf-endpoint"
    capabilities = Capabilities(predict=True)
    key_env_vars = ("HF_TOKEN", "HUGGINGFACE_API_KEY")
    default_base_url = _NO_ENDPOINT
    docs_url = "https://huggingface.co/docs/inference-endpoints/guides/test_endpoint"
    settings_model = HFEndpointSettings
    options: HFEndpointSettings

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return (
            "config `[prices]` per second of the endpoint's instance (hourly rate / 3600) x the call's measured "
            "time (estimated)"
        )

    def on_origin(self, url: str | None) -> bool:
        # Each endpoint has its own host: the key goes to the configured ones and to Inference Endpoints hosts.
        if not url or not _urls.is_safe(url):
            return False
        o = _urls.origin(url)
        if o.scheme == "https" and o.port == 443 and o.host.endswith(_ENDPOINT_DOMAIN):
            return True
        known = (self.settings.base_url, *self.options.deployments.values())
        return any(_urls.same_origin(url, k) for k in known)

    def endpoint_url(self, model: str) -> str:
        """The URL of the endpoint ``model`` names (a URL itself, or a name configured in ``deployments`` or
        ``base_url``).

        Raises:
            InvalidRequestError: A URL that is not an ``https`` Inference Endpoints URL, or a name with no URL in
                config.
        """
        if "://" in model:
            parts = urlsplit(model)
            host = (parts.hostname or "").lower()
            if parts.scheme != "https" or not host.endswith(_ENDPOINT_DOMAIN) or parts.username or parts.password:
                raise InvalidRequestError(
                    f"hf-endpoint: {model!r} is not an Inference Endpoints URL (https://...{_ENDPOINT_DOMAIN}); "
                    "for an endpoint on another domain, name it and map the name to its URL in config: "
                    '[providers.hf-endpoint] deployments = { NAME = "https://..." }'
                )
            return model
        url = self.options.deployments.get(model)
        if url:
            return url
        if self.settings.base_url and self.settings.base_url.rstrip("/") != _NO_ENDPOINT:
            return self.settings.base_url
        raise InvalidRequestError(
            f"hf-endpoint: no URL for the endpoint {model!r}. Pass the endpoint's URL as the model id "
            f"(hf-endpoint:https://xyz.us-east-1.aws{_ENDPOINT_DOMAIN}), or set it in config: "
            f'[providers.hf-endpoint] deployments = {{ "{model}" = "https://..." }} (or base_url for one endpoint)'
        )

    def build_predict(self, req: PredictRequest) -> HTTPRequest:
        if not req.wait:
            raise InvalidRequestError(
                "hf-endpoint: Inference Endpoints answer synchronously (the answer is the output), so wait=False "
                "cannot return at once; call predict() with wait=True"
            )
        if req.webhook:
            raise InvalidRequestError("hf-endpoint: Inference Endpoints do not call webhooks")
        url = self.endpoint_url(req.model)
        body: dict[str, Any] = {**req.input, **req.extra}  # the predict input is the whole body, as it is
        return HTTPRequest("POST", url, self.headers(), json=body)

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        # HF answers with the output alone (no id, no usage) and bills instance time it does not report.
        return self.timed_prediction(model, resp)

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        raise UnsupportedCapabilityError(
            "hf-endpoint predictions are synchronous: the answer was the output, there is nothing to refresh",
            provider=self.provider,
            capability="predict.refresh",
        )

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        raise UnsupportedCapabilityError(
            "hf-endpoint predictions are synchronous: the run ended with the answer, there is nothing to cancel",
            provider=self.provider,
            capability="predict.cancel",
        )

    # ----------------------------------------------------------------------------------------- errors

    def refused(self, status: int, body: Any) -> bool:
        # A 503 while scaled to zero or initializing: no replica took the request, so it did not run.
        return status == _UNAVAILABLE or super().refused(status, body)

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        if status == _UNAVAILABLE:
            return OverloadedError  # scaled to zero or initializing: a replica is starting (retryable)
        return None

    def error_message(self, body: Any) -> str:
        message = super().error_message(body)
        if isinstance(body, dict):
            eta = body.get("estimated_time")
            if isinstance(eta, int | float) and not isinstance(eta, bool) and math.isfinite(eta):
                message = f"{message} (estimated_time: {eta:g} s until the endpoint is ready)"
        return message
