"""An article's stored HTML as a reader would read it in a terminal: headings underlined, paragraphs wrapped, list items
bulleted, links shown as "text (/path/)". Built on the standard library's HTMLParser, so entities are decoded and
unknown tags pass their text through; scripts and styles are dropped.

Plain Python: no database and no dagster.
"""

from __future__ import annotations

import textwrap
from html.parser import HTMLParser
from urllib.parse import urlsplit

_HEADINGS = {"h1": "=", "h2": "-", "h3": "", "h4": "", "h5": "", "h6": ""}
_BLOCKS = {"p", "div", "section", "article", "nav", "header", "footer", "ul", "ol", "table", "tr", "blockquote"}
_HIDDEN = {"script", "style", "template"}


def readable_text(html: str, width: int = 100, site_domain: str | None = None) -> str:
    """The text of `html` in readable blocks. Links to `site_domain` (or relative ones) show their path only."""
    parser = _Reader(site_domain)
    parser.feed(html)
    parser.close()
    parser.end_block()
    lines: list[str] = []
    for kind, text in parser.blocks:
        if kind in _HEADINGS:
            underline = _HEADINGS[kind]
            lines += ["", text] + ([underline * min(len(text), width)] if underline else [])
        elif kind == "li":
            lines += textwrap.wrap(text, width, initial_indent="  - ", subsequent_indent="    ")
        else:
            lines += [""] + textwrap.wrap(text, width)
    return "\n".join(lines).strip("\n") + "\n"


class _Reader(HTMLParser):
    def __init__(self, site_domain: str | None):
        super().__init__(convert_charrefs=True)
        self.site_domain = site_domain
        self.blocks: list[tuple[str, str]] = []
        self._kind = "p"
        self._words: list[str] = []
        self._hidden = 0
        self._links: list[str | None] = []

    def end_block(self, next_kind: str = "p") -> None:
        text = " ".join("".join(self._words).split())
        if text:
            self.blocks.append((self._kind, text))
        self._words = []
        self._kind = next_kind

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _HEADINGS or tag == "li":
            self.end_block(tag)
        elif tag in _BLOCKS:
            self.end_block()
        elif tag == "br":
            self._words.append(" ")
        elif tag == "a":
            self._links.append(self._shown_href(dict(attrs).get("href")))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _HEADINGS or tag == "li" or tag in _BLOCKS:
            self.end_block()
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href:
                self._words.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._words.append(data)

    def _shown_href(self, href: str | None) -> str | None:
        if not href:
            return None
        parts = urlsplit(href)
        if parts.netloc and parts.netloc != self.site_domain:
            return href  # another site's link: the reader needs all of it
        query = f"?{parts.query}" if parts.query else ""
        return parts.path + query + (f"#{parts.fragment}" if parts.fragment else "")
