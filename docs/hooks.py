"""MkDocs hook: docstrings written with Sphinx roles (:meth:`Client.stream`) render as code (`Client.stream`).

mkdocstrings renders Google-style docstrings as Markdown, where a role is not markup: ":meth:" would show
as text before the code span. The roles stay in the source (they read well in an editor and in help());
this drops the role name from the rendered page, and reST's ``::`` literal-block
marker. tests/test_docs.py builds the site and checks none is left.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|mod|exc|data|obj|const):<code>~?\.?([^<]*)</code>")


_LITERAL_MARK = re.compile(r"<p>::</p>\s*")  # reST's "::" before a literal block: the block renders as code anyway


def on_page_content(html: str, **kwargs: Any) -> str:
    html = _LITERAL_MARK.sub("", html).replace("::</p>", ":</p>")
    return _ROLE.sub(r"<code>\1</code>", html)
