"""Campaign blueprints: the YAML file an operator writes to describe one campaign, and its complete validation.

A blueprint is checked in full before anything is written: unknown keys, missing fields, malformed spintax, unknown or
unavailable `{{tokens}}`, unsafe slugs and bad URLs are all collected and reported together, each with the file, the YAML
line, the field path and, for spintax, the position inside the text. `load_blueprint` either returns a `Blueprint` or raises
`BlueprintError`; it never returns something half-valid.

Hostile or broken input is refused before it can cost much: a file over `MAX_BLUEPRINT_BYTES` is not parsed, YAML
anchors and aliases (the "billion laughs" expansion; blueprints have no use for them), nesting deeper than
`MAX_YAML_DEPTH` and more than `MAX_YAML_VALUES` values stop the parser at their line, and text holding characters
PostgreSQL or HTML cannot hold (NUL, other control characters) is reported with its field. Offer blocks' HTML is held to
an allow-list (nh3's): a tag, attribute or link scheme the sanitizer would strip is refused, named.

Fragments may carry a small set of inline HTML, written exactly in these forms: `<strong>`, `<em>`, `<p>`, `<ul>`, `<ol>`,
`<li>` (and their closing tags), `<br>` and `<a href="...">...</a>` whose href is a site path starting with "/" (not "//")
or an https:// URL. Nothing else (no attributes but that href, no other tag, comment or scheme) and no tag split by
spintax or a token: anything else that reads as a tag is refused at import with its field and position
(`fragments.intro[2]: <script> is not allowed at position 0`). The allowed tags render as HTML (and are sanitized with nh3
again when rendered); all other literal text is escaped ("<" in prose shows as "<"), and token values are always escaped.

Tokens take forms after colons: `{{avatar:a}}` ("an Office Manager"), `{{variant:plural}}`, `{{city:possessive}}`,
`{{pain_point:title}}`, `{{avatar:lower}}`, `{{avatar:cap}}` / `upper`, `{{avatar:keep}}`; forms combine
(`{{variant:plural:lower}}`) and always apply as plural, possessive, case, article (grammar.py says each). An unknown form
is refused with its field, line and position. Grammar is automatic where the position says it:
- a literal "a"/"an" ("A"/"An") directly before a token, also as the last word of a choice's option (`{the|a} {{avatar}}`),
  agrees with the value: "a {{avatar}}" renders "an Office Manager";
- personas, variants and pain points (not places, the brand or the domain, which keep their case as written) render in
  title case in headline_spintax_root, patterns and headings, and in lower case mid-sentence in fragments, FAQ and offers
  ("HVAC technician": acronyms keep their capitals), with a capital first letter at a sentence start; a case form of
  the operator's own (`title`, `lower`, `cap`, `upper`, `keep`) overrides this.
A token directly followed by "s", "es" or "'s" (`{{variant}}s`) is a warning, not an error: it names the form to use
(`{{variant:plural}}`, `{{variant:possessive}}`). `parse_blueprint` and `load_blueprint` return warnings in the list
passed as `warnings`.

The format is documented field by field in the models below and shown in full in `examples/demo-roofing.yaml`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Union, get_args, get_origin

import nh3
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spark_assets.content import grammar, seo, spintax
from spark_assets.content.business import Business
from spark_assets.content.geo_codes import US_STATE_CODES
from spark_assets.content.names import InvalidName, slugify, validate_slug
from spark_assets.content.tokens import RECASED_TOKENS, TOKENS, LocationMode, available_tokens, unavailable_reason

#: outline entries that are not fragment pillars
OFFER_SECTION = "offer"
FAQ_SECTION = "faq"
_PILLAR_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: the largest blueprint file read: the demo's is 31 KB; anything near this is a mistake or an attack, refused unparsed
MAX_BLUEPRINT_BYTES = 1024 * 1024
#: the most YAML values (scalars, lists, mappings) a blueprint may hold: the demo has 321; each costs some 30 us to
#: load and check, so this bounds a legal-looking file to well under a second
MAX_YAML_VALUES = 20_000
#: the deepest YAML nesting accepted (a blueprint needs 6: avatars[0].variants[0].slug); deeper would only exhaust the
#: composer's recursion
MAX_YAML_DEPTH = 20
# Characters PostgreSQL text cannot store (NUL) or HTML does not allow (other C0/C1 controls, DEL, noncharacters), and
# lone surrogates (not encodable as UTF-8). Tab, newline and carriage return are ordinary text.
_FORBIDDEN_CHARACTER_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def _slug(value: str) -> str:
    try:
        return validate_slug(value)
    except InvalidName as exc:
        raise ValueError(str(exc)) from None


Slug = Annotated[str, AfterValidator(_slug)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class LocationTargeting(_Strict):
    """Which places the campaign targets: one article set per matching city, county or state."""

    mode: LocationMode
    states: list[str] = Field(default_factory=list, description="two-letter state codes; empty means all 50 + DC")
    min_population: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1, description="city mode: keep only the N most populous cities")

    @field_validator("states", mode="before")
    @classmethod
    def _upper_case_states(cls, value: Any) -> Any:
        # `states: [tx]` means Texas: codes are compared, stored and hashed in upper case
        return [code.upper() if isinstance(code, str) else code for code in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _known_states(self) -> "LocationTargeting":
        unknown = [code for code in self.states if code not in US_STATE_CODES]
        if unknown:
            raise ValueError(f"unknown state code(s) {', '.join(map(repr, unknown))}: use two-letter codes like 'TX'")
        if len(set(self.states)) != len(self.states):
            raise ValueError("a state code is listed twice")
        return self


class AvatarVariant(_Strict):
    slug: Slug
    name: NonEmpty
    prompt_modifier: str = ""


class Avatar(_Strict):
    """A buyer persona and its variants (e.g. first-time vs. long-time homeowner)."""

    slug: Slug
    name: NonEmpty
    wealth_cluster: str | None = None
    pain_points: list[NonEmpty] = Field(default_factory=list)
    demographics: dict[str, str | int | float | list[str]] = Field(default_factory=dict)
    variants: list[AvatarVariant] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_variants(self) -> "Avatar":
        _require_unique([v.slug for v in self.variants], "variant slug")
        return self


class Pattern(_Strict):
    """A title/hook formula: spintax with tokens, one permutation axis."""

    slug: Slug
    name: NonEmpty
    logic: NonEmpty = Field(description="the H1 (spintax with tokens); unique within the site where variations allow")
    seo_title: NonEmpty | None = Field(None, description="this pattern's title tag template, instead of the campaign's")
    meta_description: NonEmpty | None = Field(
        None, description="this pattern's meta description template, instead of the campaign's"
    )


class OfferBlock(_Strict):
    slug: Slug
    name: NonEmpty
    html: NonEmpty = Field(description="HTML (spintax with tokens) within the allow-list of OFFER_HTML_TAGS/ATTRIBUTES")


class FaqItem(_Strict):
    question: NonEmpty
    answer: NonEmpty


_SAFE_PATH_RE = re.compile(r"^/(?:[a-z0-9]+(?:[-._][a-z0-9]+)*/?)*(?:[a-z0-9]+(?:[-._][a-z0-9]+)*)?(?:#[a-z0-9-]+)?$")


def _link_url(value: str) -> str:
    if value.startswith("https://"):
        if any(ch.isspace() for ch in value) or "<" in value or '"' in value:
            raise ValueError(f"'{value}' is not a safe URL")
        return value
    if not _SAFE_PATH_RE.fullmatch(value) or "/../" in value or value.endswith("/.."):
        raise ValueError(
            f"'{value}' must be a site path like '/services/roof-repair' (lower-case, no '..') or an https:// URL"
        )
    return value


class LinkTarget(_Strict):
    """An internal (or partner) link the articles point to."""

    url: Annotated[str, AfterValidator(_link_url)]
    anchor: NonEmpty
    keyword: str | None = None


class PublishingPolicy(_Strict):
    auto_publish: bool = Field(False, description="publish articles that pass every check without a manual approve")
    max_near_duplicate_rate: float = Field(
        0.05, ge=0, le=1, description="block publishing when more than this share of articles are near-duplicates"
    )
    min_words: int = Field(
        300, ge=0, le=20000,
        description="an article with fewer words of its own (shared boilerplate removed) is thin and blocked",
    )
    similarity_threshold: float = Field(
        0.5, gt=0, le=1,
        description="two articles whose 5-word-shingle Jaccard similarity is at least this are near-duplicates "
        "(blocking); from 0.7 times it (0.35 by default) they are flagged similar_content (a warning)",
    )


class Blueprint(_Strict):
    """One campaign: what to write, for whom, where, and in which order."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    slug: Slug | None = Field(None, description="URL-safe id of the campaign; derived from the name when absent")
    status: Literal["active", "inactive"] = "active"
    headline_spintax_root: NonEmpty
    seo_title: NonEmpty | None = Field(
        None, description="the title tag (spintax with tokens): a variation of at most 60 characters, unique in the site"
    )
    meta_description: NonEmpty | None = Field(
        None, description="the meta description (spintax with tokens): a variation of 120-155 characters, unique in "
        "the site"
    )
    business: Business | None = Field(None, description="the business facts the JSON-LD states (LocalBusiness)")
    faq_per_article: int | None = Field(
        None, ge=1, description="how many of the FAQ entries each article shows (chosen per article); all when absent"
    )
    target_word_count: int = Field(1500, ge=100, le=20000)
    batch_count: int = Field(500, ge=1, le=100_000, description="permutations written per batch")
    location: LocationTargeting
    avatars: list[Avatar] = Field(min_length=1)
    patterns: list[Pattern] = Field(min_length=1)
    offer_blocks: list[OfferBlock] = Field(default_factory=list)
    outline: list[NonEmpty] = Field(
        min_length=1, description="section order: fragment pillar names, plus 'offer' and 'faq' where wanted"
    )
    fragments: dict[str, list[NonEmpty]] = Field(min_length=1, description="pillar -> alternative fragment texts")
    headings: dict[str, NonEmpty] = Field(
        default_factory=dict, description="pillar -> section heading (spintax with tokens); pillars without one have none"
    )
    faq: list[FaqItem] = Field(default_factory=list)
    link_targets: list[LinkTarget] = Field(default_factory=list)
    publishing: PublishingPolicy = Field(default_factory=PublishingPolicy)

    @model_validator(mode="after")
    def _consistent(self) -> "Blueprint":
        problems: list[str] = []
        for pillar, texts in self.fragments.items():
            if not _PILLAR_RE.fullmatch(pillar) or pillar in (OFFER_SECTION, FAQ_SECTION):
                problems.append(
                    f"fragment pillar '{pillar}' must be a lower-case identifier other than 'offer'/'faq' (e.g. 'pillar_1')"
                )
            if not texts:
                problems.append(f"fragment pillar '{pillar}' has no fragments")
        known = set(self.fragments) | {OFFER_SECTION, FAQ_SECTION}
        for section in self.outline:
            if section not in known:
                problems.append(f"outline section '{section}' is neither a fragment pillar nor 'offer'/'faq'")
        if len(set(self.outline)) != len(self.outline):
            problems.append("outline lists a section twice")
        for pillar in self.headings:
            if pillar not in self.fragments:
                problems.append(f"heading for '{pillar}', which is not a fragment pillar")
        if self.location.mode != "city" and self.location.min_population:
            problems.append(
                f"location.min_population cannot be used in {self.location.mode} mode: the dataset has populations "
                "for cities only"
            )
        if self.location.mode != "city" and self.location.limit:
            places = "counties" if self.location.mode == "county" else "states"
            problems.append(
                f"location.limit cannot be used in {self.location.mode} mode: {places} have no population in the "
                "shipped data, so 'most populous' cannot be chosen honestly: list the states to cover, or use city mode"
            )
        uses_pain_point = any(
            token.name == "pain_point"
            for _, text in spintax_fields(self.model_dump(mode="json"))
            if "pain_point" in text  # parse again only what can hold the token (a 1 MiB template takes seconds)
            for token in spintax.tokens(spintax.parse(text))
        )
        if uses_pain_point:
            bare = [a.slug for a in self.avatars if not a.pain_points]
            if bare:
                problems.append(f"{{{{pain_point}}}} is used but avatar(s) {', '.join(bare)} have no pain_points")
        unused = [p for p in self.fragments if p not in self.outline]
        if unused:
            problems.append(f"fragment pillar(s) {', '.join(unused)} are not in the outline")
        if OFFER_SECTION in self.outline and not self.offer_blocks:
            problems.append("outline has 'offer' but there are no offer_blocks")
        if FAQ_SECTION in self.outline and not self.faq:
            problems.append("outline has 'faq' but there is no faq")
        if self.faq_per_article is not None and self.faq_per_article > len(self.faq):
            problems.append(f"faq_per_article is {self.faq_per_article} but there are only {len(self.faq)} faq entries")
        for label, slugs in (
            ("avatar slug", [a.slug for a in self.avatars]),
            ("pattern slug", [p.slug for p in self.patterns]),
            ("offer block slug", [o.slug for o in self.offer_blocks]),
        ):
            try:
                _require_unique(slugs, label)
            except ValueError as exc:
                problems.append(str(exc))
        if self.slug is None and not slugify(self.name):
            # slugify keeps ASCII only: "Ремонт крыши" has letters, none of which can go in a URL-safe slug
            has_letters = any(ch.isalnum() for ch in self.name)
            problems.append(
                f"name '{self.name}' has no {'ASCII ' if has_letters else ''}letters or digits to derive a slug from: "
                "give the campaign a `slug:`, ASCII letters, digits and hyphens (e.g. 'roof-repair')"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def campaign_slug(self) -> str:
        return self.slug or slugify(self.name)

    def canonical_json(self) -> str:
        """The blueprint as stable JSON (sorted keys): what is stored, and what its hash is taken over."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


# --- offer HTML ------------------------------------------------------------------------------------------------------
# Offer blocks are the one place a blueprint writes raw HTML into articles. They are sanitized with nh3 (ammonia's
# allow-list sanitizer) whenever an article is assembled, and anything the sanitizer would strip is refused at import,
# named, so an operator never publishes something other than what they wrote.

#: nh3's maintained list of harmless tags (no script, style, iframe, object, form, input, ...)
OFFER_HTML_TAGS = frozenset(nh3.ALLOWED_TAGS)
#: nh3's per-tag attributes, plus presentational ones on every tag and `rel` on links (rel="sponsored nofollow");
#: no event handlers (on...), no style, no id (ids can clobber the page's scripts)
OFFER_HTML_ATTRIBUTES = {tag: frozenset(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()} | {
    "*": frozenset({"class", "title", "lang", "dir"}),
    "a": frozenset(nh3.ALLOWED_ATTRIBUTES.get("a", set()) | {"title", "rel"}),
}
#: schemes a link or image may use; relative URLs ("/contact#quote") are always fine
OFFER_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "action", "formaction", "longdesc", "poster", "background"})
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
#: how many renders of an offer template are checked (each choice's options in turn), at most
_OFFER_RENDERS_CHECKED = 64


@lru_cache(maxsize=1 << 14)
def sanitize_offer_html(markup: str) -> str:
    """`markup` with everything outside the allow-list removed (nh3). Markup that passed `offer_html_problems` comes
    back as it went in, but for how entities are spelled (`&#x27;` becomes `'`); `rel` is never added to links.
    Cached: an offer renders to a few texts per place, and nh3 costs about 0.2 ms a call (a tenth of an article)."""
    return nh3.clean(
        markup,
        tags=set(OFFER_HTML_TAGS),
        attributes={tag: set(names) for tag, names in OFFER_HTML_ATTRIBUTES.items()},
        url_schemes=set(OFFER_URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )


class _MarkupCheck(HTMLParser):
    """What the sanitizer would strip from a piece of HTML, each said in a few words (`<script> is not allowed`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def _refuse(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in OFFER_HTML_TAGS:
            self._refuse(f"<{tag}> is not allowed")
            return
        allowed = OFFER_HTML_ATTRIBUTES.get(tag, frozenset()) | OFFER_HTML_ATTRIBUTES["*"]
        for name, value in attrs:
            if name.startswith("on"):
                self._refuse(f"the event handler {name}= on <{tag}> is not allowed")
            elif name not in allowed:
                self._refuse(f"the attribute {name}= on <{tag}> is not allowed")
            elif name in _URL_ATTRIBUTES and value:
                # browsers ignore whitespace and control characters inside a scheme ("java\tscript:")
                scheme = _SCHEME_RE.match("".join(ch for ch in value if ch > " "))
                if scheme and scheme.group(1).lower() not in OFFER_URL_SCHEMES:
                    self._refuse(
                        f"{name}=\"{scheme.group(1)}:...\" on <{tag}> is not allowed: use "
                        f"{', '.join(sorted(OFFER_URL_SCHEMES))} or a relative URL"
                    )

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag not in OFFER_HTML_TAGS and f"<{tag}> is not allowed" not in self.problems:
            self._refuse(f"</{tag}> is not allowed")

    def handle_comment(self, data: str) -> None:
        self._refuse("HTML comments (<!-- -->) are not allowed")

    def handle_decl(self, decl: str) -> None:
        self._refuse(f"<!{decl.split()[0] if decl.split() else ''}> is not allowed")

    unknown_decl = handle_decl

    def handle_pi(self, data: str) -> None:
        self._refuse("<?...> processing instructions are not allowed")


def offer_html_problems(tree: spintax.Sequence) -> list[str]:
    """What the sanitizer would strip from an offer template, checked on its renders: each choice takes its options in
    turn, so every option of every choice that is always reached is seen (nested ones as far as the renders go).
    Anything missed here is still stripped when articles are assembled."""
    check = _MarkupCheck()
    visits: dict[int, int] = {}
    choices: list[spintax.Choice] = []

    def collect(seq: spintax.Sequence) -> None:
        for node in seq.nodes:
            if isinstance(node, spintax.Choice):
                choices.append(node)
                for option in node.options:
                    collect(option)

    def render(seq: spintax.Sequence, out: list[str]) -> None:
        for node in seq.nodes:
            if isinstance(node, spintax.Text):
                out.append(node.value)
            elif isinstance(node, spintax.Token):
                out.append("x")  # a token's value is HTML-escaped text
            else:
                turn = visits.get(id(node), 0)
                visits[id(node)] = turn + 1
                render(node.options[turn % len(node.options)], out)

    collect(tree)
    for _ in range(_OFFER_RENDERS_CHECKED):
        out: list[str] = []
        render(tree, out)
        check.feed("".join(out))
        check.close()
        check.reset()
        if all(visits.get(id(choice), 0) >= len(choice.options) for choice in choices):
            break
    return check.problems


def _offer_problems(data: dict[str, Any], lines: dict[tuple[str | int, ...], int]) -> Iterator[Problem]:
    offers = data.get("offer_blocks")
    for i, offer in enumerate(offers if isinstance(offers, list) else []):
        markup = offer.get("html") if isinstance(offer, dict) else None
        if not isinstance(markup, str):
            continue
        try:
            tree = spintax.parse(markup)
        except spintax.SpintaxError:
            continue  # reported as malformed spintax
        path = ("offer_blocks", i, "html")
        for message in offer_html_problems(tree):
            yield Problem(format_path(path), message, _nearest_line(path, lines))


def _require_unique(values: list[str], label: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {label} '{value}'")
        seen.add(value)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        # a message may quote the offending value: show its control characters as escapes, never raw on a terminal
        return _FORBIDDEN_CHARACTER_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class BlueprintError(ValueError):
    """Every problem found in one blueprint file. Nothing has been written when this is raised."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        lines = "\n".join("  " + p.render(source) for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"blueprint {source} has {len(problems)} {noun}:\n{lines}")


def format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_blueprint(path: str | Path, warnings: list[Problem] | None = None) -> Blueprint:
    """Read and completely validate a blueprint file, or raise BlueprintError listing every problem. Warnings (what
    imports but likely reads wrong) are appended to `warnings` when it is given."""
    source = str(path)
    try:
        with open(path, "rb") as handle:  # at most one byte past the limit: /dev/zero or a huge file is not read whole
            raw = handle.read(MAX_BLUEPRINT_BYTES + 1)
        text = raw.decode("utf-8") if len(raw) <= MAX_BLUEPRINT_BYTES else None
    except (OSError, UnicodeDecodeError) as exc:
        raise BlueprintError(source, [Problem("", f"cannot read file: {exc}")]) from None
    if text is None:
        raise BlueprintError(source, [_too_large()])
    return parse_blueprint(text, source, warnings)


def _too_large() -> Problem:
    size = f"{MAX_BLUEPRINT_BYTES // 1024 // 1024} MiB ({MAX_BLUEPRINT_BYTES:,} bytes)"
    return Problem("", f"file is larger than {size}, the most a blueprint may be: it was not read")


class _RefusedYaml(yaml.MarkedYAMLError):
    """YAML the blueprint loader refuses before composing it (anchors, aliases, deep nesting)."""


if getattr(yaml, "__with_libyaml__", False):
    # libyaml scans and parses (a 1 MiB blueprint in about a second rather than 30), PyYAML's Python composer builds
    # the nodes, so the checks below see every event; SafeConstructor and Resolver make it a safe loader
    class _SafeEventLoader(
        yaml.composer.Composer, yaml.cyaml.CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver
    ):
        def __init__(self, stream: str):
            yaml.cyaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml: the same checks, slower
    _SafeEventLoader = yaml.SafeLoader  # type: ignore[misc,assignment]


class _BlueprintLoader(_SafeEventLoader):
    """The safe loader, refusing anchors and aliases at the event that holds them, and nesting past MAX_YAML_DEPTH.

    PyYAML shares an aliased node rather than copying it, but everything that walks the document afterwards (the line
    index, pydantic, JSON) expands it: nine nested aliases of nine items each are 387 million strings."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._values = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _RefusedYaml(problem=f"alias '*{event.anchor}': YAML aliases and anchors are not allowed in a "
                                       "blueprint (write the value out)", problem_mark=event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _RefusedYaml(problem=f"anchor '&{event.anchor}': YAML aliases and anchors are not allowed in a "
                                       "blueprint (write the value out)", problem_mark=event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise _RefusedYaml(problem=f"nested more than {MAX_YAML_DEPTH} levels deep", problem_mark=event.start_mark)
        self._values += 1
        if self._values > MAX_YAML_VALUES:
            raise _RefusedYaml(problem=f"more than {MAX_YAML_VALUES:,} values, the most a blueprint may hold",
                               problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # a scalar YAML types but Python cannot build (a 5,000-digit integer, the date 2026-13-45) raises ValueError,
        # not a YAML error: said at the value's line like any other
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            reason = str(exc).split(";")[0][:120]
            raise _RefusedYaml(problem=f"value cannot be read: {reason}", problem_mark=node.start_mark) from None


def _load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The composed node tree (for line numbers) and the Python data built from it, parsed once."""
    loader = _BlueprintLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def parse_blueprint(text: str, source: str = "<blueprint>", warnings: list[Problem] | None = None) -> Blueprint:
    if len(text) > MAX_BLUEPRINT_BYTES:  # characters, not bytes, but nothing that passes this is dangerous to parse
        raise BlueprintError(source, [_too_large()])
    try:
        root, data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.reader.ReaderError):  # a raw control character in the file: no mark, a position
            line = text.count("\n", 0, exc.position) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            reason = f"{exc.reason} (U+{code:04X})"
        hint = _quoting_hint(text, exc)
        raise BlueprintError(source, [Problem("", f"not valid YAML: {reason}{hint}", line)]) from None
    lines: dict[tuple[str | int, ...], int] = {}
    problems: list[Problem] = []
    if root is not None:
        _index_lines(root, (), lines, problems)
    if not isinstance(data, dict):
        raise BlueprintError(source, [Problem("", "a blueprint must be a YAML mapping of fields (name, location, ...)")])
    if problems:  # duplicate keys: YAML would silently keep the last one
        raise BlueprintError(source, problems)
    problems = list(_character_problems(data, (), lines))
    # Spintax and tokens are checked on the raw data too, so one run reports them beside any structural problem.
    found_warnings: list[Problem] = []
    problems += _spintax_problems(data, lines, found_warnings)
    problems += _offer_problems(data, lines)
    problems += _fragment_problems(data, lines)
    try:
        blueprint = Blueprint.model_validate(data)
    except ValidationError as exc:
        problems += [_problem_from_pydantic(err, lines) for err in exc.errors()]
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.field))
        raise BlueprintError(source, problems)
    if warnings is not None:
        # the SEO templates' warnings too (a title that cannot fit, an H1 with no place), with their lines
        warnings += found_warnings + blueprint_warnings(blueprint, lines)
    return blueprint


def spintax_fields(data: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(field path, text) for every blueprint field that is spintax with tokens; tolerant of malformed structure."""

    def items(key: str) -> list[Any]:
        value = data.get(key)
        return value if isinstance(value, list) else []

    def texts(path: tuple[str | int, ...], value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if isinstance(value, str):
            yield path, value

    yield from texts(("headline_spintax_root",), data.get("headline_spintax_root"))
    yield from texts(("seo_title",), data.get("seo_title"))
    yield from texts(("meta_description",), data.get("meta_description"))
    for i, pattern in enumerate(items("patterns")):
        if isinstance(pattern, dict):
            yield from texts(("patterns", i, "logic"), pattern.get("logic"))
            yield from texts(("patterns", i, "seo_title"), pattern.get("seo_title"))
            yield from texts(("patterns", i, "meta_description"), pattern.get("meta_description"))
    for i, offer in enumerate(items("offer_blocks")):
        if isinstance(offer, dict):
            yield from texts(("offer_blocks", i, "html"), offer.get("html"))
    fragments = data.get("fragments")
    if isinstance(fragments, dict):
        for pillar, values in fragments.items():
            for i, value in enumerate(values if isinstance(values, list) else []):
                yield from texts(("fragments", pillar, i), value)
    for i, item in enumerate(items("faq")):
        if isinstance(item, dict):
            yield from texts(("faq", i, "question"), item.get("question"))
            yield from texts(("faq", i, "answer"), item.get("answer"))
    headings = data.get("headings")
    if isinstance(headings, dict):
        for pillar, value in headings.items():
            yield from texts(("headings", pillar), value)


def _problem_from_pydantic(err: Any, lines: dict[tuple[str | int, ...], int]) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        message = f"unknown field '{loc[-1]}'{_did_you_mean(str(loc[-1]), _known_fields(loc[:-1]), quote=repr)}"
        field = format_path(loc[:-1])
    elif kind == "missing":
        message = f"missing required field '{loc[-1]}'"
        field = format_path(loc[:-1])
    else:
        message = err["msg"].removeprefix("Value error, ")
        field = format_path(loc)
    return Problem(field, message, _nearest_line(loc, lines))


def _spintax_problems(
    data: dict[str, Any], lines: dict[tuple[str | int, ...], int], warnings: list[Problem]
) -> Iterator[Problem]:
    """Malformed spintax, unknown or unavailable tokens, unknown forms; warnings (`{{variant}}s`) go to `warnings`,
    found in the same pass (a 1 MiB template takes seconds to parse: once is enough)."""
    location = data.get("location")
    mode = location.get("mode") if isinstance(location, dict) else None
    # With no valid mode, only unknown tokens are reported here (the missing/invalid mode is reported by the model).
    allowed = available_tokens(mode) if mode in ("city", "county", "state") else frozenset(TOKENS)
    for path, text in spintax_fields(data):
        try:
            tree = spintax.parse(text)
        except spintax.SpintaxError as exc:
            yield Problem(format_path(path), f"malformed spintax: {exc}", _nearest_line(path, lines))
            continue
        warnings += _suffix_warnings(path, text, tree, lines)
        for token in spintax.tokens(tree):
            if token.name not in allowed:
                reason = unavailable_reason(token.name, mode)
                where = spintax.describe_position(text, token.position)
                # a misspelt token gets the nearest one this mode has; one from another mode needs no guess
                hint = "" if token.name in TOKENS else _did_you_mean(token.name, allowed, quote="{{{{{}}}}}".format)
                yield Problem(format_path(path), f"{reason} {where}{hint}", _nearest_line(path, lines))
            for form in token.forms:
                if form not in grammar.FORMS:
                    where = spintax.describe_position(text, token.position)
                    yield Problem(
                        format_path(path),
                        f"unknown form '{form}' in '{{{{{token.key}}}}}' {where} (known forms: {', '.join(grammar.FORMS)})",
                        _nearest_line(path, lines),
                    )


def _did_you_mean(name: str, choices: Any, quote: Any) -> str:
    """"; did you mean X?" for the choice nearest to a misspelt `name` (difflib's ratio), or "" if none is close."""
    nearest = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {quote(nearest[0])}?" if nearest else ""


def _known_fields(path: tuple[str | int, ...]) -> list[str]:
    """The field names of the model at `path` in a Blueprint (e.g. ('avatars', 0) -> Avatar's), or [] if `path` leads
    to no model. Follows the annotations: list items by index, dict values by key, the model in an Optional."""
    kind: Any = Blueprint
    for part in path:
        kind = _model_in(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
            field = kind.model_fields.get(part)
            if field is None:
                return []
            kind = field.annotation
        elif get_origin(kind) in (list, tuple) and isinstance(part, int):
            kind = get_args(kind)[0]
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        else:
            return []
    kind = _model_in(kind)
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []


def _model_in(kind: Any) -> Any:
    """`kind` without the Annotated[...] and Optional[...] around it."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
            continue
        if get_origin(kind) in (Union, types.UnionType):
            args = [a for a in get_args(kind) if a is not type(None)]
            if len(args) == 1:
                kind = args[0]
                continue
        return kind


def _quoting_hint(text: str, exc: yaml.YAMLError) -> str:
    """A hint for the commonest YAML mistake in a blueprint: a value that starts with '{' (spintax or a {{token}}) is
    read as a YAML mapping. Given when the line of the error, or of what it was parsing, has such a value."""
    for mark in (getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)):
        if mark is None:
            continue
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        value = line.strip().removeprefix("- ")
        key, colon, rest = value.partition(": ")
        if colon and not key.startswith(("{", "'", '"')):
            value = rest.strip()
        if value.startswith("{"):
            return f" (line {mark.line + 1}: a value that starts with '{{' is read as a YAML mapping: put it in quotes)"
    return ""



# `{{variant}}s`: the operator wanted a plural or a possessive the token can make properly
_TOKEN_SUFFIX_RE = re.compile(r"(e?s|['’]s)(?![A-Za-z0-9])")


def _suffix_warnings(
    path: tuple[str | int, ...], text: str, tree: spintax.Sequence, lines: dict[tuple[str | int, ...], int]
) -> Iterator[Problem]:
    for token in spintax.tokens(tree):
        end = spintax.token_end(text, token.position)
        suffix = _TOKEN_SUFFIX_RE.match(text, end)
        if suffix and token.name in RECASED_TOKENS | {"city", "county", "state", "location", "brand"}:
            form = "possessive" if suffix.group(1)[0] in "'’" else "plural"
            wanted = ":".join((token.name,) + token.forms + (form,))
            written = text[token.position:suffix.end()]
            yield Problem(
                format_path(path),
                f"'{written}' {spintax.describe_position(text, token.position)}: write '{{{{{wanted}}}}}' "
                + ("('Family' + 's' reads 'Familys')" if form == "plural" else "(it writes 'Dallas's' but 'homeowners'')"),
                _nearest_line(path, lines),
            )


# --- fragment HTML ---------------------------------------------------------------------------------------------------
# Fragments are prose with a little inline markup. The allowed tags must be written in exactly one form each, so the
# renderer can tell markup from prose without parsing HTML: a match of FRAGMENT_TAG_RE renders as HTML, anything else
# is escaped text; at import every "<" that starts something tag-like must be such a match, or it is refused.

#: the tags a fragment may hold
FRAGMENT_HTML_TAGS = frozenset({"strong", "em", "a", "ul", "ol", "li", "p", "br"})
FRAGMENT_TAG_RE = re.compile(
    r'</?(?:strong|em|ul|ol|li|p)>|<br ?/?>|</a>|<a href="(?:/(?!/)|https://)[^"<>\s{}|\\]*">'
)
_TAG_START_RE = re.compile(r"<[/!?A-Za-z]")
_TAG_NAME_RE = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)")
_HREF_RE = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*))""", re.IGNORECASE)


def sanitize_fragment_html(markup: str) -> str:
    """A rendered fragment with everything outside the fragment allow-list removed (nh3); what passed
    `fragment_html_problems` comes back as it went in, but for how entities are spelled."""
    return nh3.clean(
        markup,
        tags=set(FRAGMENT_HTML_TAGS),
        attributes={"a": {"href"}},
        url_schemes={"https"},
        link_rel=None,
        strip_comments=True,
    )


def fragment_html_problems(text: str) -> list[str]:
    """What in a fragment's text reads as markup but is not an allowed tag written whole, each with its position."""
    problems = []
    for start in _TAG_START_RE.finditer(text):
        position = start.start()
        if FRAGMENT_TAG_RE.match(text, position):
            continue
        end = text.find(">", position)
        written = text[position:end + 1] if end >= 0 else text[position:position + 40]
        where = spintax.describe_position(text, position)
        if end < 0 or any(ch in written for ch in "{}|"):
            problems.append(f"a tag must be written whole, not split by spintax or a token, {where}")
            continue
        name = _TAG_NAME_RE.match(written)
        tag = name.group(1).lower() if name else ""
        href = _HREF_RE.search(written)
        if tag not in FRAGMENT_HTML_TAGS:
            what = f"<{tag}>" if tag else f"'{written[:40]}'"
            problems.append(f"{what} is not allowed {where} (fragments may hold {_fragment_tags_list()})")
        elif tag == "a" and href:
            url = next(g for g in href.groups() if g is not None)
            shown = url if len(url) <= 30 else url[:27] + "..."
            problems.append(
                f'<a href="{shown}"> is not allowed {where}: a link goes to a site path starting with "/" or an '
                'https:// URL, written <a href="...">'
            )
        else:
            problems.append(
                f"'{written[:60]}' is not allowed {where}: write tags exactly as {_fragment_tags_list()} "
                '(no other attributes)'
            )
    return problems


def _fragment_tags_list() -> str:
    return '<strong>, <em>, <p>, <ul>, <ol>, <li>, <br>, <a href="/path/">'


def _fragment_problems(data: dict[str, Any], lines: dict[tuple[str | int, ...], int]) -> Iterator[Problem]:
    for path, text in spintax_fields(data):
        if path[0] == "fragments":
            for message in fragment_html_problems(text):
                yield Problem(format_path(path), message, _nearest_line(path, lines))


def _character_problems(value: Any, path: tuple[Any, ...], lines: dict) -> Iterator[Problem]:
    """A problem for every key or text holding a character PostgreSQL or HTML cannot hold, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (bad := _FORBIDDEN_CHARACTER_RE.search(key)):
                yield Problem(format_path(path + (key,)), f"the key {_describe_character(key, bad)}",
                              _nearest_line(path + (key,), lines))
            yield from _character_problems(item, path + (key,), lines)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _character_problems(item, path + (i,), lines)
    elif isinstance(value, str) and (bad := _FORBIDDEN_CHARACTER_RE.search(value)):
        yield Problem(format_path(path), _describe_character(value, bad), _nearest_line(path, lines))


def _describe_character(text: str, match: re.Match) -> str:
    code = ord(match.group())
    name = "a NUL character (U+0000)" if code == 0 else f"the control character U+{code:04X}"
    if 0xD800 <= code <= 0xDFFF:
        name = f"a lone surrogate U+{code:04X}"
    elif code >= 0xFDD0:
        name = f"the noncharacter U+{code:04X}"
    where = spintax.describe_position(text, match.start())
    return f"contains {name} {where}: text cannot hold it (tab and newline can)"


def _nearest_line(path: tuple[Any, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], lines: dict, problems: list[Problem]) -> None:
    """Record the 1-based line of every field path, and report duplicate mapping keys."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append(Problem(format_path(path + (key,)), "duplicate key", key_node.start_mark.line + 1))
            seen.add(key)
            _index_lines(value_node, path + (key,), lines, problems)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines, problems)


# --- warnings ----------------------------------------------------------------------------------------------------------
# Things that are valid but that an SEO editor would not publish: said at import (with field and line) and again by the
# articles asset with the campaign's real places. They never refuse a blueprint.

#: lengths assumed for token values the blueprint does not hold, when the campaign's places are not known yet
ESTIMATED_TOKEN_LENGTHS = {"city": 20, "county": 24, "state": 20, "state_code": 2, "population": 9, "location": 24,
                           "brand": 24, "domain": 28, "year": 4}
_PLACE_TOKENS = ("city", "county", "state", "location")


def blueprint_warnings(
    blueprint: Blueprint, lines: dict[tuple[str | int, ...], int] | None = None,
    longest: dict[str, int] | None = None,
) -> list[Problem]:
    """Warnings about SEO templates: a title or description template none of whose variations fits its limits for the
    longest token values, a pattern (the H1) with no place token, and a link target whose site path has no trailing
    slash (pages are served at `/<slug>/`). `longest` gives the campaign's real longest
    place/site values when known; otherwise the estimates above are used and the warning says so."""

    lines = lines or {}
    lengths = dict(ESTIMATED_TOKEN_LENGTHS)
    lengths.update(longest or {})
    personas = [(a, v) for a in blueprint.avatars for v in a.variants]
    lengths["avatar"] = max(len(a.name) for a, _ in personas)
    lengths["variant"] = max(len(v.name) for _, v in personas)
    lengths["pain_point"] = max((len(p) for a in blueprint.avatars for p in a.pain_points), default=0)
    basis = "the campaign's longest values" if longest else "estimated token lengths (the campaign's places are not known yet)"
    out: list[Problem] = []
    templates: list[tuple[tuple[str | int, ...], str, str]] = []
    if blueprint.seo_title:
        templates.append((("seo_title",), blueprint.seo_title, "title"))
    if blueprint.meta_description:
        templates.append((("meta_description",), blueprint.meta_description, "description"))
    for i, pattern in enumerate(blueprint.patterns):
        if pattern.seo_title:
            templates.append((("patterns", i, "seo_title"), pattern.seo_title, "title"))
        if pattern.meta_description:
            templates.append((("patterns", i, "meta_description"), pattern.meta_description, "description"))
        if not seo.has_place_token(spintax.parse(pattern.logic)):
            path = ("patterns", i, "logic")
            out.append(Problem(format_path(path), "a pattern with no place token ({{city}}, {{county}}, {{state}}, "
                               "{{location}}) gives the same H1 in every place", _nearest_line(path, lines)))
    for i, target in enumerate(blueprint.link_targets):
        url_path = target.url.split("?")[0].split("#")[0]
        last = url_path.rsplit("/", 1)[-1]
        if target.url.startswith("/") and last and "." not in last:  # a page path without its trailing slash
            path = ("link_targets", i, "url")
            out.append(Problem(format_path(path), f"'{target.url}' has no trailing slash: the site serves pages at "
                               f"'{url_path}/', so the link goes through a redirect or fails the build's link check; "
                               f"write '{url_path}/'", _nearest_line(path, lines)))
    low, high = seo.META_DESCRIPTION_RANGE
    for path, text, kind in templates:
        shortest, longest_length = seo.longest_length(spintax.parse(text), lengths)
        if kind == "title" and shortest > seo.SEO_TITLE_MAX:
            message = (f"no variation fits in {seo.SEO_TITLE_MAX} characters for {basis} (the shortest is "
                       f"{shortest}): articles for long place names will be flagged seo_title_too_long")
        elif kind == "description" and (shortest > high or longest_length < low):
            message = (f"no variation fits {low}-{high} characters for {basis} ({shortest}-{longest_length}): "
                       "articles will be flagged meta_description_length")
        else:
            continue
        out.append(Problem(format_path(path), message, _nearest_line(path, lines)))
    return out


def load_blueprint_with_warnings(path: str | Path) -> tuple[Blueprint, list[Problem]]:
    """`load_blueprint`, plus its warnings with their lines (token suffixes, SEO templates: `blueprint_warnings`)."""
    warnings: list[Problem] = []
    blueprint = load_blueprint(path, warnings)
    return blueprint, warnings
