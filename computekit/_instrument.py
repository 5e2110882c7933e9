"""``ck.instrument(client)``: computekit's ledger, prices, budgets and tags for a vendor SDK client, unchanged.

The metering itself is :mod:`computekit._instrument_meter`, loaded on the first call.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ._core import Core
from ._exceptions import InvalidRequestError

__all__ = ["instrument"]

_C = TypeVar("_C")


def instrument(client: _C, *, using: Any = None) -> _C:
    """Meter a vendor SDK client: every call it makes is priced, recorded in computekit's ledger (with the
    tags of the enclosing :func:`computekit.tags` blocks) and held to computekit's budgets, its code unchanged.

    Supported: ``openai.OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``, ``AsyncAzureOpenAI``, ``anthropic.Anthropic``,
    ``AsyncAnthropic``, ``cohere.ClientV2``, ``AsyncClientV2`` and ``replicate.Client`` (a Replicate run is
    recorded once, priced from its GPU time, when the client sees it end). The hook is the SDK's HTTP transport, so the
    SDK's own retries are each recorded as an attempt. Streams reach the application as they arrive and are
    priced when they end (a stream it stops reading is recorded as ``canceled``). Endpoints computekit does not
    price pass through untouched, recorded with an unknown cost where they bill. Instrumenting a client twice
    with the same ``using=`` changes nothing.

    Args:
        client: The SDK client. It is changed in place and returned.
        using: The :class:`computekit.Client` (or ``AsyncClient``) whose configuration, ledger and budgets apply;
            default: the client behind ``ck.complete()`` (``computekit.toml`` and the environment).

    Returns:
        ``client`` itself, now metered.

    Raises:
        InvalidRequestError: ``client`` is not a client of a supported SDK, or its HTTP client is metered already
            with another ``using=`` (or for another SDK's client that shares it).
    """
    if using is None:
        from ._defaults import default_client

        using = default_client()
    core = getattr(using, "_core", None)
    if not isinstance(core, Core):
        raise InvalidRequestError(f"using= must be a computekit.Client or AsyncClient, not {type(using).__name__}")
    # The metering (and what it knows of each SDK) loads on first use: `import computekit` does not pay for it.
    from ._instrument_meter import meter

    meter(client, core)
    return client
