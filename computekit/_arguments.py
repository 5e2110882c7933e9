"""Arguments a public method does not take: an ``InvalidRequestError`` that names the fix, not a bare TypeError.

Every public method of the clients (and the module-level verbs) ends in ``**unknown: Never``: a type error for
mypy, and at run time, only when something was passed there, :func:`refuse`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._exceptions import InvalidRequestError

__all__ = ["FOREIGN", "refuse"]

# Arguments people bring from other SDKs, and what to do instead.
FOREIGN = {
    "n": "computekit returns one choice per call: call it n times (or pass extra_body={'n': ...} to a provider "
         "that takes it)",
    "model_name": "the model is the first argument: 'provider:model'",
    "max_output_tokens": "use max_tokens=",
    "max_completion_tokens": "use max_tokens= (computekit sends the field each model family expects)",
    "api_base": "use base_url=",
    "timeout": "set [providers.NAME] timeout in the config, or Client(timeout=...)",
}


def refuse(unknown: Mapping[str, Any], method: Callable[..., Any]) -> None:
    """Raise an ``InvalidRequestError`` for the arguments in ``unknown``, which ``method`` does not take.

    Raises:
        InvalidRequestError: Always (when ``unknown`` is not empty): each argument with a likely fix.
    """
    if not unknown:
        return
    import difflib
    import inspect

    takes = inspect.signature(method).parameters.values()
    known = [p.name for p in takes if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if name in FOREIGN:
            fix = FOREIGN[name]
        elif close:
            fix = f"did you mean {close[0]}=?"
        else:
            fix = f"it takes {', '.join(known)}" if known else "it takes no arguments"
        problems.append(f"{name}= ({fix})")
    raise InvalidRequestError(f"{method.__name__}() got an argument it does not take: {'; '.join(problems)}")
