"""Campaign blueprints: the YAML file an operator writes to describe one campaign, and its complete validation.

A blueprint is checked in full before anything is written: unknown keys, missing fields, malformed spintax, unknown or
unavailable `{{tokens}}`, unsafe slugs and bad URLs are all collected and reported together, each with the file, the YAML
line, the field path and, for spintax, the position inside the text. `load_blueprint` either returns a `Blueprint` or raises
`BlueprintError`; it never returns something half-valid.

The format is documented field by field in the models below and shown in full in `examples/demo-roofing.yaml`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from spark_assets.content import spintax
from spark_assets.content.geo_codes import US_STATE_CODES
from spark_assets.content.names import InvalidName, slugify, validate_slug
from spark_assets.content.tokens import TOKENS, LocationMode, available_tokens, unavailable_reason

#: outline entries that are not fragment pillars
OFFER_SECTION = "offer"
FAQ_SECTION = "faq"
_PILLAR_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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
    logic: NonEmpty


class OfferBlock(_Strict):
    slug: Slug
    name: NonEmpty
    html: NonEmpty


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
    similarity_threshold: float = Field(
        0.8, gt=0, le=1, description="two articles whose shingle sets are at least this similar are near-duplicates"
    )


class Blueprint(_Strict):
    """One campaign: what to write, for whom, where, and in which order."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    slug: Slug | None = Field(None, description="URL-safe id of the campaign; derived from the name when absent")
    status: Literal["active", "inactive"] = "active"
    headline_spintax_root: NonEmpty
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
            problems.append("name has no letters or digits to derive a slug from: set 'slug'")
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
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


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


def load_blueprint(path: str | Path) -> Blueprint:
    """Read and completely validate a blueprint file, or raise BlueprintError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BlueprintError(source, [Problem("", f"cannot read file: {exc}")]) from None
    return parse_blueprint(text, source)


def parse_blueprint(text: str, source: str = "<blueprint>") -> Blueprint:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise BlueprintError(source, [Problem("", f"not valid YAML: {reason}", line)]) from None
    lines: dict[tuple[str | int, ...], int] = {}
    problems: list[Problem] = []
    if root is not None:
        _index_lines(root, (), lines, problems)
    if not isinstance(data, dict):
        raise BlueprintError(source, [Problem("", "a blueprint must be a YAML mapping of fields (name, location, ...)")])
    if problems:  # duplicate keys: YAML would silently keep the last one
        raise BlueprintError(source, problems)
    # Spintax and tokens are checked on the raw data too, so one run reports them beside any structural problem.
    problems = list(_spintax_problems(data, lines))
    try:
        blueprint = Blueprint.model_validate(data)
    except ValidationError as exc:
        problems += [_problem_from_pydantic(err, lines) for err in exc.errors()]
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.field))
        raise BlueprintError(source, problems)
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
    for i, pattern in enumerate(items("patterns")):
        if isinstance(pattern, dict):
            yield from texts(("patterns", i, "logic"), pattern.get("logic"))
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
        message = f"unknown field '{loc[-1]}'"
        field = format_path(loc[:-1])
    elif kind == "missing":
        message = f"missing required field '{loc[-1]}'"
        field = format_path(loc[:-1])
    else:
        message = err["msg"].removeprefix("Value error, ")
        field = format_path(loc)
    return Problem(field, message, _nearest_line(loc, lines))


def _spintax_problems(data: dict[str, Any], lines: dict[tuple[str | int, ...], int]) -> Iterator[Problem]:
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
        for token in spintax.tokens(tree):
            if token.name not in allowed:
                reason = unavailable_reason(token.name, mode)
                where = spintax.describe_position(text, token.position)
                yield Problem(format_path(path), f"{reason} {where}", _nearest_line(path, lines))


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
