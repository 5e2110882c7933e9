"""fal.ai: run an app on fal's queue (``fal:fal-ai/flux/schnell``) and price it from the billable units fal reports.

The queue API (https://fal.ai/docs/documentation/model-apis/inference/queue) has four calls, all on
``queue.fal.run``: submit (``POST /{app}``), status (``GET {status_url}``), result (``GET {response_url}``) and
cancel (``PUT {cancel_url}``). The status, result and cancel URLs use only the app's owner and name (not its
sub-path), so the adapter always follows the URLs fal returns instead of building them.

A run therefore has one more step than computekit's ``get`` verb assumes: when the status says ``COMPLETED`` the
output is not in hand yet. The adapter reports that state as ``running`` and points ``urls["get"]`` at the
``response_url``, so the next poll fetches the result, which ends the run (``succeeded``). The result response
carries the ``x-fal-billable-units`` header: cost = those units x the app's unit price, from config
``[prices] "fal:APP" = { billable_units = "..." }`` (no fal price is in computekit's tables yet).

``parse_prediction`` is given only the response, so it tells the calls apart by the URL that was requested
(``HTTPResponse.url``) and the id is read from that URL (``.../requests/{id}[/status|/cancel]``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import quote, urlsplit

from .._types import Prediction, PredictionStatus, Usage
from ._base import Adapter, Capabilities, HTTPRequest, HTTPResponse, PredictRequest

__all__ = ["FalAdapter"]

# fal's queue statuses -> computekit's. COMPLETED is not listed: the result still has to be fetched.
_STATUS: Final[dict[str, PredictionStatus]] = {
    "IN_QUEUE": "queued",
    "IN_PROGRESS": "running",
}

BILLABLE_UNITS_HEADER: Final = "x-fal-billable-units"
UNIT: Final = "billable_units"
"""The key of fal's billable units in ``Usage.units`` (and so in ``[prices]``)."""


