"""computekit: one interface over hosted ML compute, with the exact cost of every call.

::

    import computekit as ck
    r = ck.complete("openai:gpt-4o-mini", "Write a haiku about GPUs")
    print(r.text, r.cost.total)
"""

# Errors, the sentinel and Money are imported now (an ``except ck.RateLimitError`` needs no more); the client, the
# result types and the verbs load on first use (PEP 562), so that ``import computekit`` stays cheap for a
# program that may not call anything (a CLI's --help, a worker that fails over to a cache).
import importlib
import sys
from typing import TYPE_CHECKING, Any

from ._constants import NOT_GIVEN
from ._exceptions import (
    AllTargetsFailedError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BackgroundFailedError,
    BackgroundTimeoutError,
    BadRequestError,
    BatchFailedError,
    BatchTimeoutError,
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
    LedgerError,
    MalformedResponseError,
    MissingAPIKeyError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    PredictionFailedError,
    PredictionTimeoutError,
    ProviderError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    StructuredOutputError,
    TrainingDataError,
    UnsafeURLError,
    UnsupportedCapabilityError,
    WebhookVerificationError,
)
from ._money import Money
from ._version import __version__

if TYPE_CHECKING:
    from ._background import BackgroundResponse
    from ._background_client import AsyncBackgroundResponses, BackgroundResponses
    from ._batch_client import AsyncBatches, Batches
    from ._budget import BudgetStatus
    from ._client import AsyncClient, AsyncPredictionStream, AsyncStream, Client, PredictionStream, Stream
    from ._defaults import (
        abatch,
        acomplete,
        aembed,
        afinetune,
        apredict,
        arerank,
        astream,
        batch,
        complete,
        embed,
        finetune,
        ledger,
        predict,
        rerank,
        stream,
    )
    from ._finetune_client import AsyncFineTunes, FineTunes
    from ._instrument import instrument
    from ._predictions import AsyncPredictions, Predictions
    from ._tags import tags
    from ._types import (
        Attempt,
        BatchJob,
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
    from .pricing import UnknownPriceWarning

_LAZY: dict[str, str] = {
    "BackgroundResponse": "._background",
    "AsyncBackgroundResponses": "._background_client",
    "BackgroundResponses": "._background_client",
    "AsyncBatches": "._batch_client",
    "Batches": "._batch_client",
    "BudgetStatus": "._budget",
    "AsyncClient": "._client",
    "AsyncPredictionStream": "._client",
    "AsyncStream": "._client",
    "Client": "._client",
    "AsyncFineTunes": "._finetune_client",
    "FineTunes": "._finetune_client",
    "AsyncPredictions": "._predictions",
    "Predictions": "._predictions",
    "PredictionStream": "._client",
    "Stream": "._client",
    "abatch": "._defaults",
    "acomplete": "._defaults",
    "batch": "._defaults",
    "aembed": "._defaults",
    "afinetune": "._defaults",
    "apredict": "._defaults",
    "arerank": "._defaults",
    "astream": "._defaults",
    "complete": "._defaults",
    "embed": "._defaults",
    "finetune": "._defaults",
    "ledger": "._defaults",
    "predict": "._defaults",
    "rerank": "._defaults",
    "stream": "._defaults",
    "Attempt": "._types",
    "BatchJob": "._types",
    "Chunk": "._types",
    "Completion": "._types",
    "Cost": "._types",
    "CostLine": "._types",
    "Embeddings": "._types",
    "FineTuneCheckpoint": "._types",
    "FineTuneEvent": "._types",
    "FineTuneJob": "._types",
    "ImagePart": "._types",
    "Message": "._types",
    "Prediction": "._types",
    "PriceSource": "._types",
    "RerankHit": "._types",
    "Reranking": "._types",
    "TextPart": "._types",
    "ToolCall": "._types",
    "Usage": "._types",
    "UnknownPriceWarning": ".pricing",
    "instrument": "._instrument",
    "tags": "._tags",
}

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AllTargetsFailedError",
    "AsyncBackgroundResponses",
    "AsyncBatches",
    "AsyncClient",
    "AsyncFineTunes",
    "AsyncPredictionStream",
    "AsyncPredictions",
    "AsyncStream",
    "Attempt",
    "AuthenticationError",
    "BackgroundFailedError",
    "BackgroundResponse",
    "BackgroundResponses",
    "BackgroundTimeoutError",
    "BadRequestError",
    "BatchFailedError",
    "BatchJob",
    "BatchTimeoutError",
    "Batches",
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
    "FineTunes",
    "ImagePart",
    "InputValidationError",
    "InvalidRequestError",
    "LedgerError",
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
    "Predictions",
    "PriceSource",
    "ProviderError",
    "RateLimitError",
    "RerankHit",
    "Reranking",
    "ResponseTooLargeError",
    "ServerError",
    "Stream",
    "StructuredOutputError",
    "TextPart",
    "ToolCall",
    "TrainingDataError",
    "UnknownPriceWarning",
    "UnsafeURLError",
    "UnsupportedCapabilityError",
    "Usage",
    "WebhookVerificationError",
    "__version__",
    "abatch",
    "acomplete",
    "aembed",
    "afinetune",
    "apredict",
    "arerank",
    "astream",
    "batch",
    "complete",
    "embed",
    "finetune",
    "instrument",
    "ledger",
    "predict",
    "rerank",
    "stream",
    "tags",
]



def _show_as_public(obj: Any) -> Any:
    # Public classes show as ``computekit.X`` in tracebacks and reprs, not ``computekit._module.X`` (pickle finds
    # them there too). Pydantic models and dataclasses keep their module: they resolve their annotations in it.
    if isinstance(obj, type) and not hasattr(obj, "__pydantic_fields__") and not hasattr(obj, "__dataclass_fields__"):
        obj.__module__ = __name__
    return obj


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'computekit' has no attribute {name!r}")
    if name == "ledger":
        # The package computekit.ledger, callable (``ck.ledger()``: the module-level client's ledger). Importing
        # the module-level clients imports it too, and Python binds it here as it does every subpackage.
        importlib.import_module(module, __name__)
        return sys.modules[__name__ + ".ledger"]
    value = _show_as_public(getattr(importlib.import_module(module, __name__), name))
    globals()[name] = value  # looked up once: later accesses are plain module attributes
    # What that import loaded besides shows as public too: ``type(client.predictions)`` is
    # ``computekit.Predictions`` once ``ck.Client`` has been used, though ``ck.Predictions`` never was.
    for other, where in _LAZY.items():
        loaded = sys.modules.get(__name__ + where)
        if other not in globals() and loaded is not None and hasattr(loaded, other):
            globals()[other] = _show_as_public(getattr(loaded, other))
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


for _name in __all__:
    if _name not in _LAZY:
        _show_as_public(globals()[_name])
del _name
