"""Model ids and targets: ``"provider:model"`` split, and the adapter + model a call is sent to.

A leaf module (the adapter appears only as a type), so every layer can name a target without importing the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._exceptions import InvalidRequestError

if TYPE_CHECKING:
    from .adapters._base import Adapter

__all__ = ["Target", "split_model_id"]


@dataclass(frozen=True, slots=True)
class Target:
    """One resolved target: the adapter that serves it and the model id at the provider."""

    adapter: Adapter
    model: str

    @property
    def provider(self) -> str:
        return self.adapter.provider


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogate): what can be sent, and stored in any ledger."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def split_model_id(model_id: str) -> tuple[str, str]:
    """``"provider:model"`` -> ``("provider", "model")``, split at the first colon.

    Raises:
        InvalidRequestError: It is not a string, there is no colon, either side is empty or has spaces around
            it, or it holds a control character (a NUL: no ledger can store its row) or a lone surrogate.
    """
    if not isinstance(model_id, str):
        raise InvalidRequestError(f"a model id is a 'provider:model' string (e.g. 'openai:gpt-4o-mini'), not "
                                  f"{type(model_id).__name__}")
    provider, sep, model = model_id.partition(":")
    if (not sep or not provider or not model or not _encodable(model_id) or provider != provider.strip()
            or model != model.strip() or any(c < " " or c == "\x7f" for c in model_id)):
        # Spaces or a line break around a name (read from a file or a variable) would reach the provider, and
        # escape a budget scoped to the model as written.
        raise InvalidRequestError(
            f"{model_id!r} is not a model id: write 'provider:model' (e.g. 'openai:gpt-4o-mini'), "
            "or name a route defined under [routes] in computekit.toml"
        )
    return provider, model
