"""Provider adapters: one module per provider, and the registry that finds them."""

from ._base import (
    Adapter,
    AdapterSettings,
    Capabilities,
    CompleteRequest,
    EmbedRequest,
    HTTPRequest,
    HTTPResponse,
    ProviderSettings,
    SSEEvent,
    StreamDecoder,
)
from ._registry import ENTRY_POINT_GROUP, adapter_class, available

__all__ = [
    "ENTRY_POINT_GROUP",
    "Adapter",
    "AdapterSettings",
    "Capabilities",
    "CompleteRequest",
    "EmbedRequest",
    "HTTPRequest",
    "HTTPResponse",
    "ProviderSettings",
    "SSEEvent",
    "StreamDecoder",
    "adapter_class",
    "available",
]
