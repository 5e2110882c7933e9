"""RunPod Serverless: run a job on an endpoint (``runpod:ENDPOINT_ID``) and price it from the execution time
RunPod reports.

The adapter speaks RunPod's queue-based endpoint API directly (``/run``, ``/runsync``, ``/status/{id}``,
``/cancel/{id}``, ``/stream/{id}``; https://docs.runpod.io/serverless/endpoints/operation-reference); no I/O
here: computekit's transports and its one retry loop do that. Cost = ``executionTime`` (milliseconds) / 1000 x the
per-second price of the endpoint's GPU type, which RunPod does not put in the job: it comes from
``predict(hardware=...)`` or config (``[providers.runpod] hardware = {ENDPOINT_ID = "..."}`` with a
``[prices] "runpod:SKU"`` price), never from a guess.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

from .._types import Prediction, PredictionStatus, Usage
from ._base import Adapter, Capabilities, HTTPRequest, HTTPResponse, PredictRequest, StreamUpdate

__all__ = ["RunPodAdapter"]

# RunPod's job states -> computekit's (https://docs.runpod.io/serverless/endpoints/job-states).
_STATUS: Final[dict[str, PredictionStatus]] = {
    "IN_QUEUE": "queued",
    "IN_PROGRESS": "running",
    "RUNNING": "running",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "CANCELLED": "canceled",
    "TIMED_OUT": "failed",
}

SYNC_WAIT_S: Final = 90
"""How long ``/runsync`` holds the request open by default (RunPod's documented default, 90 s)."""

_SYNC_READ_MARGIN_S: Final = 15
"""Read timeout slack over :data:`SYNC_WAIT_S`, so a held ``/runsync`` is never cut off by our own timeout."""

_METRIC_KEYS: Final = ("delayTime", "executionTime", "workerId")


class RunPodAdapter(Adapter):
    """RunPod Serverless (``runpod:ENDPOINT_ID``). Key: ``RUNPOD_API_KEY``."""

    name = "runpod"
    capabilities = Capabilities(predict=True, predict_stream=True)
    key_env_vars = ("RUNPOD_API_KEY",)
    unique_run_ids = True
    default_base_url = "https://api.runpod.ai/v2"
    docs_url = "https://docs.runpod.io/serverless/endpoints/operation-reference"

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return "config `[prices]` per second of the endpoint's GPU x `executionTime`"

    def _endpoint_url(self, endpoint: str, op: str) -> str:
        return self.url(f"{endpoint}/{op}")

    def _job_url(self, prediction: Prediction, name: str, op: str) -> str:
        # The prediction's URL when it is on the configured origin; else the one built here (the key stays home).
        return self.own_url(prediction.urls.get(name), self._endpoint_url(prediction.model, f"{op}/{prediction.id}"))

    def build_predict(self, req: PredictRequest) -> HTTPRequest:
        body: dict[str, Any] = {"input": dict(req.input)}
        if req.webhook:
            body["webhook"] = req.webhook
        body.update(req.extra)  # policy, s3Config ...
        # A timeout shorter than RunPod's hold would cut /runsync off before it says the job's id, leaving a job
        # that runs (and bills) with nothing to cancel: submit with /run then, and poll.
        fits = req.timeout is None or req.timeout >= SYNC_WAIT_S + _SYNC_READ_MARGIN_S
        if req.wait and fits:
            # /runsync holds the request up to 90 s, then answers with the job's id and state (then we poll).
            timeout = max(self.settings.timeout, SYNC_WAIT_S + _SYNC_READ_MARGIN_S)
            return HTTPRequest("POST", self._endpoint_url(req.model, "runsync"), self.headers(), json=body,
                               timeout=timeout)
        return HTTPRequest("POST", self._endpoint_url(req.model, "run"), self.headers(), json=body)

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        data = self.json_object(resp, model)
        if not isinstance(data.get("id"), str):
            raise self.malformed(resp, model, "not a job object (no id)")
        status = _STATUS.get(str(data.get("status")))
        if status is None:
            raise self.malformed(resp, model, f"unknown job status {data.get('status')!r}")
        metrics = {k: data[k] for k in _METRIC_KEYS if k in data}
        ms = data.get("executionTime")
        seconds = Decimal(str(ms)) / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else None
        error, logs = _error(data.get("error"))
        if error is None and data.get("status") == "TIMED_OUT":
            error = "the job timed out on RunPod (TIMED_OUT)"
        job_id = data["id"]
        return Prediction(
            provider=self.provider,
            model=model,
            id=job_id,
            status=status,
            output=data.get("output"),
            logs=logs,
            error=error,
            metrics=metrics,
            urls={
                "get": self._endpoint_url(model, f"status/{job_id}"),
                "cancel": self._endpoint_url(model, f"cancel/{job_id}"),
                "stream": self._endpoint_url(model, f"stream/{job_id}"),
            },
            usage=Usage(requests=1, gpu_seconds=seconds),
            request_id=self.request_id(resp.headers) or job_id,
            raw=data,
        )

    def needs_final_state(self, prediction: Prediction) -> bool:
        # The cancel answer is {"id", "status": "CANCELLED"}: a job canceled while running was billed for its
        # executionTime, which only /status reports.
        return prediction.status == "canceled" and prediction.usage.gpu_seconds is None

    def build_prediction_stream(self, prediction: Prediction) -> HTTPRequest:
        url = self._job_url(prediction, "stream", "stream")
        return HTTPRequest("GET", url, self.headers())

    def parse_stream_poll(self, prediction: Prediction, resp: HTTPResponse) -> StreamUpdate:
        # GET /stream/{id}: {"status": "IN_PROGRESS", "stream": [{"output": ...}, ...]}, the pieces the handler
        # yielded since the last call (https://docs.runpod.io/serverless/endpoints/operation-reference).
        data = self.json_object(resp, prediction.model)
        status = _STATUS.get(str(data.get("status")))
        if status is None:
            raise self.malformed(resp, prediction.model, f"unknown job status {data.get('status')!r}")
        pieces = [item.get("output") for item in data.get("stream") or [] if isinstance(item, dict)]
        error, _ = _error(data.get("error"))
        if status == "failed" and error is None:
            error = f"the job ended {data.get('status')}"
        return StreamUpdate(output=pieces, done=status in ("succeeded", "failed", "canceled"), error=error)

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        url = self._job_url(prediction, "get", "status")
        return HTTPRequest("GET", url, self.headers())

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        url = self._job_url(prediction, "cancel", "cancel")
        return HTTPRequest("POST", url, self.headers())


def _error(raw: Any) -> tuple[Any, str]:
    """The job's error and logs. The RunPod Python worker (``runpod.serverless``) sends a handler's exception as a
    JSON string with ``error_type`` (``"<class 'RuntimeError'>"``), ``error_message`` and ``error_traceback``:
    ``"RuntimeError: message"`` becomes the error, the traceback the logs. Any other error is kept as sent."""
    if not isinstance(raw, str):
        return raw, ""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw, ""
    if not isinstance(parsed, dict) or not parsed.get("error_message"):
        return raw, ""
    kind = str(parsed.get("error_type") or "")
    if kind.startswith("<class '") and kind.endswith("'>"):  # the worker sends str(type(err))
        kind = kind[len("<class '"):-2].rsplit(".", 1)[-1]
    message = str(parsed["error_message"])
    error = f"{kind}: {message}" if kind else message
    return error, str(parsed.get("error_traceback") or "")
