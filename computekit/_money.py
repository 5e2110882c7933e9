"""Money as people read it: exact decimals, never in exponent form.

``str(Decimal("0.00000008"))`` is ``"8E-8"``: exact, but not how anyone reads a price. :class:`Money` is a
``Decimal`` (same value, same arithmetic, equal and hashing alike) whose ``str()`` and empty ``format()`` are
plain decimal notation, and :func:`plain` writes any ``Decimal`` that way, for exports and messages. Nothing is
rounded: ``Decimal(plain(d)) == d``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = ["Money", "money", "plain"]


class Money(Decimal):
    """A ``Decimal`` amount of money that prints in plain decimal notation (``0.00000008``, never ``8E-8``).

    Arithmetic gives plain ``Decimal`` results, as for any ``Decimal`` subclass; :func:`plain` writes those.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return format(self, "f")

    def __format__(self, spec: str, _context: Any = None) -> str:
        return super().__format__(spec or "f")


def money(value: Decimal | None) -> Money | None:
    """``value`` as :class:`Money` (``None`` stays ``None``: an unknown amount is never 0)."""
    if value is None or isinstance(value, Money):
        return value
    return Money(value)


def plain(value: Decimal) -> str:
    """The exact value in plain decimal notation: ``0.00000008``, ``1.5``, ``12``."""
    return format(value, "f")
