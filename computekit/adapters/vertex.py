"""Vertex AI: Google's models (``publishers/google``) through Vertex AI, on the Gemini wire format.

The request and response bodies are the Gemini API's (:class:`~computekit.adapters.gemini.GeminiWire`); what
differs is here:

- **URL**: ``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/
  google/models/{model}:generateContent`` (``aiplatform.googleapis.com`` for the ``global`` location). The project
  comes from ``[providers.vertex] project``, else ``$GOOGLE_CLOUD_PROJECT``, else the Application Default
  Credentials' own project; the location from ``[providers.vertex] location``, else ``$GOOGLE_CLOUD_LOCATION``,
  else ``global`` (:class:`VertexSettings`). A configured ``base_url`` replaces the API root.
- **Credentials**: Application Default Credentials through ``google-auth`` (``pip install 'computekit[vertex]'``,
  imported on the first call, never at ``import computekit``), sent as ``Authorization: Bearer``; the token is
  cached and refreshed by google-auth shortly before it expires. Or an API key (Vertex AI *express mode*:
  ``api_key=`` or ``$GOOGLE_CLOUD_API_KEY``), sent in ``x-goog-api-key``; the URL then names no project.
- **Service tiers**: ``service_tier="flex"`` or ``"priority"`` is sent as the ``X-Vertex-AI-LLM-Shared-Request-Type``
  header; the tier that served the call is read from ``usageMetadata.trafficType`` (``ON_DEMAND_FLEX``,
  ``ON_DEMAND_PRIORITY``) and selects the price.
- **Labels**: ``extra_body={"labels": {...}}`` is passed through (Vertex attributes the billing to them).
- **Embeddings**: the text-embedding models' ``:predict`` (``instances[].content``), which reports the token count
  of each input (``statistics.token_count``): the cost is exact.

The refresh of an expired token is the one piece of I/O done outside computekit's transports: google-auth does it
(on its own urllib3 pool, synchronously, about once an hour); everything else is a plain request like any other
provider's.
"""

from __future__ import annotations

import collections
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from .._exceptions import APIConnectionError, AuthenticationError, ConfigError, MissingAPIKeyError
from .._types import Embeddings, Usage
from ._base import AdapterSettings, CompleteRequest, EmbedRequest, HTTPRequest, HTTPResponse, ProviderSettings
from .gemini import GeminiWire

__all__ = ["DEFAULT_LOCATION", "SCOPES", "TIER_HEADER", "VertexAdapter", "VertexSettings"]

DEFAULT_LOCATION: Final = "global"
"""The location used when neither config nor ``$GOOGLE_CLOUD_LOCATION`` names one (every current Gemini model is
served there, and flex and priority traffic only there)."""

SCOPES: Final = ("https://www.googleapis.com/auth/cloud-platform",)
"""The OAuth scope asked of Application Default Credentials."""

TIER_HEADER: Final = "x-vertex-ai-llm-shared-request-type"
"""The header that asks Vertex AI for flex or priority pay-as-you-go."""

_API_VERSION: Final = "v1"
_TOKENS_KEPT: Final = 4
"""Access tokens remembered (the current one and the last few), to mask a host's echo of one."""
_TRAFFIC_TIERS: Final = {"ON_DEMAND_FLEX": "flex", "ON_DEMAND_PRIORITY": "priority",
                         "PROVISIONED_THROUGHPUT": "provisioned"}
_PROJECT_ENV: Final = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
_LOCATION_ENV: Final = ("GOOGLE_CLOUD_LOCATION", "GOOGLE_CLOUD_REGION")
# A location is one lowercase DNS label: it is written into the endpoint's host name, so anything else
# ("evil.com/", "../") would send the access token to another host.
_LOCATION: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_GOOGLE_HOST: Final = re.compile(r"(?:[a-z0-9-]+-)?aiplatform\.googleapis\.com")
_LOCATION_RULE: Final = "a Vertex AI location is lowercase letters, digits and hyphens, such as us-central1 or global"


def _env(names: tuple[str, ...]) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


class VertexSettings(AdapterSettings):
    """``[providers.vertex]``: where Vertex AI calls go (each falls back to the environment, then a default)."""

    project: str | None = Field(
        None, description="Google Cloud project id; else $GOOGLE_CLOUD_PROJECT, else the credentials' own project."
    )
    location: str | None = Field(
        None, description="Vertex AI location (us-central1, europe-west4 ...); else $GOOGLE_CLOUD_LOCATION, else "
        "global."
    )

    @field_validator("location")
    @classmethod
    def _location_name(cls, value: str | None) -> str | None:
        if value and not _LOCATION.fullmatch(value):  # empty: not set
            raise ValueError(_LOCATION_RULE)
        return value


