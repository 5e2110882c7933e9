"""Optional packages (vendor SDKs, httpx, matplotlib ...): imported on first use, with the extra that brings them.

``import computekit`` never imports them; a caller who asks for one of their features without the package gets
a :class:`ModuleNotFoundError` that names the ``pip install`` to run.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose``.

    Raises:
        ModuleNotFoundError: It is not installed; the message says ``pip install 'computekit[extra]'``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or module.split(".")[0] != e.name.split(".")[0]:
            raise  # the package is there but broken: its own error says more
        raise ModuleNotFoundError(
            f"{purpose} needs the {module.split('.')[0]!r} package: pip install 'computekit[{extra}]'",
            name=e.name,
        ) from e
