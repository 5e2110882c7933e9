"""Baseten dedicated deployments: call a model you deployed on Baseten (``baseten-dedicated:MODEL_ID``) through its
``/predict`` endpoint, and estimate its cost from the call's measured time.

**Two Baseten providers.** Baseten sells two different things, and computekit gives each its own provider name:

- ``baseten`` is Baseten's *Model APIs*: shared, OpenAI-compatible LLM endpoints (``inference.baseten.co/v1``),
  billed per token. It is served by the OpenAI-compatible adapter (a profile in ``openai_compatible.py``) and is
  used with ``complete()``/``stream()``.
- ``baseten-dedicated`` (this adapter) is a model *you* deployed with Truss on dedicated instances, called with
  ``predict()`` at ``https://model-{MODEL_ID}.api.baseten.co/environments/production/predict``. Baseten bills
  the instance's time, and the answer is the model's output only: no job id, no status, no usage.

Both read the key from ``BASETEN_API_KEY``, sent as ``Authorization: Api-Key ...``.

Model ids: ``MODEL_ID`` (the production environment), ``MODEL_ID/environments/NAME`` (another environment),
``MODEL_ID/deployment/DEPLOYMENT_ID`` (one deployment), or ``MODEL_ID/development``.

Cost: Baseten reports no run time, so the prediction is marked ``_wall_time``: the client fills
``usage.gpu_seconds`` with the measured time of the call and prices it at the per-second price of the instance
type from ``hardware=`` or config; the cost is marked ``estimated=True`` (the call's time includes the network
and any queueing, and an instance kept warm bills between calls too).

``/predict`` is synchronous: there is nothing to poll or cancel, and ``wait=False`` is refused before sending
(Baseten's ``/async_predict`` delivers its output only to a webhook; it is not supported yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from .. import _urls
from .._exceptions import InvalidRequestError
from .._types import Prediction
from ._base import Adapter, Capabilities, HTTPRequest, HTTPResponse, PredictRequest

__all__ = ["BasetenDedicatedAdapter"]

_MODEL_HOST: Final = "{model_id}"
"""The placeholder in the base URL replaced by the model id (each model has its own subdomain)."""

_PATH_FORMS: Final = ("environments/", "deployment/", "development", "production")


class BasetenDedicatedAdapter(Adapter):
    """Baseten dedicated deployments (``baseten-dedicated:MODEL_ID``), called with ``predict()``.

    Not Baseten's Model APIs: those are the ``baseten`` provider (OpenAI-compatible, per-token). Key:
    ``BASETEN_API_KEY``.
    """

    name = "baseten-dedicated"
    auth_scheme = "Api-Key"
    capabilities = Capabilities(predict=True)
    key_env_vars = ("BASETEN_API_KEY",)
    default_base_url = f"https://model-{_MODEL_HOST}.api.baseten.co"
    docs_url = "https://docs.baseten.co/reference/inference-api/overview"

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return "config `[prices]` per second of the instance x the call's measured time (estimated)"

    def on_origin(self, url: str | None) -> bool:
        # Each model has its own host (model-ID.api.baseten.co): the key goes to the configured base URL's host
        # with any alphanumeric model id in its place, over the same scheme and port.
        base = self.settings.base_url
        if _MODEL_HOST not in base:
            return super().on_origin(url)
        if not url or not _urls.is_safe(url):
            return False
        template = _urls.origin(base.replace(_MODEL_HOST, "0"))
        before, _, after = urlsplit(base).netloc.lower().partition(_MODEL_HOST)
        host = _urls.origin(url).host
        model_id = host[len(before):len(host) - len(after)] if host.startswith(before) and host.endswith(after) else ""
        return model_id.isalnum() and _urls.origin(url.replace(model_id, "0", 1)) == template

    def predict_url(self, model: str) -> str:
        """``model`` (``MODEL_ID[/environments/NAME | /deployment/ID | /development]``) -> its ``/predict`` URL.

        Raises:
            InvalidRequestError: The model id is not one of those forms.
        """
        model_id, _, rest = model.partition("/")
        if not model_id or not model_id.isalnum():
            raise InvalidRequestError(
                f"baseten-dedicated model ids are MODEL_ID, MODEL_ID/environments/NAME or "
                f"MODEL_ID/deployment/DEPLOYMENT_ID (the model id is alphanumeric); got {model!r}"
            )
        path = rest.strip("/") or "environments/production"
        if not path.startswith(_PATH_FORMS):
            raise InvalidRequestError(
                f"unknown baseten-dedicated target {model!r}: after the model id, use environments/NAME, "
                "deployment/DEPLOYMENT_ID or development"
            )
        base = self.settings.base_url.replace(_MODEL_HOST, model_id).rstrip("/")
        return f"{base}/{path}/predict"

    def build_predict(self, req: PredictRequest) -> HTTPRequest:
        if not req.wait:
            raise InvalidRequestError(
                "baseten-dedicated: /predict is synchronous (the answer is the output), so wait=False cannot "
                "return at once; call predict() with wait=True"
            )
        if req.webhook:
            raise InvalidRequestError("baseten-dedicated: webhooks need /async_predict, which is not supported yet")
        body: dict[str, Any] = {**req.input, **req.extra}  # the model's input is the whole body
        return HTTPRequest("POST", self.predict_url(req.model), self.headers(), json=body)

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        # Baseten answers with the output alone (no id, no usage) and bills instance time it does not report.
        return self.timed_prediction(model, resp)

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        raise InvalidRequestError("baseten-dedicated predictions are synchronous: there is nothing to refresh")

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        raise InvalidRequestError("baseten-dedicated predictions are synchronous: there is nothing to cancel")

    def request_id(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("x-baseten-request-id") or super().request_id(headers)
