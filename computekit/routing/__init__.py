"""Routing: the order of a call's targets, cooldowns of failing targets, and what each failure means."""

from ._router import Action, Router

__all__ = ["Action", "Router"]
