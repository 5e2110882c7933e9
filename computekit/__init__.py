"""computekit: one interface over hosted ML compute, with the exact cost of every call.

::

    import computekit as ck
    r = ck.complete("openai:gpt-4o-mini", "Write a haiku about GPUs")
    print(r.text, r.cost.total)
"""

from ._client import AsyncClient, AsyncStream, Client, Stream
from ._constants import NOT_GIVEN
from ._defaults import acomplete, aembed, arerank, astream, complete, embed, rerank, stream
from ._exceptions import (
    AllTargetsFailedError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ComputeKitError,
    ConfigError,
    ConflictError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    MalformedResponseError,
    MissingAPIKeyError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    UnsupportedCapabilityError,
)
from ._types import (
    Attempt,
    Chunk,
    Completion,
    Cost,
    CostLine,
    Embeddings,
    ImagePart,
    Message,
    PriceSource,
    RerankHit,
    Reranking,
    TextPart,
    ToolCall,
    Usage,
)
from .pricing import UnknownPriceWarning

__version__ = "0.1.0"

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTargetsFailedError",
    "AsyncClient",
    "AsyncStream",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "Chunk",
    "Client",
    "Completion",
    "ComputeKitError",
    "ConfigError",
    "ConflictError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "Cost",
    "CostLine",
    "Embeddings",
    "ImagePart",
    "InvalidRequestError",
    "MalformedResponseError",
    "Message",
    "MissingAPIKeyError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "PriceSource",
    "ProviderError",
    "RateLimitError",
    "RerankHit",
    "Reranking",
    "ServerError",
    "Stream",
    "TextPart",
    "ToolCall",
    "UnknownPriceWarning",
    "UnsupportedCapabilityError",
    "Usage",
    "__version__",
    "acomplete",
    "aembed",
    "arerank",
    "astream",
    "complete",
    "embed",
    "rerank",
    "stream",
]
