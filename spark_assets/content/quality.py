"""What the publishing gate measures on article text, beyond near-duplicates (`dedupe`): thin content, agreement
and links that lead nowhere the site will have.

Thin content: an article is thin when fewer than `min_words` of its words are its own. Shared boilerplate is removed
first: a block (a paragraph, heading, list item or FAQ answer: the text between two tags) is boilerplate when the same
block, word for word after case-folding, appears in more than half of the campaign's articles. An offer block, a
related-links list or an FAQ answer that every article carries then counts for nothing, however long it is.

Two passes over the campaign's bodies: `BlockCounter.add` counts each block once per article (as an 8-byte digest),
then `own_words` counts the words of an article's blocks that are not boilerplate.

Plain Python: no database and no dagster.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import Counter
from html.parser import HTMLParser
from typing import Iterator

from spark_assets.content.seo import agreement_slips

#: fewer own words than this is thin: the figure SEO practitioners use for a page worth indexing on its own (the
#: default of the blueprint's `publishing.min_words`)
THIN_CONTENT_WORDS = 300
_BLOCK_SPLIT_RE = re.compile(r"<[^>]+>")


def blocks(content: str) -> Iterator[str]:
    """The text blocks of an HTML body: what lies between tags, whitespace collapsed, entities decoded."""
    for part in _BLOCK_SPLIT_RE.split(content):
        text = " ".join(html.unescape(part).split())
        if text:
            yield text


def _key(block: str) -> int:
    return int.from_bytes(hashlib.blake2b(block.casefold().encode(), digest_size=8).digest(), "big")


class BlockCounter:
    """In how many articles each block appears (digests only, so memory is 8 bytes plus dict overhead per block)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.articles = 0

    def add(self, content: str) -> None:
        self.articles += 1
        self.counts.update({_key(b) for b in blocks(content)})

    def is_boilerplate(self, block: str) -> bool:
        return self.counts.get(_key(block), 0) * 2 > self.articles

    def own_words(self, content: str) -> int:
        """Words of `content` outside shared boilerplate."""
        return sum(len(b.split()) for b in blocks(content) if not self.is_boilerplate(b))


def article_agreement_slips(content: str) -> list[str]:
    """The "a <vowel-word>" slips in the visible text of an article body (see `seo.agreement_slips`)."""
    return [slip for block in blocks(content) for slip in agreement_slips(block)]


# --- links -----------------------------------------------------------------------------------------------------------


class _Hrefs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value is not None)


def broken_links(content: str, pages: frozenset[str] | set[str], declared: frozenset[str] | set[str]) -> list[str]:
    """The links in `content` that lead nowhere the site will have: a site path (starting with "/") that is neither a
    page of the site (`pages`: its articles, hubs, home, pages and posts) nor a link target the operator declared. An
    https URL is the operator's own (written in a blueprint) and is not checked here; anything else (another scheme,
    a relative path) is broken."""
    parser = _Hrefs()
    parser.feed(content)
    parser.close()
    broken = []
    for href in parser.hrefs:
        if href in declared or (href.startswith("https://") and "//" not in href[8:]):
            continue
        path = href.split("#", 1)[0]
        if not (path.startswith("/") and not path.startswith("//") and path in pages):
            broken.append(href)
    return broken
