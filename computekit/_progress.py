"""The progress line of a prediction being waited for (``predict(..., progress=True)``, ``p.wait(progress=True)``).

One line, redrawn in place on a terminal: the model, its status, the time waited and the latest log line (the
step a model is at: ``step 12/50``, a percentage bar ...). When the run ends the line is left with its final
status and cost. rich loads on first use, so ``import computekit`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from ._types import Cost


class Followed(Protocol):
    """What the line shows of a run being waited for (a prediction, a background response)."""

    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def done(self) -> bool: ...
    @property
    def cost(self) -> Cost | None: ...

__all__ = ["PredictionProgress", "describe"]

_LOG_CHARS = 80
"""The longest log line shown (the rest is cut): the line must fit a terminal."""


def describe(prediction: Followed, elapsed: float, label: str | None = None) -> str:
    """The progress line for ``prediction`` after ``elapsed`` seconds (pure: the display draws this)."""
    parts = [label or f"{prediction.provider}:{prediction.model}", prediction.status, f"{elapsed:.1f}s"]
    if prediction.done and prediction.cost is not None:
        total = prediction.cost.total
        parts.append(f"${total:f}" if total is not None else "cost unknown")
    log = last_log_line(getattr(prediction, "logs", ""))  # a background response has none
    if log and not prediction.done:
        parts.append(log)
    return "  ".join(parts)


def last_log_line(logs: str) -> str:
    """The last non-empty log line, shortened to fit (progress bars redraw with ``\\r``: the last frame)."""
    for line in reversed(logs.replace("\r", "\n").splitlines()):
        line = line.strip()
        if line:
            return line if len(line) <= _LOG_CHARS else line[: _LOG_CHARS - 1] + "…"
    return ""


class PredictionProgress:
    """Draws :func:`describe` on a console, redrawn in place while the prediction runs.

    Args:
        target: ``True`` (a console on stderr, so stdout keeps the output), or a ``rich.console.Console``.
        clock: Monotonic seconds (the client's router clock: tests inject a fake one).
        label: What the line names (``replicate:owner/name``).
    """

    def __init__(self, target: bool | Console, clock: Callable[[], float], label: str) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self._text = Text
        self.console = target if isinstance(target, Console) else Console(stderr=True)
        self.clock = clock
        self.label = label
        self.started = clock()
        self.live: Any = Live(Text(label), console=self.console, auto_refresh=False, transient=False)
        self.live.start()
        self.closed = False

    def update(self, prediction: Followed) -> None:
        """Redraw the line for the prediction's latest state."""
        line = describe(prediction, self.clock() - self.started, self.label)
        self.live.update(self._text(line), refresh=True)

    def close(self, prediction: Followed) -> None:
        """Leave the final line (status, time, cost) and release the terminal."""
        if self.closed:
            return
        self.closed = True
        self.update(prediction)
        self.live.stop()
