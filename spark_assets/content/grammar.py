"""English grammar for token values: articles, plurals, possessives and case, decided once per value, never per article.

Token forms are written after the token's name, separated by colons: `{{avatar:a}}`, `{{variant:plural:lower}}`. A
colon cannot be read as spintax (`{{avatar|plural}}` would be a nested choice). The forms:

    a / A       the indefinite article, agreeing with the value: "an Office Manager", "a Utah", "an HVAC Technician";
                `A` capitalises the article (a sentence start)
    plural      the head noun pluralised, its case kept: "Energy-Conscious Family" -> "Energy-Conscious Families",
                "Owner of a Small Business" -> "Owners of a Small Business", "HVAC" -> "HVACs"
    possessive  "Dallas's", "Office Manager's"; after `plural`, or on a persona ending in an s that is not "ss", "us"
                or "is", an apostrophe alone: "homeowners'"
    title       title case for headings: every word capitalised but short function words inside ("Leaks in the Attic")
    lower       mid-sentence case: Title-Case words lower-cased ("Busy Homeowner" -> "busy homeowner"); acronyms and
                words with inner capitals kept ("HVAC Technician" -> "HVAC technician", "McAllen")
    cap, upper  the first letter capitalised, the rest as it is (a sentence start)
    keep        the value exactly as written: no case by position (see below)

Forms may be combined in any order; they always apply as plural, possessive, case (lower before cap, so `lower:cap` is
sentence case), article. Place and site tokens (`PROPER_NAME_TOKENS`) are never re-cased: case forms leave them as written.

Acronyms: the article follows the sound. A word of two or more capitals is read letter by letter ("an HVAC", "an SEO",
"an FAQ", "an MRI", "a URL", "a UFO") unless it is in `WORD_ACRONYMS`, which are read as words ("a NASA", "an OSHA").
Other words follow inflect's rules ("an hour", "a unicorn", "a European", "a one-time buyer"), numbers how they are
said ("an 8", "an 11", "an 18,000"; inflect says "a 8"). Plurals are inflect's, imported on first use.

`prepare` rewrites a parsed template so that grammar is part of each token's rendering, at compile time:
- a literal "a"/"an" (or "A"/"An") written directly before a token (also as a choice's option: `{the|a} {{avatar}}`) is
  removed from the text and becomes the token's `a`/`A` form, so it always agrees with the value;
- case by position, for the tokens in `RECASED_TOKENS` (personas, pain points) without a case form of their own: in
  title contexts (headline, patterns, headings) they render in title case; in sentence contexts (fragments, FAQ,
  offers) in `lower` case mid-sentence and `lower:cap` at the start of a sentence (the template's start, or after
  ".", "!" or "?", HTML tags not counting). A persona that holds a proper name ("Texas Homeowner") would read
  "texas homeowner" mid-sentence: write `{{avatar:keep}}` there (words with inner capitals, "McAllen", are kept anyway).

Values with forms are looked up by key (`avatar:a:lower`) in a `FormedValues` mapping, which computes a key the first time
an article asks for it from a per-value cache. Plain Python, no dagster.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Literal, Mapping

from spark_assets.content import spintax
from spark_assets.content.tokens import PROPER_NAME_TOKENS, RECASED_TOKENS

Context = Literal["title", "sentence"]

#: every form a token may carry, and what it does (shown when an unknown one is refused)
FORMS: dict[str, str] = {
    "a": "indefinite article agreeing with the value ('an Office Manager')",
    "A": "the same, article capitalised ('An Office Manager')",
    "plural": "the head noun pluralised ('Energy-Conscious Families')",
    "possessive": "'s or ' ('Dallas's', 'homeowners'')",
    "title": "title case ('Leaks in the Attic')",
    "lower": "mid-sentence case ('busy homeowner', 'HVAC technician')",
    "cap": "first letter capitalised",
    "upper": "first letter capitalised (same as cap)",
    "keep": "as written, never re-cased by position",
}
CASE_FORMS = frozenset({"title", "lower", "cap", "upper", "keep"})
#: forms only position adds (never written in a blueprint): "inner" = with title, the value continues a title, so a
#: leading a/an/the/of stays lower-case ("Tired of the Fear of Leaks?")
POSITION_FORMS = frozenset({"inner"})
#: all-capital words read as a word, not letter by letter, when choosing "a" or "an"
WORD_ACRONYMS = frozenset({"NASA", "NATO", "FEMA", "OSHA", "HUD", "UNICEF", "UNESCO", "SCUBA", "LASER", "RADAR", "NAFTA"})
#: letters whose spoken name starts with a vowel sound: "an F", "an HVAC", "an MRI" (but "a U", "a URL")
_VOWEL_SOUND_LETTERS = frozenset("AEFHILMNORSX")
#: words kept lower-case inside a title ("Leaks in the Attic")
_TITLE_SMALL_WORDS = frozenset(
    "a an the and but or nor for of in on at to by up as via per with from into over".split()
)
# inflect's a/an rules for words, in two patterns (importing inflect takes seconds, see _inflect; plurals need it,
# articles do not): a silent h takes "an", a vowel letter that sounds like "you" or "w" takes "a"
_SILENT_H_RE = re.compile(r"(?:hour|honest|hono(?:u)?r|heir|herb)")
_VOWEL_LETTER_CONSONANT_SOUND_RE = re.compile(
    r"(?:one(?![a-z])|once|eu|ewe|uni(?:[^nmd]|mo)|u[bcfhjkqrst][aeiou]|ur[aeiou]|usu|use)"
)
#: prepositions that end a noun phrase's head: the head of "Owner of a Small Business" is "Owner"
_HEAD_ENDING_WORDS = frozenset("of in for with at from on by under over without near".split())



@lru_cache(maxsize=None)
def _inflect():
    """inflect's engine, imported on first use: importing inflect takes seconds (measured 4 s on this machine), which a
    CLI command that only validates a blueprint should not pay."""
    import inflect

    return inflect.engine()


# --- one value -------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 14)
def indefinite_article(text: str) -> str:
    """'a' or 'an' for `text`, by the sound of its first word (acronyms letter by letter, see the module docstring)."""
    word = re.match(r"[\W_]*([A-Za-z0-9]*)", text).group(1)
    if not word:
        return "a"
    if word.isupper() and word.isalpha() and word not in WORD_ACRONYMS:
        return "an" if word[0] in _VOWEL_SOUND_LETTERS else "a"
    if word[0].isdigit():
        # said aloud: "an 8", "an 80", "an 11", "an 18,000" (inflect says "a 8"); the leading group is what is heard
        group = re.match(r"[0-9]+", text.lstrip()).group()
        return "an" if group[0] == "8" or (len(group) % 3 == 2 and group[:2] in ("11", "18")) else "a"
    word = word.lower()
    if _SILENT_H_RE.match(word):
        return "an"
    if _VOWEL_LETTER_CONSONANT_SOUND_RE.match(word):
        return "a"
    return "an" if word[0] in "aeiou" else "a"


@lru_cache(maxsize=1 << 14)
def pluralize(text: str) -> str:
    """`text` with its head noun in the plural and its case restored (inflect alone gives 'Energy-Conscious Familys':
    it keeps capitalised words as proper nouns)."""
    words = text.split(" ")
    head = next((i - 1 for i, w in enumerate(words) if i > 0 and w.lower() in _HEAD_ENDING_WORDS), len(words) - 1)
    prefix, hyphen, noun = words[head].rpartition("-")
    words[head] = prefix + hyphen + _plural_word(noun)
    return " ".join(words)


def _plural_word(word: str) -> str:
    if not word or not word[-1].isalpha():
        return word
    if len(word) > 1 and word.isupper():  # an acronym: "HVACs", never "HVACS"
        return word + "s"
    plural = _inflect().plural_noun(word.lower())
    return plural[0].upper() + plural[1:] if word[0].isupper() else plural


def possessive(text: str, *, plural: bool = False, proper: bool = False) -> str:
    """"Dallas's", "Office Manager's"; a plural ending in s takes an apostrophe alone ("homeowners'")."""
    if text.endswith(("s", "S")) and (plural or (not proper and _looks_plural(text))):
        return text + "'"
    return text + "'s"


def _looks_plural(text: str) -> bool:
    # "homeowners", "Families": a final s that is not part of a singular ending ("business", "campus", "analysis")
    return not text.lower().endswith(("ss", "us", "is"))


def title_case(text: str, inner: bool = False) -> str:
    """Each word capitalised ("Uneven Cooling In Summer" -> "Uneven Cooling in Summer"), small function words inside
    the title lower-case; words that already hold a capital (acronyms, "McAllen", "iPhone") are kept. `inner`: the
    text continues a title ("Tired of " + "the fear of leaks"), so its first word is inside the title too."""
    words = text.split(" ")
    last = len(words) - 1
    out = []
    for i, word in enumerate(words):
        if (0 < i or inner) and i < last and word.lower() in _TITLE_SMALL_WORDS and not _has_capital(word):
            out.append(word)
        else:
            out.append("-".join(s if _has_capital(s) else s[:1].upper() + s[1:] for s in word.split("-")))
    return " ".join(out)


def lower_case(text: str) -> str:
    """Mid-sentence case: Title-Case words lower-cased; acronyms and words with inner capitals kept."""
    return " ".join("-".join(_lower_word(s) for s in w.split("-")) for w in text.split(" "))


def _lower_word(word: str) -> str:
    # "Homeowner" -> "homeowner"; "HVAC", "McAllen", "I" unchanged
    return word.lower() if len(word) > 1 and word[0].isupper() and not _has_capital(word[1:]) else word


def _has_capital(word: str) -> bool:
    return any(ch.isupper() for ch in word)


def capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=1 << 16)
def apply_forms(value: str, forms: tuple[str, ...], proper: bool = False) -> str:
    """`value` with `forms` applied in the fixed order plural, possessive, case, article (see the module docstring).
    `proper`: a place or site name, never re-cased. Cached: a campaign has few distinct (value, forms) pairs."""
    unknown = [f for f in forms if f not in FORMS and f not in POSITION_FORMS]
    if unknown:
        raise ValueError(f"unknown token form(s) {', '.join(unknown)} (known: {', '.join(FORMS)})")
    text = value
    if "plural" in forms:
        text = pluralize(text)
    if "possessive" in forms:
        text = possessive(text, plural="plural" in forms, proper=proper)
    if not proper and "keep" not in forms:
        if "title" in forms:
            text = title_case(text, inner="inner" in forms)
        if "lower" in forms:
            text = lower_case(text)
        if "cap" in forms or "upper" in forms:
            text = capitalize_first(text)
    if "A" in forms or "a" in forms:
        article = indefinite_article(text)
        text = f"{article.capitalize() if 'A' in forms else article} {text}"
    return text


def split_key(key: str) -> tuple[str, tuple[str, ...]]:
    """'avatar:a:lower' -> ('avatar', ('a', 'lower'))."""
    name, *forms = key.split(":")
    return name, tuple(forms)


class FormedValues(dict):
    """Token values by key. Plain names are given; a key with forms ('variant:plural') is computed the first time it
    is asked for (from the cached `apply_forms`) and escaped with `escape` if one is given (forms apply to the raw
    value, escaping comes last)."""

    __slots__ = ("_raw", "_escape")

    def __init__(self, values: Mapping[str, str], raw: Mapping[str, str] | None = None,
                 escape: Callable[[str], str] | None = None):
        super().__init__(values)
        self._raw = values if raw is None else raw
        self._escape = escape

    def __missing__(self, key: str) -> str:
        name, forms = split_key(key)
        if not forms:
            raise KeyError(key)
        value = apply_forms(self._raw[name], forms, name in PROPER_NAME_TOKENS)
        if self._escape is not None:
            value = self._escape(value)
        self[key] = value
        return value


# --- templates -------------------------------------------------------------------------------------------------------

# "a"/"an" as a whole word at the end of text, followed by whitespace: it is about to be followed by a token
_ARTICLE_BEFORE_RE = re.compile(r"(?:^|(?<=[\s(\[\"'“‘>]))([Aa]n?)(\s+)$")
# the same as the whole end of a choice's option (the whitespace may come after the choice)
_ARTICLE_END_RE = re.compile(r"(?:^|(?<=[\s(\[\"'“‘>]))([Aa]n?)\s*$")
_TAG_RE = re.compile(r"<[^<>]*>")
_SENTENCE_END = (".", "!", "?")


def prepare(tree: spintax.Sequence, context: Context) -> spintax.Sequence:
    """`tree` with grammar made part of its tokens: case by position, then article agreement (module docstring).
    The variation count and the order of random draws are unchanged: text only moves inside choices."""
    cased, _ = _case_by_position(tree, context, at_start=True)
    return _agree_articles(cased)


def _case_by_position(seq: spintax.Sequence, context: Context, at_start: bool) -> tuple[spintax.Sequence, bool]:
    nodes = []
    for node in seq.nodes:
        if isinstance(node, spintax.Text):
            visible = _TAG_RE.sub("", node.value).rstrip()
            if visible:
                at_start = visible.endswith(_SENTENCE_END)
            nodes.append(node)
        elif isinstance(node, spintax.Token):
            if node.name in RECASED_TOKENS and not CASE_FORMS.intersection(node.forms):
                if context == "title":
                    auto = ("title",) if at_start else ("title", "inner")
                else:
                    auto = ("lower", "cap") if at_start else ("lower",)
                node = spintax.Token(node.name, node.position, node.forms + auto)
            nodes.append(node)
            at_start = False
        else:
            options, ends = [], []
            for option in node.options:
                cased, end = _case_by_position(option, context, at_start)
                options.append(cased)
                ends.append(end)
            nodes.append(spintax.Choice(tuple(options), node.position))
            at_start = all(ends)
    return spintax.Sequence(tuple(nodes)), at_start


def _agree_articles(seq: spintax.Sequence) -> spintax.Sequence:
    out: list = []

    def append(node) -> None:
        if isinstance(node, spintax.Text) and out and isinstance(out[-1], spintax.Text):
            out[-1] = spintax.Text(out[-1].value + node.value)
        elif not (isinstance(node, spintax.Text) and not node.value):
            out.append(node)

    for node in seq.nodes:
        if isinstance(node, spintax.Choice):
            node = spintax.Choice(tuple(_agree_articles(o) for o in node.options), node.position)
        previous = out[-1] if out else None
        if isinstance(node, spintax.Token) and isinstance(previous, spintax.Text):
            match = _ARTICLE_BEFORE_RE.search(previous.value)
            if match and not {"a", "A"}.intersection(node.forms):
                out.pop()
                append(spintax.Text(previous.value[: match.start()]))
                form = "A" if match.group(1)[0] == "A" else "a"
                out.append(spintax.Token(node.name, node.position, node.forms + (form,)))
                continue
        if isinstance(node, spintax.Token):
            # `{the|a} {{avatar}}`: the token (and the space before it) moves into every option, where it agrees
            if isinstance(previous, spintax.Text) and not previous.value.strip() and len(out) > 1:
                choice, between = out[-2], [previous]
            else:
                choice, between = previous, []
            if isinstance(choice, spintax.Choice) and any(_ends_with_article(o) for o in choice.options):
                del out[len(out) - 1 - len(between):]
                moved = spintax.Choice(
                    tuple(_agree_articles(spintax.Sequence(o.nodes + tuple(between) + (node,))) for o in choice.options),
                    choice.position,
                )
                out.append(moved)
                continue
        if isinstance(node, spintax.Choice) and isinstance(previous, spintax.Text):
            # `a {{{avatar}}|{{variant}}}`: the article moves into every option
            match = _ARTICLE_BEFORE_RE.search(previous.value)
            if match:
                out.pop()
                append(spintax.Text(previous.value[: match.start()]))
                article = spintax.Text(match.group(0))
                out.append(spintax.Choice(
                    tuple(_agree_articles(spintax.Sequence((article,) + o.nodes)) for o in node.options), node.position
                ))
                continue
        append(node)
    return spintax.Sequence(tuple(out))


def _ends_with_article(option: spintax.Sequence) -> bool:
    last = option.nodes[-1] if option.nodes else None
    return isinstance(last, spintax.Text) and bool(_ARTICLE_END_RE.search(last.value))
