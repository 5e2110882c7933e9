"""Tags: labels stored with every ledger row, given per call (``tags=``) or for a block of code (:func:`tags`).

The block's tags live in a :class:`~contextvars.ContextVar`, so each thread and each asyncio task sees its own:
a task started inside a ``with ck.tags(...)`` block keeps the tags it started with, and two threads tagging
different customers never mix. Every call computekit records (its own clients' and an instrumented vendor SDK's)
merges them under the call's own ``tags=``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from ._exceptions import InvalidRequestError

__all__ = ["active_tags", "check_tags", "tags"]

_F = TypeVar("_F", bound=Callable[..., Any])

_ACTIVE: ContextVar[Mapping[str, str] | None] = ContextVar("computekit_tags", default=None)


def _valid(tags: Mapping[str, str] | None) -> Mapping[str, str] | None:
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise InvalidRequestError(f"tags must be a dict of strings, e.g. tags={{'feature': 'search'}}, "
                                  f"not {type(tags).__name__}")
    for name, value in tags.items():
        if not isinstance(name, str) or not name:
            raise InvalidRequestError(f"tag names must be non-empty strings, not {name!r}")
        if not isinstance(value, str):
            raise InvalidRequestError(f"tag {name!r} must have a string value (reports group on it), "
                                      f"not {type(value).__name__}: write str(value)")
        for text in (name, value):
            if not _storable(text):
                raise InvalidRequestError(f"tag {name!r}: {text!r} cannot be stored in a ledger (a NUL character or "
                                          "a lone surrogate, which PostgreSQL refuses): clean it before tagging")
    return tags


def _storable(text: str) -> bool:
    """Whether every ledger can store ``text``: valid Unicode (no lone surrogate) without NUL, which PostgreSQL's
    ``jsonb`` refuses (the row of a call already billed would be lost)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def active_tags() -> Mapping[str, str] | None:
    """The tags of the enclosing :func:`tags` blocks (inner ones win), ``None`` outside any."""
    return _ACTIVE.get()


def check_tags(tags: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """A call's tags: the enclosing :func:`tags` blocks' merged under ``tags`` (the call's own win), if they can
    be stored and grouped on (``report(by="tag:NAME")``): a mapping of non-empty string names to string values.

    Raises:
        InvalidRequestError: ``tags`` is not such a mapping, or a name or value holds what no ledger can store (a
            NUL character, a lone surrogate), raised before any HTTP.
    """
    own = _valid(tags)
    ambient = _ACTIVE.get()
    if not ambient:
        return own
    if not own:
        return ambient
    return {**ambient, **own}


class _Tags:
    """What :func:`tags` returns: a context manager (sync and async) and a decorator."""

    __slots__ = ("_tags", "_tokens")

    def __init__(self, values: Mapping[str, str]) -> None:
        self._tags = dict(values)
        self._tokens: list[Any] = []

    def __repr__(self) -> str:
        return f"computekit.tags({', '.join(f'{k}={v!r}' for k, v in self._tags.items())})"

    def __enter__(self) -> dict[str, str]:
        merged = {**(_ACTIVE.get() or {}), **self._tags}
        self._tokens.append(_ACTIVE.set(merged))
        return merged

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._tokens.pop())

    async def __aenter__(self) -> dict[str, str]:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def __call__(self, func: _F) -> _F:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with _Tags(self._tags):
                    return await func(*args, **kwargs)
            return cast(_F, run_async)
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            # A generator's body runs later, one step at a time, outside the block: tagging it here would tag
            # nothing (or leak the tags into the caller between steps).
            raise InvalidRequestError("computekit.tags() cannot decorate a generator: use `with ck.tags(...):` "
                                      "inside it")

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _Tags(self._tags):
                return func(*args, **kwargs)
        return cast(_F, run)


def tags(**values: str) -> _Tags:
    """Tag every call made inside a block or a function: its ledger rows carry these tags.

    Use it as a context manager (``with`` or ``async with``) or as a decorator (of a function or a coroutine
    function). Blocks nest (an inner block's value wins for the same name), and a call's own ``tags=`` wins over
    both. The tags follow the code, not the client: they are held in a context variable, so each thread and each
    asyncio task sees the tags of the block it runs in. Calls of an instrumented vendor SDK client
    (:func:`computekit.instrument`) get them too::

        with ck.tags(feature="search", customer="acme"):
            ck.complete("openai:gpt-4o-mini", "hi")

        @ck.tags(feature="summaries")
        def summarise(text: str) -> str: ...

    Args:
        **values: Tag names and their string values.

    Returns:
        A context manager that is also a decorator.

    Raises:
        InvalidRequestError: A value is not a string, holds what no ledger can store (a NUL character, a lone
            surrogate), or no tag is given.
    """
    if not values:
        raise InvalidRequestError("computekit.tags() needs at least one tag, e.g. ck.tags(feature='search')")
    _valid(values)
    return _Tags(values)

