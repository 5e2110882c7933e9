"""Azure OpenAI: OpenAI's wire format on a deployment URL, with an ``api-key`` header and an ``api-version``.

``azure:gpt-4o-mini`` calls the deployment named in ``[providers.azure] deployments = {"gpt-4o-mini" = "..."}``,
or a deployment with the model's own name when none is mapped. The base URL is the resource endpoint
(``https://RESOURCE.openai.azure.com``), from ``base_url`` or ``$AZURE_OPENAI_ENDPOINT``.

Fine-tuning uses OpenAI's shape on the resource (``/openai/files``, ``/openai/fine_tuning/jobs``, with the
``api-version``). The fine-tuned model (``gpt-4o-mini-2024-07-18.ft-...``) must be deployed before it answers, and
a deployed fine-tuned model bills hourly hosting on top of its tokens, whether it is used or not.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import Field

from .._exceptions import ConfigError
from ._base import Capabilities, base_url_from_env
from .openai import OpenAIWire, ResponsesSettings, configured_api, image_tokens

__all__ = ["AzureOpenAIAdapter", "AzureSettings"]

DEFAULT_API_VERSION: Final = "2024-10-21"
"""The newest generally-available data-plane API version when this adapter was written."""


class AzureSettings(ResponsesSettings):
    """``[providers.azure]``: the data-plane API version, which deployment serves which model, and further
    reasoning families."""

    api_version: str = Field(DEFAULT_API_VERSION, description="The api-version query parameter of every request.")
    deployments: dict[str, str] = Field(
        default_factory=dict, description="Model name -> deployment name (default: a deployment named as the model)."
    )


class AzureOpenAIAdapter(OpenAIWire):
    """Azure OpenAI (``azure:`` models). Keys: ``AZURE_OPENAI_API_KEY``; endpoint: ``AZURE_OPENAI_ENDPOINT``."""

    name = "azure"
    capabilities = Capabilities(
        complete=True, stream=True, tools=True, json_mode=True, embed=True, text_completion=True, finetune=True,
        batch=True,
    )
    key_env_vars = ("AZURE_OPENAI_API_KEY",)
    default_base_url = None
    table_provider = "azure"
    docs_url = "https://learn.microsoft.com/azure/ai-services/openai/reference"
    settings_model = AzureSettings
    options: AzureSettings

    @classmethod
    def defaults_for(cls, provider: str) -> tuple[str | None, tuple[str, ...], bool]:
        # Stripped like the vendors' other base-URL variables: a value set from a file ends in a newline.
        return base_url_from_env("AZURE_OPENAI_ENDPOINT"), cls.key_env_vars, True

    def media_tokens(self, part: Any, model: str) -> int | None:
        return image_tokens(part, model)  # OpenAI's models, OpenAI's published image rules

    def deployment(self, model: str) -> str:
        """The deployment that serves ``model``."""
        return self.options.deployments.get(model, model)

    def _resource(self) -> tuple[str, str]:
        """The resource's ``.../openai`` base URL, and the API version.

        Raises:
            ConfigError: No base URL is set.
        """
        base = self.settings.base_url.rstrip("/")
        if not base:
            raise ConfigError("azure: set base_url (https://RESOURCE.openai.azure.com) or $AZURE_OPENAI_ENDPOINT")
        if not base.endswith("/openai"):
            base += "/openai"
        return base, self.options.api_version

    def endpoint(self, path: str, model: str) -> str:
        base, version = self._resource()
        return f"{base}/deployments/{self.deployment(model)}/{path}?api-version={version}"

    def serves_responses(self) -> bool:
        return True

    def default_api(self, model: str) -> str:
        return configured_api(self.options, model)

    def responses_url(self, model: str) -> str:
        """Azure's Responses API is on the resource's v1 path, the deployment named in the body."""
        base, _ = self._resource()
        return f"{base}/v1/responses"

    def responses_model(self, model: str) -> str:
        return self.deployment(model)

    def finetune_url(self, path: str, query: str = "") -> str:
        """Fine-tuning and files live on the resource, not a deployment: ``{endpoint}/openai/{path}``."""
        base, version = self._resource()
        return f"{base}/{path}?api-version={version}" + (f"&{query}" if query else "")

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.require_key()}

    # Global batch: a line names the endpoint without the version prefix and its model is the batch
    # deployment's name (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/batch).
    batch_url_prefix = "/"

    def batch_body(self, req: Any) -> tuple[str, dict[str, Any]]:
        path, body = super().batch_body(req)
        body["model"] = self.deployment(req.model)
        return path, body

    def request_id(self, headers: Any) -> str | None:
        return headers.get("apim-request-id") or headers.get("x-request-id") or super().request_id(headers)
