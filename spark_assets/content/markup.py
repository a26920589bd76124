"""Checks on an article's finished HTML that a reader would notice: markup shown as text.

A fragment's `<strong>` escaped on its way into the page reads "&lt;strong&gt;If you smell gas" in the source and
"<strong>If you smell gas" on screen; an entity escaped twice (`&amp;lt;`, `&amp;amp;`) shows its spelling. Prose
that merely holds a "<" ("&lt; 5 minutes") is fine and not reported. Plain Python, no dagster.
"""

from __future__ import annotations

import re

# an escaped tag ("&lt;strong&gt;", "&lt;/a&gt;", "&lt;a href=...&gt;", escaped once or more), or any entity whose
# ampersand was itself escaped ("&amp;lt;", "&amp;amp;", "&amp;#39;"): both show their spelling to the reader
_VISIBLE_ESCAPED_RE = re.compile(
    r"&(?:amp;)*lt;/?[A-Za-z!][^<>&]{0,300}?&(?:amp;)*gt;"
    r"|&amp;(?:amp;)*(?:lt|gt|amp|quot|apos|nbsp|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});"
)


def visible_escaped_markup(html: str) -> list[str]:
    """Every piece of escaped markup a reader of `html` would see as text, as written in the HTML (empty if none)."""
    return _VISIBLE_ESCAPED_RE.findall(html)


def has_visible_escaped_markup(html: str) -> bool:
    """Whether `html` shows any escaped markup to a reader (one regex search: cheap enough for every article)."""
    return _VISIBLE_ESCAPED_RE.search(html) is not None
