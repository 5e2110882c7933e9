"""Stability AI: generate an image (``stability:ultra``, ``stability:core``, ``stability:sd3.5-large`` ...) with the
REST v2beta Stable Image API and price it per image.

``POST https://api.stability.ai/v2beta/stable-image/generate/{ultra|core|sd3}`` takes ``multipart/form-data``
(https://platform.stability.ai/docs/api-reference). The SD3 family shares one endpoint and is chosen by the
``model`` form field (``sd3.5-large``, ``sd3.5-large-turbo``, ``sd3.5-medium`` ...). With
``accept: application/json`` the answer is ``{"image": <base64>, "finish_reason": ..., "seed": ...}``. The call is
synchronous: the prediction has ended when it returns, so there is nothing to poll or cancel.

Stability bills credits per generation ($0.01 a credit); computekit's ``units.toml`` holds the price per image of
each model, so a run reports ``usage.units = {"image": 1}``.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any, Final

from .._exceptions import APIStatusError, ContentFilteredError, UnsupportedCapabilityError
from .._types import Prediction, Usage
from ._base import Adapter, Capabilities, HTTPRequest, HTTPResponse, PredictRequest

__all__ = ["StabilityAdapter", "encode_multipart"]

# computekit model id -> (endpoint, value of the ``model`` form field or None).
_ENDPOINTS: Final[dict[str, str]] = {"ultra": "ultra", "core": "core"}
_SD3_PREFIX: Final = "sd3"

_MODERATION_NAMES: Final = frozenset({"content_moderation"})


class StabilityAdapter(Adapter):
    """Stability AI (``stability:`` image models). Key: ``STABILITY_API_KEY``."""

    name = "stability"
    capabilities = Capabilities(predict=True)
    key_env_vars = ("STABILITY_API_KEY",)
    default_base_url = "https://api.stability.ai/v2beta"
    docs_url = "https://platform.stability.ai/docs/api-reference"

    @classmethod
    def pricing_for(cls, provider: str) -> str:
        return "computekit's `units.toml` (Stability's credits per image x $0.01)"

    def build_predict(self, req: PredictRequest) -> HTTPRequest:
        model = req.model.strip("/")
        fields: dict[str, Any] = dict(req.input)
        fields.update(req.extra)
        if model in _ENDPOINTS:
            endpoint = _ENDPOINTS[model]
        elif model.startswith(_SD3_PREFIX):
            endpoint = "sd3"
            fields["model"] = model
        else:
            raise UnsupportedCapabilityError(
                f"unknown Stability model {model!r}: use ultra, core, or an SD3 model (sd3.5-large ...)",
                provider=self.provider, capability="predict",
            )
        body, content_type = encode_multipart(fields)
        headers = {"accept": "application/json"}
        headers.update(self.settings.headers)
        headers["content-type"] = content_type
        headers["authorization"] = f"Bearer {self.require_key()}"
        return HTTPRequest("POST", self.url(f"stable-image/generate/{endpoint}"), headers, content=body)

    def parse_prediction(self, model: str, resp: HTTPResponse) -> Prediction:
        try:
            data = resp.json()
        except ValueError:
            raise self.malformed(resp, model, "body is not JSON (send accept: application/json)") from None
        if not isinstance(data, dict) or not isinstance(data.get("image"), str):
            raise self.malformed(resp, model, "no base64 image in the body")
        rid = self.request_id(resp.headers)
        metrics = {k: data[k] for k in ("finish_reason", "seed") if k in data}
        return Prediction(
            provider=self.provider,
            model=model,
            id=rid or _content_id(data["image"]),
            status="succeeded",
            output=data,
            metrics=metrics,
            usage=Usage(requests=1, images=1, units={"image": Decimal(1)}),
            request_id=rid,
            raw={k: v for k, v in data.items() if k != "image"},  # the image is in output; not kept twice
        )

    def build_get(self, prediction: Prediction) -> HTTPRequest:
        raise UnsupportedCapabilityError(
            "Stability generations are synchronous: the prediction ended when predict() returned",
            provider=self.provider, capability="predict.get",
        )

    def build_cancel(self, prediction: Prediction) -> HTTPRequest:
        raise UnsupportedCapabilityError(
            "Stability generations are synchronous: there is no running generation to cancel",
            provider=self.provider, capability="predict.cancel",
        )

    # ----------------------------------------------------------------------------------------- errors

    def error_message(self, body: Any) -> str:
        # {"id": "...", "name": "bad_request", "errors": ["prompt: is required"]}
        if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            msg = "; ".join(str(e) for e in body["errors"])
            return f"{body['name']}: {msg}" if body.get("name") else msg
        return super().error_message(body)

    def classify_error(self, status: int, body: Any) -> type[APIStatusError] | None:
        if status == 403 and isinstance(body, dict) and body.get("name") in _MODERATION_NAMES:
            return ContentFilteredError
        return None

    def request_id(self, headers: Any) -> str | None:
        return headers.get("x-request-id") or super().request_id(headers)


def _content_id(image: str) -> str:
    """An id for a generation the host gave none: derived from the image (stable, so a replay gets the same)."""
    return "stability-" + hashlib.sha256(image.encode()).hexdigest()[:24]


def encode_multipart(fields: dict[str, Any]) -> tuple[bytes, str]:
    """``multipart/form-data`` for ``fields``: the body and its ``content-type`` (with the boundary).

    ``bytes`` values (an init image, a mask) are sent as file parts; a ``(filename, bytes[, content_type])`` tuple
    names the file. ``None`` is left out, booleans are ``true``/``false``, dicts and lists JSON. The boundary is
    derived from the content, so the same fields always encode to the same bytes (replays match) and the boundary
    cannot occur in what it separates.
    """
    parts: list[tuple[bytes, bytes]] = []
    for name, value in fields.items():
        if value is None:
            continue
        disposition = f'form-data; name="{_quote(str(name))}"'
        if isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[1], bytes | bytearray):
            filename, data = str(value[0]), bytes(value[1])
            ctype = str(value[2]) if len(value) == 3 else "application/octet-stream"
            head = f'Content-Disposition: {disposition}; filename="{_quote(filename)}"\r\nContent-Type: {ctype}'
        elif isinstance(value, bytes | bytearray):
            data = bytes(value)
            head = f'Content-Disposition: {disposition}; filename="{_quote(str(name))}"\r\n' \
                   "Content-Type: application/octet-stream"
        else:
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, dict | list):
                text = json.dumps(value, separators=(",", ":"))
            else:
                text = str(value)
            data = text.encode()
            head = f"Content-Disposition: {disposition}"
        parts.append((head.encode(), data))
    digest = hashlib.sha256()
    for head_b, data_b in parts:
        digest.update(head_b)
        digest.update(data_b)
    boundary = f"computekit-{digest.hexdigest()[:32]}"
    sep = b"--" + boundary.encode()
    out = bytearray()
    for head_b, data_b in parts:
        out += sep + b"\r\n" + head_b + b"\r\n\r\n" + data_b + b"\r\n"
    out += sep + b"--\r\n"
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
