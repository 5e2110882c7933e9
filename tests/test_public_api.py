"""The public surface: ``computekit.__all__`` is pinned, and every name in it is importable."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import computekit as ck

EXPECTED = sorted([
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
    "Money",
    "MissingAPIKeyError",
    "NOT_GIVEN",
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
])


def test_all_is_pinned() -> None:
    assert sorted(ck.__all__) == EXPECTED
    assert len(set(ck.__all__)) == len(ck.__all__), "duplicate names in __all__"


def test_every_public_name_is_importable() -> None:
    ns: dict[str, object] = {}
    exec("from computekit import *", ns)  # noqa: S102  (the star import is the point of the test)
    for name in EXPECTED:
        assert getattr(ck, name) is not None, name
        if name != "__version__":
            assert ns[name] is getattr(ck, name), name


def test_version_matches_distribution_metadata() -> None:
    from importlib.metadata import version

    assert ck.__version__ == version("computekit")


def test_error_tree_shape() -> None:
    assert issubclass(ck.MissingAPIKeyError, ck.ConfigError)
    assert issubclass(ck.InvalidRequestError, ValueError)
    for cls in (ck.ConfigError, ck.InvalidRequestError, ck.UnsupportedCapabilityError, ck.BudgetExceededError,
                ck.LedgerError, ck.ProviderError):
        assert issubclass(cls, ck.ComputeKitError)
    for cls in (ck.BadRequestError, ck.AuthenticationError, ck.PermissionDeniedError, ck.NotFoundError,
                ck.ConflictError, ck.RateLimitError, ck.ServerError):
        assert issubclass(cls, ck.APIStatusError)
    assert issubclass(ck.ContextWindowExceededError, ck.BadRequestError)
    assert issubclass(ck.ContentFilteredError, ck.BadRequestError)
    assert issubclass(ck.OverloadedError, ck.ServerError)
    for cls in (ck.APIStatusError, ck.APITimeoutError, ck.APIConnectionError, ck.MalformedResponseError):
        assert issubclass(cls, ck.ProviderError)
    assert issubclass(ck.APITimeoutError, ck.APIConnectionError)  # as in openai-python
    assert issubclass(ck.UnknownPriceWarning, UserWarning)
    assert issubclass(ck.WebhookVerificationError, ck.ComputeKitError)
    assert not issubclass(ck.WebhookVerificationError, ck.ProviderError)


def test_import_is_lazy() -> None:
    """``import computekit`` loads no HTTP client, price table, vendor SDK, adapter module, database driver, plotting,
    tokenizer or tracing library."""
    code = (
        "import sys, computekit\n"
        "heavy = ['httpx', 'genai_prices', 'openai', 'cohere', 'replicate', 'tenacity', 'rich', 'typer',\n"
        "         'computekit.adapters.openai', 'computekit.webhooks', 'computekit._outputs',\n"
        "         'psycopg', 'matplotlib', 'pandas', 'tiktoken', 'opentelemetry', 'urllib3', 'aiohttp',\n"
        "         'computekit.ledger._postgres', 'computekit.ledger._plot', 'botocore',\n"
        "         'computekit.adapters.bedrock', 'computekit.adapters.gemini', 'computekit.adapters.vertex',\n"
        "         'google', 'google.auth']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


TESTING_EXPECTED = sorted([
    "Fail",
    "FakeCall",
    "FakeProvider",
    "LeakedSecretError",
    "Reply",
    "Run",
    "ScriptExhaustedError",
    "Scrubber",
    "Spend",
    "cassette_config",
    "scan",
])


def test_testing_all_is_pinned() -> None:
    """``computekit.testing`` is its own public door (not re-exported by ``computekit``)."""
    import computekit.testing as ckt

    assert sorted(ckt.__all__) == TESTING_EXPECTED
    for name in ckt.__all__:
        assert getattr(ckt, name) is not None
    assert not set(ckt.__all__) & set(ck.__all__)


def test_import_does_not_load_the_testing_tools() -> None:
    code = ("import sys, computekit\n"
            "print(any(m.startswith('computekit.testing') or m in ('vcr', 'pytest') for m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lifecycle_classes_show_as_public_names() -> None:
    """``client.predictions`` / ``client.finetunes`` show as ``computekit.Name`` (the names themselves never
    looked up), for both clients."""
    code = (
        "import computekit as ck\n"
        "import asyncio\n"
        "c = ck.Client(ledger='none')\n"
        "a = ck.AsyncClient(ledger='none')\n"
        "print(*(f'{type(x).__module__}.{type(x).__qualname__}' for x in\n"
        "        (c.predictions, c.finetunes, c.responses, a.predictions, a.finetunes, a.responses)))\n"
        "c.close(); asyncio.run(a.aclose())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["computekit.Predictions", "computekit.FineTunes", "computekit.BackgroundResponses",
                                  "computekit.AsyncPredictions", "computekit.AsyncFineTunes",
                                  "computekit.AsyncBackgroundResponses"]
    assert ck.Predictions.__module__ == ck.FineTunes.__module__ == "computekit"


def test_ck_ledger_is_the_default_clients_ledger_and_still_the_ledger_package() -> None:
    """``ck.ledger()`` (as the docs write it) whichever was loaded first, the module-level
    verbs or only a ``Client``; ``computekit.ledger`` keeps its types and imports."""
    for first in ("ck.complete", "ck.Client"):
        code = (
            "import computekit as ck\n"
            f"{first}\n"
            "import computekit.ledger as package\n"
            "from computekit import _defaults\n"
            "from computekit.ledger import Ledger, SQLiteLedger\n"
            "assert package is ck.ledger and ck.ledger.SQLiteLedger is SQLiteLedger\n"
            "lg = ck.ledger()\n"
            "assert isinstance(lg, Ledger) and lg is _defaults.default_client().ledger and lg is ck.ledger()\n"
            "assert lg.report(by='tag:customer').total == 0\n"
        )
        env = {**os.environ, "COMPUTEKIT_LEDGER": "none"}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120, cwd=tempfile.gettempdir())