class FalAdapter(Adapter):
    """fal.ai (``fal:`` apps) through its queue API. Key: ``FAL_KEY``."""

    name = "fal"
    auth_scheme = "Key"
    capabilities = Capabilities(predict=True)
    key_env_vars = ("FAL_KEY",)
    unique_run_ids = True
    default_base_url = "https://queue.fal.run"
    docs_url = "https://fal.ai/docs/documentation/model-apis/inference/queue"

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return 'the `x-fal-billable-units` header x config `[prices] "fal:APP" = { billable_units = "..." }`'

    def headers(self, *, json_body: bool = False) -> dict[str, str]:
        h = {"accept": "application/json"}
        if json_body:
            h["content-type"] = "application/json"
        h.update(self.settings.headers)
        h.update(self.auth_headers())
        return h

    # ----------------------------------------------------------------------------------------- requests

    def build_predict(self, req: PredictRequest) -> HTTPRequest:
        body: dict[str, Any] = dict(req.input)
        body.update(req.extra)
        url = self.url(req.model.strip("/"))
        if req.webhook:  # fal posts the result there when the run ends
            url += f"?fal_webhook={quote(req.webhook, safe='')}"
        return HTTPRequest("POST", url, self.headers(json_body=True), json=body)

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        # "get" is the status URL while the run is going, and the response URL once fal says COMPLETED.
        # A URL from fal's answer is followed only on the configured origin; else the same URL is built here.
        base = self.url(f"{_app_base(prediction.model)}/requests/{prediction.id}")
        named = prediction.urls.get("get") or prediction.urls.get("status")
        result = bool(named) and named == prediction.urls.get("response")
        url = self.own_url(named, base if result else f"{base}/status")
        if not result and urlsplit(url).path.rstrip("/").endswith("/status"):
            url += "?logs=1"
        return HTTPRequest("GET", url, self.headers())

    def poll_now(self, prediction: Prediction) -> bool:
        # COMPLETED on fal's side: the result is waiting at the response URL, so fetch it now, not a poll later.
        return not prediction.done and bool(prediction.urls.get("response")) and (
            prediction.urls.get("get") == prediction.urls.get("response"))

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        url = self.own_url(prediction.urls.get("cancel"),
                           self.url(f"{_app_base(prediction.model)}/requests/{prediction.id}/cancel"))
        return HTTPRequest("PUT", url, self.headers())

    # ----------------------------------------------------------------------------------------- responses

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        path = urlsplit(resp.url).path.rstrip("/")
        if path.endswith("/status"):
            return self._parse_status(model, resp, _base(resp.url, "/status"))
        if path.endswith("/cancel"):
            return self._parse_cancel(model, resp, _base(resp.url, "/cancel"))
        if "/requests/" in path:
            return self._parse_result(model, resp, _base(resp.url, ""))
        return self._parse_submit(model, resp)

    def _prediction(self, model: str, resp: HTTPResponse, rid: str, status: PredictionStatus,
                    urls: dict[str, str], data: Any, **fields: Any) -> Prediction:
        return Prediction(
            provider=self.provider,
            model=model,
            id=rid,
            status=status,
            urls=urls,
            request_id=resp.headers.get("x-fal-request-id") or self.request_id(resp.headers) or rid,
            raw=data,
            **fields,
        )

    def _parse_submit(self, model: str, resp: HTTPResponse) -> Prediction:
        data = self.json_object(resp, model)
        rid = data.get("request_id")
        if not isinstance(rid, str) or not isinstance(data.get("status_url"), str):
            raise self.malformed(resp, model, "not a queue submission (no request_id / status_url)")
        urls = _urls(data)
        urls["get"] = urls["status"]
        return self._prediction(model, resp, rid, "queued", urls, data,
                                metrics=_metrics(data, {"queue_position"}))

    def _parse_status(self, model: str, resp: HTTPResponse, base: str) -> Prediction:
        data = self.json_object(resp, model)
        rid = str(data.get("request_id") or base.rsplit("/", 1)[-1])
        fal_status = data.get("status")
        urls = {"status": f"{base}/status", "response": f"{base}", "cancel": f"{base}/cancel", **_urls(data)}
        metrics = _metrics(data, {"queue_position"})
        raw_metrics = data.get("metrics")
        if isinstance(raw_metrics, dict):
            metrics.update(raw_metrics)
        metrics["fal_status"] = fal_status
        logs = _logs(data.get("logs"))
        if fal_status == "COMPLETED":
            error = data.get("error")
            if error:  # a run that ended in error: there is no result to fetch
                return self._prediction(model, resp, rid, "failed", urls, data, metrics=metrics, logs=logs,
                                        error=str(error))
            # Done on fal's side, but the output is at the response URL: the next poll fetches it.
            urls["get"] = urls["response"]
            return self._prediction(model, resp, rid, "running", urls, data, metrics=metrics, logs=logs)
        status = _STATUS.get(str(fal_status))
        if status is None:
            raise self.malformed(resp, model, f"unknown queue status {fal_status!r}")
        urls["get"] = urls["status"]
        return self._prediction(model, resp, rid, status, urls, data, metrics=metrics, logs=logs)

    def _parse_result(self, model: str, resp: HTTPResponse, base: str) -> Prediction:
        data = self.json_object(resp, model)
        rid = base.rsplit("/", 1)[-1]
        urls = {"status": f"{base}/status", "response": base, "cancel": f"{base}/cancel", "get": base}
        units: dict[str, Decimal] = {}
        billed = resp.headers.get(BILLABLE_UNITS_HEADER)
        if billed is not None:
            try:
                units[UNIT] = Decimal(str(billed).strip())
            except InvalidOperation:
                raise self.malformed(resp, model, f"{BILLABLE_UNITS_HEADER} is not a number: {billed!r}") from None
        metrics = {UNIT: units[UNIT]} if units else {}
        return self._prediction(model, resp, rid, "succeeded", urls, data, output=data, metrics=metrics,
                                usage=Usage(requests=1, units=units))

    def _parse_cancel(self, model: str, resp: HTTPResponse, base: str) -> Prediction:
        data = self.json_object(resp, model)
        rid = base.rsplit("/", 1)[-1]
        urls = {"status": f"{base}/status", "response": base, "cancel": f"{base}/cancel"}
        fal_status = data.get("status")
        metrics = {"fal_status": fal_status}
        if fal_status == "ALREADY_COMPLETED":  # too late to cancel: the result is waiting at the response URL
            urls["get"] = base
            return self._prediction(model, resp, rid, "running", urls, data, metrics=metrics)
        if fal_status != "CANCELLATION_REQUESTED":
            raise self.malformed(resp, model, f"unknown cancel status {fal_status!r}")
        urls["get"] = urls["status"]
        return self._prediction(model, resp, rid, "canceled", urls, data, metrics=metrics)

    # ----------------------------------------------------------------------------------------- errors

    def error_message(self, body: Any) -> str:
        # Model validation errors: {"detail": [{"loc": [...], "msg": "...", "type": "..."}]};
        # request errors: {"detail": "...", "error_type": "..."}.
        if isinstance(body, dict) and isinstance(body.get("detail"), list):
            msgs = []
            for d in body["detail"]:
                if isinstance(d, dict) and d.get("msg"):
                    loc = ".".join(str(p) for p in d.get("loc") or [] if p != "body")
                    msgs.append(f"{loc}: {d['msg']}" if loc else str(d["msg"]))
            if msgs:
                return "; ".join(msgs)
        return super().error_message(body)

    def request_id(self, headers: Any) -> str | None:
        return headers.get("x-fal-request-id") or super().request_id(headers)


def _app_base(model: str) -> str:
    """``owner/app`` of a model id (fal's status/result/cancel URLs drop the sub-path)."""
    parts = model.strip("/").split("/")
    return "/".join(parts[:2])


def _base(url: str, suffix: str) -> str:
    """``https://queue.fal.run/owner/app/requests/ID`` from a status, cancel or result URL (query dropped)."""
    u = urlsplit(url)
    path = u.path.rstrip("/")
    if suffix and path.endswith(suffix):
        path = path[: -len(suffix)]
    return f"{u.scheme}://{u.netloc}{path}"


def _urls(data: dict[str, Any]) -> dict[str, str]:
    names = {"status_url": "status", "response_url": "response", "cancel_url": "cancel"}
    return {short: data[k] for k, short in names.items() if isinstance(data.get(k), str)}


def _metrics(data: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: data[k] for k in keys if data.get(k) is not None}


def _logs(raw: Any) -> str:
    if not isinstance(raw, list):
        return ""
    lines = [str(entry.get("message", "")) if isinstance(entry, dict) else str(entry) for entry in raw]
    return "".join(line + "\n" for line in lines)