def _google_endpoint(url: str) -> bool:
    """Whether ``url`` is one of Google's own Vertex AI endpoints (``https://[LOCATION-]aiplatform.googleapis.com``)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.port is None and bool(_GOOGLE_HOST.fullmatch(parts.hostname or ""))


def _root(location: str) -> str:
    """The API root for ``location`` (the ``global`` endpoint has no location prefix)."""
    prefix = "" if location == "global" else f"{location}-"
    return f"https://{prefix}aiplatform.googleapis.com/{_API_VERSION}"


class VertexAdapter(GeminiWire):
    """Vertex AI (``vertex:`` models): ADC through google-auth, or an express-mode API key."""

    name = "vertex"
    key_env_vars = ("GOOGLE_CLOUD_API_KEY",)
    requires_key = False
    default_base_url = "https://aiplatform.googleapis.com/v1"
    table_provider = "google"
    docs_url = "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference"
    service_tier_in_body: ClassVar[bool] = False
    settings_model = VertexSettings
    options: VertexSettings

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.project: str | None = self.options.project or _env(_PROJECT_ENV)
        self.location: str = self.options.location or _env(_LOCATION_ENV) or DEFAULT_LOCATION
        self._credentials: Any = None
        self._lock = threading.Lock()
        self._tokens: collections.deque[SecretStr] = collections.deque(maxlen=_TOKENS_KEPT)

    # ----------------------------------------------------------------------------------------- URLs & auth

    def _root(self) -> str:
        configured = self.settings.base_url.rstrip("/")
        if configured == self.default_base_url:  # not configured: the location picks the host
            if not _LOCATION.fullmatch(self.location):
                shown = self.location if len(self.location) <= 64 else self.location[:64] + "..."
                source = next((f"${v}" for v in _LOCATION_ENV if os.environ.get(v) == self.location),
                              f"[providers.{self.provider}] location")
                raise ConfigError(f"{shown!r} from {source} is not a location: {_LOCATION_RULE} (it becomes part "
                                  "of the endpoint's host name)")
            return _root(self.location)
        return configured

    def url(self, path: str) -> str:
        """``{root}/{path}``: the root is the location's endpoint unless a ``base_url`` is configured (so that a
        regional endpoint is the provider's own origin, where the credential goes)."""
        return f"{self._root()}/{path}"

    @classmethod
    def own_endpoint(cls, provider: str, url: str) -> bool:
        return _google_endpoint(url)

    def without_key(self, headers: Mapping[str, str]) -> dict[str, str]:
        # An access token from Application Default Credentials is no configured key: dropped by name too.
        return {k: v for k, v in super().without_key(headers).items()
                if k.lower() not in ("authorization", "x-goog-api-key")}

    def model_url(self, model: str, method: str) -> str:
        if "/" in model:  # a full resource name (tuned model endpoints, other publishers)
            return f"{self._root()}/{model}:{method}"
        if self.settings.api_key is not None:  # express mode: no project in the URL
            return f"{self._root()}/publishers/google/models/{model}:{method}"
        project = self.project or self._adc_project()
        if not project:
            raise ConfigError(
                "vertex needs a Google Cloud project: set [providers.vertex] project = \"...\" or "
                "$GOOGLE_CLOUD_PROJECT (or use an express-mode API key in $GOOGLE_CLOUD_API_KEY)"
            )
        return (f"{self._root()}/projects/{project}/locations/{self.location}"
                f"/publishers/google/models/{model}:{method}")

    def auth_headers(self) -> dict[str, str]:
        """The express-mode key, else an access token of Application Default Credentials.

        Raises:
            MissingAPIKeyError: A per-call base URL that is not a Vertex AI endpoint of Google, without a key of
                its own: the credentials' access token is not sent there.
        """
        if self.settings.api_key is not None:
            return {"x-goog-api-key": self.settings.api_key.get_secret_value()}
        root = self._root()
        if not self.settings.ambient_credentials and not _google_endpoint(root):
            raise MissingAPIKeyError(self.provider, self.key_env_vars, (
                f"the Google Cloud credentials of {self.provider} are not sent to a per-call base_url off Google's "
                f"Vertex AI endpoints ({urlsplit(root).hostname}): configure it as [providers.{self.provider}] "
                "base_url, or pass api_key= (an express-mode key) with it"))
        return {"authorization": f"Bearer {self._token()}"}

    def renew_auth(self, http: HTTPRequest) -> None:
        # An access token lasts an hour: a retry after a long first try gets the current one (refreshed when it
        # has expired). An express-mode key never expires.
        if self.settings.api_key is None and "authorization" in http.headers:
            http.headers["authorization"] = f"Bearer {self._token()}"

    def tier_headers(self, service_tier: str | None) -> dict[str, str]:
        if service_tier is None or service_tier in ("default", "standard"):
            return {}
        if service_tier not in ("flex", "priority"):
            from .._exceptions import InvalidRequestError

            raise InvalidRequestError(f"vertex service_tier must be flex, priority or standard, not {service_tier!r}")
        return {TIER_HEADER: service_tier}

    def _google_auth(self) -> Any:
        try:
            import google.auth  # the [vertex] extra: loaded on the first Vertex call only
            import google.auth.transport.urllib3
        except ImportError:
            raise ConfigError(
                "vertex with Application Default Credentials needs google-auth: pip install 'computekit[vertex]' "
                "(or use an express-mode API key in $GOOGLE_CLOUD_API_KEY)"
            ) from None
        return google.auth

    def _load_credentials(self) -> Any:
        if self._credentials is None:
            auth = self._google_auth()
            try:
                creds, project = auth.default(scopes=list(SCOPES))
            except auth.exceptions.DefaultCredentialsError as e:
                # Like a missing key: a call with other targets goes on to the next one.
                raise MissingAPIKeyError(self.provider, self.key_env_vars, (
                    "no Google Cloud credentials found for vertex: run `gcloud auth application-default login`, "
                    "set $GOOGLE_APPLICATION_CREDENTIALS to a service-account file, or use an express-mode API key "
                    f"($GOOGLE_CLOUD_API_KEY). google-auth said: {e}"
                )) from e
            self._credentials = creds
            if self.project is None and project:
                self.project = project
        return self._credentials

    def _adc_project(self) -> str | None:
        with self._lock:
            self._load_credentials()
        return self.project

    def _token(self) -> str:
        with self._lock:
            creds = self._load_credentials()
            if not creds.valid:
                auth = self._google_auth()
                import urllib3

                try:
                    creds.refresh(auth.transport.urllib3.Request(urllib3.PoolManager()))
                except auth.exceptions.TransportError as e:
                    raise APIConnectionError(f"could not refresh the Google access token: {e}",
                                             provider=self.provider) from e
                except auth.exceptions.RefreshError as e:
                    raise AuthenticationError(f"Google refused to refresh the access token: {e}",
                                              provider=self.provider, status=401) from e
            token = creds.token
            if isinstance(token, str) and token and all(t.get_secret_value() != token for t in self._tokens):
                self._tokens.append(SecretStr(token))  # held masked: never in a repr
        if not isinstance(token, str) or not token:
            raise AuthenticationError("Google credentials gave no access token", provider=self.provider, status=401)
        return token

    def sent_secrets(self) -> list[str]:
        # The access tokens sent lately: a host may echo one.
        with self._lock:
            return [*super().sent_secrets(), *(t.get_secret_value() for t in self._tokens)]

    # ----------------------------------------------------------------------------------------- tiers

    def served_tier(self, req: CompleteRequest, usage: Mapping[str, Any] | None) -> str | None:
        traffic = usage.get("trafficType") if usage else None
        if isinstance(traffic, str):
            return _TRAFFIC_TIERS.get(traffic, "standard" if traffic == "ON_DEMAND" else traffic.lower())
        return req.service_tier

    # ----------------------------------------------------------------------------------------- embed

    def build_embed(self, req: EmbedRequest) -> HTTPRequest:
        """The text-embedding models' ``:predict`` (one instance per input)."""
        params: dict[str, Any] = {}
        if req.dimensions is not None:
            params["outputDimensionality"] = req.dimensions
        extra = dict(req.extra)
        task = extra.pop("task_type", None)
        instances = [{"content": t, **({"task_type": task} if task else {})} for t in req.inputs]
        body: dict[str, Any] = {"instances": instances}
        if params or extra.get("parameters"):
            body["parameters"] = {**params, **(extra.pop("parameters", None) or {})}
        body.update(extra)
        return HTTPRequest("POST", self.model_url(req.model, "predict"), self.headers(), json=body)

    def parse_embed(self, req: EmbedRequest, resp: HTTPResponse) -> Embeddings:
        data = self.json_object(resp, req.model)
        predictions = data.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(req.inputs):
            raise self.malformed(resp, req.model, "not one prediction per input")
        vectors: list[list[float]] = []
        tokens = 0
        counted = True
        for p in predictions:
            emb = p.get("embeddings") if isinstance(p, dict) else None
            values = emb.get("values") if isinstance(emb, dict) else None
            if not isinstance(values, list):
                raise self.malformed(resp, req.model, "a prediction has no embeddings.values")
            vectors.append(list(values))
            stats = emb.get("statistics") if isinstance(emb, dict) else None
            count = stats.get("token_count") if isinstance(stats, dict) else None
            if isinstance(count, int | float) and not isinstance(count, bool):
                tokens += int(count)
            else:
                counted = False
        result = Embeddings(provider=self.provider, model=req.model, vectors=vectors,
                            usage=Usage(input_tokens=tokens), request_id=self.request_id(resp.headers), raw=data)
        result._usage_reported = counted
        return result

    def unsupported_reason(self, capability: str) -> str | None:
        if capability == "finetune":
            return "Vertex AI tuning jobs are not offered through computekit"
        return super().unsupported_reason(capability)
