"""MkDocs hook: docstrings written with Sphinx roles (:meth:`Client.stream`) render as code (`Client.stream`).

mkdocstrings renders Google-style docstrings as Markdown, where a role is not markup: ":meth:" would show
as text before the code span. The roles stay in the source (they read well in an editor and in help());
this drops the role name from the rendered page. tests/test_docs.py builds the site and checks none is left.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|mod|exc|data|obj|const):<code>~?\.?([^<]*)</code>")


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub(r"<code>\1</code>", html)
