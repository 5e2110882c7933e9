"""computekit: one interface over hosted ML compute, with the exact cost of every call.

::

    import computekit as ck
    r = ck.complete("openai:gpt-4o-mini", "Write a haiku about GPUs")
    print(r.text, r.cost.total)
"""

from ._budget import BudgetStatus
from ._client import AsyncClient, AsyncPredictionStream, AsyncStream, Client, PredictionStream, Stream
from ._constants import NOT_GIVEN
from ._defaults import (
    acomplete,
    aembed,
    afinetune,
    apredict,
    arerank,
    astream,
    complete,
    embed,
    finetune,
    predict,
    rerank,
    stream,
)
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
    FineTuneFailedError,
    FineTuneTimeoutError,
    InputValidationError,
    InvalidRequestError,
    MalformedResponseError,
    MissingAPIKeyError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    PredictionFailedError,
    PredictionTimeoutError,
    ProviderError,
    RateLimitError,
    ServerError,
    TrainingDataError,
    UnsupportedCapabilityError,
    WebhookVerificationError,
)
from ._money import Money
from ._types import (
    Attempt,
    Chunk,
    Completion,
    Cost,
    CostLine,
    Embeddings,
    FineTuneCheckpoint,
    FineTuneEvent,
    FineTuneJob,
    ImagePart,
    Message,
    Prediction,
    PriceSource,
    RerankHit,
    Reranking,
    TextPart,
    ToolCall,
    Usage,
)
from ._version import __version__
from .pricing import UnknownPriceWarning

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTargetsFailedError",
    "AsyncClient",
    "AsyncPredictionStream",
    "AsyncStream",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "BudgetStatus",
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
    "FineTuneCheckpoint",
    "FineTuneEvent",
    "FineTuneFailedError",
    "FineTuneJob",
    "FineTuneTimeoutError",
    "ImagePart",
    "InputValidationError",
    "InvalidRequestError",
    "MalformedResponseError",
    "Message",
    "MissingAPIKeyError",
    "Money",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "Prediction",
    "PredictionFailedError",
    "PredictionStream",
    "PredictionTimeoutError",
    "PriceSource",
    "ProviderError",
    "RateLimitError",
    "RerankHit",
    "Reranking",
    "ServerError",
    "Stream",
    "TextPart",
    "ToolCall",
    "TrainingDataError",
    "UnknownPriceWarning",
    "UnsupportedCapabilityError",
    "Usage",
    "WebhookVerificationError",
    "__version__",
    "acomplete",
    "aembed",
    "afinetune",
    "apredict",
    "arerank",
    "astream",
    "complete",
    "embed",
    "finetune",
    "predict",
    "rerank",
    "stream",
]


def _show_as_public() -> None:
    # Public classes show as ``computekit.X`` in tracebacks and reprs, not ``computekit._module.X`` (pickle finds
    # them there too). Pydantic models and dataclasses keep their module: they resolve their annotations in it.
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) and not hasattr(obj, "__pydantic_fields__") and not hasattr(
            obj, "__dataclass_fields__"
        ):
            obj.__module__ = __name__


_show_as_public()
del _show_as_public
