"""Written SEO fields: title tags, meta descriptions and H1s that fit their limits and are unique within a site.

A title tag or meta description is never a headline or an intro cut short: the blueprint writes them (`seo_title`,
`meta_description`, spintax with tokens), and `choose` walks the template's variations from a start seeded by the
permutation id (bounded, like the headline) until one fits the limits and has not been used on the site. What it
cannot satisfy it does not hide: the fallback is documented per field and the article is flagged with an issue.

Fallbacks (each flagged, never cut):
- nothing fits the limits: the variation closest to them among those tried (`seo_title_too_long`,
  `meta_description_length`); the assembler stores it only if its column can hold it whole (title 60, description
  160 characters), else stores none (and the gate blocks an article without a title tag);
- everything that fits is taken on the site: the first variation that fits (`duplicate_seo_title`,
  `duplicate_meta_description`, `duplicate_h1`).

Uniqueness is kept as 8-byte digests (`digest`), never the strings: a site of 500,000 articles keeps each set in tens
of MB.

Plain Python: no database and no dagster.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Mapping

from spark_assets.content import spintax

SEO_TITLE_MAX = 60
#: what search results show without an ellipsis on desktop and most phones; shorter reads as thin
META_DESCRIPTION_RANGE = (120, 155)
#: variations tried per field and article: bounded, so a template with millions of variations costs the same
MAX_STEPS = 64
#: tokens that say where: a template with none of them reads the same in every place
PLACE_TOKENS = ("city", "county", "state", "location")


def digest(text: str) -> int:
    """8 bytes of BLAKE2b of the text, case-folded: "Roof Repair" and "roof repair" are the same title to a reader."""
    return int.from_bytes(hashlib.blake2b(text.casefold().encode(), digest_size=8).digest(), "big")


def collapse(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Choice:
    text: str
    fits: bool
    unique: bool


class Template:
    """A field's spintax tree with its variations compiled (`spintax.compile_variation`), built once per campaign."""

    __slots__ = ("tree", "variations", "variation")

    def __init__(self, tree: spintax.Sequence) -> None:
        self.tree = tree
        self.variations = spintax.count_variations(tree)
        self.variation = spintax.compile_variation(tree)


def choose(
    template: Template,
    values: Mapping[str, str],
    start: int,
    taken: set[int],
    distance: Callable[[str], int],
    first: str | None = None,
) -> Choice:
    """The first variation from `start` (walking on, at most MAX_STEPS) whose `distance` to the limits is 0 and whose
    digest is not in `taken`; it is added to `taken`. `first`, when given, is tried before the walk (the text the
    article had before uniqueness was asked, so unique articles keep it). Fallbacks: see the module docstring."""
    if first is not None and distance(first) == 0:  # the common case, without the walk
        key = digest(first)
        if key not in taken:
            taken.add(key)
            return Choice(first, True, True)
    total = template.variations
    variation = template.variation
    best_fitting: str | None = None
    closest: tuple[int, str] | None = None

    def walk():
        if first is not None:
            yield first
        for step in range(min(total, MAX_STEPS)):
            yield collapse(variation((start + step) % total, values))

    for text in walk():
        off = distance(text)
        if off == 0:
            key = digest(text)
            if key not in taken:
                taken.add(key)
                return Choice(text, True, True)
            if best_fitting is None:
                best_fitting = text
        elif closest is None or off < closest[0]:
            closest = (off, text)
    if best_fitting is not None:
        return Choice(best_fitting, True, False)
    assert closest is not None
    text = closest[1]
    key = digest(text)
    unique = key not in taken
    taken.add(key)
    return Choice(text, False, unique)


def title_distance(text: str) -> int:
    """Characters over the title limit (0 when it fits)."""
    return max(0, len(text) - SEO_TITLE_MAX)


def description_distance(text: str) -> int:
    """Characters outside the description range (0 when inside it)."""
    low, high = META_DESCRIPTION_RANGE
    return max(0, low - len(text), len(text) - high)


def always_fits(text: str) -> int:
    return 0


_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")


def description_from_intro(intro: str) -> str:
    """The fallback description of a blueprint without `meta_description`: the intro's whole leading sentences, as
    many as fit in the range's upper limit (never cut mid-sentence); the first sentence alone when even it is too long
    (the article is then flagged `meta_description_length`)."""
    sentences = _SENTENCE_RE.split(collapse(intro))
    text = sentences[0]
    for sentence in sentences[1:]:
        longer = f"{text} {sentence}"
        if len(longer) > META_DESCRIPTION_RANGE[1]:
            break
        text = longer
    return text


def has_place_token(tree: spintax.Sequence) -> bool:
    return any(token.name in PLACE_TOKENS for token in spintax.tokens(tree))


def longest_length(tree: spintax.Sequence, longest: Mapping[str, int]) -> tuple[int, int]:
    """(shortest, longest) rendered length of the template when every token takes its longest value (`longest`:
    token -> length; unknown tokens count 0): the shortest variation is what can still fit for the longest place."""

    def bounds(seq: spintax.Sequence) -> tuple[int, int]:
        low = high = 0
        for node in seq.nodes:
            if isinstance(node, spintax.Text):
                low += len(node.value)
                high += len(node.value)
            elif isinstance(node, spintax.Token):
                low += longest.get(node.name, 0)
                high += longest.get(node.name, 0)
            else:
                options = [bounds(option) for option in node.options]
                low += min(o[0] for o in options)
                high += max(o[1] for o in options)
        return low, high

    return bounds(tree)


# --- agreement ------------------------------------------------------------------------------------------------------
# "a Office", "a estimate": the article "a" before a word that starts with a vowel letter. Spelling is not sound, so
# the exceptions are the common words that start with a vowel letter but a consonant sound; a fuller answer needs a
# pronunciation dictionary (inflect gets "a SEO" wrong too), and an editor reviews what this flags.
_A_BEFORE_VOWEL_RE = re.compile(r"\b[Aa]\s+([AEIOUaeiou][\w'-]*)")
A_BEFORE_VOWEL_EXCEPTIONS = frozenset(
    {"one", "once", "one-time", "one-stop", "unit", "united", "union", "unique", "universal", "university", "uniform",
     "user", "usual", "usually", "use", "used", "useful", "utility", "us", "usa", "european", "euro", "eulogy",
     "ukulele", "uranium", "urologist", "ufo", "utah", "ewe", "unicorn", "usage"}
)


def agreement_slips(text: str) -> list[str]:
    """The "a <vowel-word>" pairs in `text` that are not known exceptions, e.g. ["a Office"]."""
    slips = []
    for match in _A_BEFORE_VOWEL_RE.finditer(text):
        word = match.group(1)
        lowered = word.lower()
        if lowered in A_BEFORE_VOWEL_EXCEPTIONS or lowered.split("-")[0] in A_BEFORE_VOWEL_EXCEPTIONS:
            continue
        if word.isupper() and len(word) > 1 and word[0] in "UEO":  # "a US", "a UK", "a EU" are read letter by letter
            continue
        slips.append(match.group(0))
    return slips
