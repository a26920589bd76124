"""Article assembly: one permutation in, one finished article out.

For each permutation the assembler fills the tokens (geo target, persona, site), picks the headline (unique within the
campaign where the spintax allows), then builds the article from the blueprint's outline: one fragment per pillar (more
for the sections between the first and the last when the article is short of the campaign's target word count; the
opening and the closing are always one), the offer block (its HTML sanitized by nh3), the FAQ,
and its links: the blueprint's link targets linked in the text where their keyword first appears (at most
CONTEXTUAL_LINKS), a few of the others in a related block that varies per article, links to the place's hub and its
state's hub, and links to the same article in the nearest places of the campaign (by great-circle distance, computed
once per campaign). Every site path comes from `urls` (the site's URL scheme). Every choice is made by a random
generator seeded with the permutation id, so the same inputs give the same article on every run and every machine. The
result carries SEO fields within their limits, schema.org JSON-LD and its provenance: which permutation, fragments,
offer and blueprint version each part came from.

Plain Python: no database and no dagster.
"""

from __future__ import annotations

import hashlib
import html
import re
import struct
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import chain, count
from typing import Any, Mapping, Sequence
from uuid import UUID

import orjson

from spark_assets.content import grammar, seo, spintax, urls
from spark_assets.content.blueprint import (
    FAQ_SECTION,
    FRAGMENT_TAG_RE,
    OFFER_SECTION,
    Blueprint,
    sanitize_fragment_html,
    sanitize_offer_html,
)
from spark_assets.content.business import local_business_node
from spark_assets.content.geo import GeoTarget, nearest_neighbours
from spark_assets.content.markup import has_visible_escaped_markup
from spark_assets.content.names import slugify
from spark_assets.content.permutations import ARTICLE_NAMESPACE, HEADLINE_NAMESPACE, Permutation, uuid5

SEO_TITLE_MAX = seo.SEO_TITLE_MAX
SEO_DESCRIPTION_MAX = seo.META_DESCRIPTION_RANGE[1]
#: the most generated_articles.seo_description holds (a CHECK in sql/0002_walls.sql)
SEO_DESCRIPTION_MAX_STORED = 160
SLUG_MAX = 200
SIBLING_LINKS = 4  # nearest places linked from an article (3-5 reads as "nearby", more as a directory)
CONTEXTUAL_LINKS = 3  # link targets linked in the text at most, so the text stays text
RELATED_LINKS = 4  # link targets in the related block at most
#: an article within this share of the target word count is "near" it
WORD_COUNT_TOLERANCE = (0.8, 1.25)

_TAG_RE = re.compile(r"<[^>]+>")
#: what a keyword link may not land in: a link the fragment already has (tag and text), or any other tag
_UNLINKABLE_RE = re.compile(r"<a\b[^>]*>.*?</a>|<[^>]*>", re.S)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")


class DuplicateSlug(ValueError):
    """Two permutations would publish at the same URL."""


@dataclass(frozen=True)
class SiteInfo:
    domain: str
    brand: str

    @property
    def url(self) -> str:
        return f"https://{self.domain}"


@dataclass(frozen=True)
class Article:
    id: UUID
    permutation_id: UUID
    slug: str
    title: str
    headline: str
    headline_unique: bool
    seo_title: str
    seo_description: str
    content: str
    word_count: int
    schema_json: dict[str, Any]
    provenance: dict[str, Any]
    issues: tuple[str, ...]
    content_hash: str = field(default="")
    schema_text: str = field(default="", repr=False)  # schema_json as compact JSON, encoded once


def truncate_words(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut at a word boundary with an ellipsis (never mid-word)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-|")
    return cut + "…"


def word_count(text: str) -> int:
    return len(_TAG_RE.sub(" ", text).split())


class ArticleAssembler:
    """Builds the articles of one campaign. Stateful only in what the campaign must keep unique: headlines and slugs."""

    def __init__(
        self,
        *,
        blueprint: Blueprint,
        campaign_slug: str,
        site: SiteInfo,
        geos: Sequence[GeoTarget],
        fragment_ids: Mapping[tuple[str, int], UUID],
        offer_ids: Mapping[str, UUID],
        blueprint_hash: str,
        generated_on: date,
        taken_slugs: frozenset[str] = frozenset(),
        taken_titles: set[int] | None = None,
        taken_descriptions: set[int] | None = None,
        taken_h1s: set[int] | None = None,
    ):
        self.blueprint = blueprint
        self.campaign_slug = campaign_slug
        self.site = site
        self.fragment_ids = fragment_ids
        self.offer_ids = offer_ids
        self.blueprint_hash = blueprint_hash
        self.generated_on = generated_on
        self.taken_slugs = taken_slugs
        # 8-byte digests (seo.digest) of the site's titles, descriptions and H1s: its other campaigns' (passed in, as
        # taken slugs are) and this campaign's so far; each article adds its own
        self._seo_titles = set(taken_titles or ())
        self._seo_descriptions = set(taken_descriptions or ())
        self._h1s = set(taken_h1s or ())
        # grammar (articles agreeing with token values, case by position) is compiled into every template's tokens
        def template(text: str, context: grammar.Context) -> seo.Template:
            return seo.Template(grammar.prepare(spintax.parse(text), context))

        self.h1_templates = {p.slug: template(p.logic, "title") for p in blueprint.patterns}
        self.seo_title_templates = {
            p.slug: template(text, "title") for p in blueprint.patterns if (text := p.seo_title or blueprint.seo_title)
        }
        self.description_templates = {
            p.slug: template(text, "sentence")
            for p in blueprint.patterns
            if (text := p.meta_description or blueprint.meta_description)
        }
        self.headline_template = template(blueprint.headline_spintax_root, "title")
        # templates become Python functions f(values, random) -> str; fragments, the bulk of every article, are compiled
        # with their literal text already HTML-escaped (but for the allowed inline tags)
        def compile_(text: str, context: grammar.Context = "sentence", literal=_collapse):
            tree = grammar.prepare(spintax.parse(text), context)
            return spintax.compile_function(spintax.compile_template(tree, literal))

        self.pattern_templates = {p.slug: compile_(p.logic, "title") for p in blueprint.patterns}
        # fragments whose text holds allowed tags have their renders sanitized again (nh3), like offers
        self.fragment_templates = {
            pillar: [
                _SanitizedTemplate(t, compile_(t, literal=_fragment_literal), sanitize_fragment_html)
                if FRAGMENT_TAG_RE.search(_collapse(t)) else compile_(t, literal=_fragment_literal)
                for t in texts
            ]
            for pillar, texts in blueprint.fragments.items()
        }
        self.heading_templates = {pillar: compile_(t, "title") for pillar, t in blueprint.headings.items()}
        self.offer_templates = [
            (o.slug, _SanitizedTemplate(o.html, compile_(o.html), sanitize_offer_html)) for o in blueprint.offer_blocks
        ]
        self.faq_templates = [(compile_(f.question), compile_(f.answer)) for f in blueprint.faq]
        self.pillars = [s for s in blueprint.outline if s not in (OFFER_SECTION, FAQ_SECTION)]
        self.siblings = nearest_neighbours(geos, SIBLING_LINKS)
        # 8-byte digests rather than the strings: a 500,000-article campaign keeps these sets in tens of MB
        self._headline_hashes: set[int] = set()
        self._geo_values: dict[str, dict[str, str]] = {}
        self._site_values = {"brand": site.brand, "domain": site.domain, "year": str(generated_on.year)}
        self._escaped_site = {k: html.escape(v) for k, v in self._site_values.items()}
        self._escaped_geo: dict[str, dict[str, str]] = {}
        self.link_items = [
            f'<li><a href="{html.escape(l.url)}">{html.escape(l.anchor)}</a></li>' for l in blueprint.link_targets
        ]
        self.link_hrefs = [html.escape(l.url) for l in blueprint.link_targets]
        self.link_needles = _link_needles([l.keyword or l.anchor for l in blueprint.link_targets])
        self._hub_html: dict[str, str] = {}
        self._slugs: dict[int, int] = {}  # digest of a slug -> ordinal of the permutation that took it
        self._id_texts: dict[UUID, str] = {}

    # --- tokens -------------------------------------------------------------------------------------------------

    def token_values(self, perm: Permutation) -> grammar.FormedValues:
        geo, persona = perm.geo, perm.persona
        geo_values = self._geo_values.get(geo.key)
        if geo_values is None:
            geo_values = self._geo_values[geo.key] = {
                "city": geo.city or "",
                "county": geo.county or "",
                "state": geo.state,
                "state_code": geo.state_code,
                "population": f"{geo.population:,}" if geo.population is not None else "",
                "location": geo.label,
            }
        draw = _random_stream(perm.id.bytes + b"pain_point")()
        pain = persona.pain_points[int(draw * len(persona.pain_points))] if persona.pain_points else ""
        return grammar.FormedValues({
            **geo_values,
            "avatar": persona.avatar_name,
            "variant": persona.variant_name,
            "pain_point": pain,
            **self._site_values,
        })

    def _escaped_values(self, perm: Permutation, values: Mapping[str, str]) -> grammar.FormedValues:
        """`values` HTML-escaped; geo and site values are escaped once per campaign, not once per article. A token's
        forms are applied to the raw value, then escaped."""
        escaped_geo = self._escaped_geo.get(perm.geo.key)
        if escaped_geo is None:
            escaped_geo = self._escaped_geo[perm.geo.key] = {
                k: html.escape(v) for k, v in self._geo_values[perm.geo.key].items()
            }
        return grammar.FormedValues({
            **escaped_geo,
            **self._escaped_site,
            "avatar": html.escape(values["avatar"]),
            "variant": html.escape(values["variant"]),
            "pain_point": html.escape(values["pain_point"]),
        }, raw=values, escape=html.escape)

    # --- headlines ----------------------------------------------------------------------------------------------

    def headline(self, perm: Permutation, values: Mapping[str, str]) -> tuple[str, bool]:
        """The permutation's headline and whether it is unique in the campaign so far. Starts at a variation chosen
        by the permutation id and walks on until it finds one not yet used (bounded), so re-runs choose the same."""
        total = self.headline_template.variations
        variation = self.headline_template.variation
        start = perm.id.int % total
        first = None
        for step in range(min(total, 64)):
            text = " ".join(variation((start + step) % total, values).split())
            digest = _digest(text)
            if first is None:
                first = (text, digest)
            if digest not in self._headline_hashes:
                self._headline_hashes.add(digest)
                return text, True
        assert first is not None
        return first[0], False

    # --- slugs --------------------------------------------------------------------------------------------------

    def slug_for(self, geo: GeoTarget, perm: Permutation) -> str:
        """The URL slug of the article for `perm`'s persona and pattern in `geo` (used for siblings too)."""
        parts = f"{geo.key} {perm.pattern.slug} {perm.persona.avatar_slug} {perm.persona.variant_slug}"
        slug = _bounded_slug(parts)
        if slug in self.taken_slugs:  # another campaign of the site has it: keep ours apart with the campaign slug
            slug = _bounded_slug(f"{parts} {self.campaign_slug}")
        return slug

    def _claim_slug(self, slug: str, perm: Permutation) -> None:
        other = self._slugs.setdefault(_digest(slug), perm.ordinal)
        if other != perm.ordinal:
            raise DuplicateSlug(
                f"slug '{slug}' would be used by both permutation #{other} and {perm.combination_key}: "
                "make the pattern, avatar and variant slugs distinct"
            )

    # --- the article --------------------------------------------------------------------------------------------

    def assemble(self, perm: Permutation) -> Article:
        values = self.token_values(perm)
        html_values = self._escaped_values(perm, values)
        seed = perm.id.bytes

        def rng(part: str):
            # one stream per part, so editing one fragment changes that part of an article and nothing else
            return _random_stream(seed + part.encode())

        headline, headline_unique = self.headline(perm, values)
        # the H1: the pattern's rendering as drawn, unless the site has it already; then the pattern's other variations
        drawn = " ".join(self.pattern_templates[perm.pattern.slug](values, rng("title")).split())
        h1 = seo.choose(self.h1_templates[perm.pattern.slug], values, perm.id.int, self._h1s, seo.always_fits, first=drawn)
        title = h1.text
        slug = self.slug_for(perm.geo, perm)
        self._claim_slug(slug, perm)

        # one fragment per pillar, then more (other alternatives) while the article is short of its target
        chosen: dict[str, list[int]] = {
            p: [int(rng(f"pick:{p}")() * len(self.fragment_templates[p]))] for p in self.pillars
        }
        texts: dict[str, list[str]] = {
            p: [self._fragment(p, i, html_values, rng) for i in idx] for p, idx in chosen.items()
        }
        offer_slug, offer_html = None, ""
        if OFFER_SECTION in self.blueprint.outline:
            offer_slug, offer = self.offer_templates[int(rng("pick:offer")() * len(self.offer_templates))]
            # the blueprint's own HTML: refused at import if it holds anything the allow-list does not, and sanitized
            # here too, so markup that only appears once spintax is put together is stripped as well
            offer_html = offer(html_values, rng(f"offer:{offer_slug}"))
        faq_positions = self._faq_positions(rng) if FAQ_SECTION in self.blueprint.outline else []
        faq = [
            (self.faq_templates[i][0](values, rng(f"faq:{i}:q")), self.faq_templates[i][1](values, rng(f"faq:{i}:a")))
            for i in faq_positions
        ]
        headings = {p: t(values, rng(f"heading:{p}")) for p, t in self.heading_templates.items() if p in chosen}

        target = self.blueprint.target_word_count
        words = (
            sum(_fragment_words(t) for ts in texts.values() for t in ts)
            + word_count(offer_html)
            + sum(_fragment_words(q) + _fragment_words(a) for q, a in faq)
        )
        # the opening and the closing section never take a second alternative: two openings (each greeting the reader
        # as their persona) or two sign-offs read as a copy-paste accident; the sections between may go deeper
        middle = self.pillars[1:-1] if len(self.pillars) > 2 else []
        extendable = [p for p in middle if len(self.fragment_templates[p]) > 1]
        while words < target * 0.9 and extendable:
            for pillar in list(extendable):
                alternatives = len(self.fragment_templates[pillar])
                used = chosen[pillar]
                if len(used) >= alternatives:
                    extendable.remove(pillar)
                    continue
                nxt = (used[-1] + 1) % alternatives
                while nxt in used:
                    nxt = (nxt + 1) % alternatives
                used.append(nxt)
                extra = self._fragment(pillar, nxt, html_values, rng)
                texts[pillar].append(extra)
                words += _fragment_words(extra)
                if words >= target * 0.9:
                    break

        linked_texts, link_blocks, nearby = self._links(perm, texts, rng("related"))
        body = [f"<h1>{html.escape(title)}</h1>"]
        for section in self.blueprint.outline:
            if section == OFFER_SECTION:
                body.append(offer_html)
            elif section == FAQ_SECTION:
                items = "".join(f"<h3>{html.escape(q)}</h3><p>{html.escape(a)}</p>" for q, a in faq)
                body.append(f'<section class="faq"><h2>Frequently Asked Questions</h2>{items}</section>')
            else:
                heading = f"<h2>{html.escape(headings[section])}</h2>" if section in headings else ""
                paragraphs = "".join(_paragraph(t) for t in linked_texts[section])  # escaped when compiled
                body.append(f'<section class="{section}">{heading}{paragraphs}</section>')
        body.extend(link_blocks)
        content = "\n".join(body)

        intro = html.unescape(_TAG_RE.sub("", texts[self.pillars[0]][0])) if self.pillars else title
        seo_title, seo_description, seo_issues = self._seo_fields(perm, values, headline, title, intro)
        url = urls.absolute(self.site.domain, urls.article_path(slug))
        schema = self._schema(perm, title, seo_description, url, words, faq)

        issues = []
        if not headline_unique:
            issues.append("duplicate_headline")
        if not h1.unique:
            issues.append("duplicate_h1")
        issues += seo_issues
        low, high = WORD_COUNT_TOLERANCE
        if words < target * low:
            issues.append("word_count_low")
        elif words > target * high:
            issues.append("word_count_high")
        if any(ch in text for text in (title, seo_title, seo_description, content) for ch in "{}"):
            issues.append("unresolved_markup")
        if has_visible_escaped_markup(content):  # e.g. "&lt;strong&gt;" a reader would see as text
            issues.append("visible_escaped_markup")

        perm_id = str(perm.id)
        id_text = self._id_text
        provenance = {
            "permutation_id": perm_id,
            "combination": perm.combination_key,
            "geo_id": id_text(perm.geo.id),
            "avatar_id": id_text(perm.persona.avatar_id),
            "variant_id": id_text(perm.persona.variant_id),
            "pattern_id": id_text(perm.pattern.id),
            "headline_id": str(uuid5(HEADLINE_NAMESPACE, perm_id)),
            "fragments": [
                {"section": p, "position": i, "fragment_id": id_text(self.fragment_ids.get((p, i)))}
                for p in self.pillars
                for i in chosen[p]
            ],
            "offer_block_id": id_text(self.offer_ids.get(offer_slug)) if offer_slug else None,
            "faq_fragment_ids": [id_text(self.fragment_ids.get((FAQ_SECTION, i))) for i in faq_positions],
            "blueprint_hash": self.blueprint_hash,
            # the paths its "Nearby Areas" block links: a site build drops those not published without reading bodies
            "nearby": nearby,
        }
        # orjson writes the bytes json.dumps(ensure_ascii=False, separators=(",", ":")) writes, five times faster
        schema_text = orjson.dumps(schema).decode()
        return Article(
            id=uuid5(ARTICLE_NAMESPACE, perm_id),
            permutation_id=perm.id,
            slug=slug,
            title=title,
            headline=headline,
            headline_unique=headline_unique,
            seo_title=seo_title,
            seo_description=seo_description,
            content=content,
            word_count=words,
            schema_json=schema,
            provenance=provenance,
            issues=tuple(issues),
            content_hash=hashlib.sha256(
                "\x1f".join((slug, title, headline, seo_title, seo_description, content, schema_text)).encode()
            ).hexdigest(),
            schema_text=schema_text,
        )

    def _id_text(self, value: UUID | None) -> str | None:
        """str(value), kept: the same few place, persona, pattern and fragment ids recur in every article's provenance."""
        if value is None:
            return None
        text = self._id_texts.get(value)
        if text is None:
            text = self._id_texts[value] = str(value)
        return text

    def _fragment(self, pillar: str, index: int, html_values: Mapping[str, str], rng) -> str:
        return self.fragment_templates[pillar][index](html_values, rng(f"{pillar}:{index}"))

    def _faq_positions(self, rng) -> list[int]:
        """The FAQ entries this article shows, in blueprint order: all, or `faq_per_article` of them drawn per
        article (a partial Fisher-Yates shuffle on the article's own stream)."""
        positions = list(range(len(self.faq_templates)))
        k = self.blueprint.faq_per_article
        if k is None or k >= len(positions):
            return positions
        draw = rng("faq:pick")
        for i in range(k):
            j = i + int(draw() * (len(positions) - i))
            positions[i], positions[j] = positions[j], positions[i]
        return sorted(positions[:k])

    def _seo_fields(
        self, perm: Permutation, values: Mapping[str, str], headline: str, title: str, intro: str
    ) -> tuple[str, str, list[str]]:
        """The title tag and meta description, written by the blueprint (see `content.seo`), and their issues.

        Without `seo_title` the headline is the title tag when it fits (with " | brand" when that fits too), else the
        H1 when it fits, else the headline uncut and flagged. Without `meta_description`, the intro's leading whole
        sentences (`seo.description_from_intro`), flagged when outside the range or already used on the site."""
        issues: list[str] = []
        title_template = self.seo_title_templates.get(perm.pattern.slug)
        if title_template is not None:
            # a start of its own, so the title tag does not move in step with the headline and H1
            chosen = seo.choose(title_template, values, perm.id.int >> 7, self._seo_titles, seo.title_distance)
            seo_title, fits, unique = chosen.text, chosen.fits, chosen.unique
        else:
            seo_title = next((t for t in (headline, title) if len(t) <= SEO_TITLE_MAX), headline)
            if len(f"{seo_title} | {self.site.brand}") <= SEO_TITLE_MAX and self.site.brand not in seo_title:
                seo_title = f"{seo_title} | {self.site.brand}"
            fits = len(seo_title) <= SEO_TITLE_MAX
            key = seo.digest(seo_title)
            unique = key not in self._seo_titles
            self._seo_titles.add(key)
        if not fits:
            issues.append("seo_title_too_long")
        if not unique:
            issues.append("duplicate_seo_title")
        description_template = self.description_templates.get(perm.pattern.slug)
        if description_template is not None:
            chosen = seo.choose(
                description_template, values, perm.id.int >> 13, self._seo_descriptions, seo.description_distance
            )
            description, fits, unique = chosen.text, chosen.fits, chosen.unique
        else:
            description = seo.description_from_intro(intro)
            fits = seo.description_distance(description) == 0
            key = seo.digest(description)
            unique = key not in self._seo_descriptions
            self._seo_descriptions.add(key)
        if not fits:
            issues.append("meta_description_length")
        if not unique:
            issues.append("duplicate_meta_description")
        # what cannot be stored whole (the columns hold at most 60 / 160 characters) is left empty, flagged, never cut:
        # the gate blocks an article without a title tag; one without a description gets the search engine's snippet
        if len(seo_title) > SEO_TITLE_MAX:
            seo_title = ""
        if len(description) > SEO_DESCRIPTION_MAX_STORED:
            description = ""
        return seo_title, description, issues

    # --- links --------------------------------------------------------------------------------------------------

    def _links(
        self, perm: Permutation, texts: dict[str, list[str]], draw
    ) -> tuple[dict[str, list[str]], list[str], list[str]]:
        """The pillar paragraphs with the link targets linked in the text, the link blocks that follow the text
        (related link targets, the place's hubs and the nearest places' articles), and the nearest places' paths."""
        texts = {pillar: list(paragraphs) for pillar, paragraphs in texts.items()}
        linked = self._link_keywords(texts)
        blocks = []
        # related: a per-article choice among the targets not linked in the text, so pages do not all carry one block
        rest = [i for i in range(len(self.link_items)) if i not in linked]
        for k in range(len(rest) - 1, 0, -1):  # Fisher-Yates with the article's own "related" stream
            j = int(draw() * (k + 1))
            rest[k], rest[j] = rest[j], rest[k]
        if rest:
            items = "".join(self.link_items[i] for i in rest[:RELATED_LINKS])
            blocks.append(f'<nav class="related"><h2>Related Services</h2><ul>{items}</ul></nav>')
        blocks.append(self._hubs(perm.geo))
        siblings = self.siblings.get(perm.geo.key, [])
        nearby = [urls.article_path(self.slug_for(g, perm)) for g in siblings]
        if siblings:
            items = "".join(f'<li><a href="{path}">{html.escape(g.label)}</a></li>' for g, path in zip(siblings, nearby))
            blocks.append(f'<nav class="nearby"><h2>Nearby Areas</h2><ul>{items}</ul></nav>')
        return texts, blocks, nearby

    def _link_keywords(self, texts: dict[str, list[str]]) -> set[int]:
        """Link (in place) each link target at the first appearance of its keyword (its anchor when it has none) in
        the pillar paragraphs, in outline order, at most CONTEXTUAL_LINKS in all; returns the indexes of those linked.

        Paragraphs are escaped text, with at most the fragment tags a blueprint may write (`<strong>`, `<a href>`, ...);
        keywords are matched escaped, as whole words, case-insensitively, outside every tag and every link the text
        already has, so a link never lands inside a tag, an entity or another link. A keyword whose first appearance lies inside
        another target's link (longer keywords win where two start together) is not linked anywhere: its first
        appearance is taken. str.find on the lowered text, not one big regex: a regex alternation scans every
        position of a 900-word article in Python's engine (hundreds of microseconds), find runs at memchr speed."""
        linked: set[int] = set()
        if not self.link_needles:
            return linked
        pending = list(self.link_needles)  # (target, lowered escaped keyword), longest keyword first
        for pillar in self.pillars:
            paragraphs = texts[pillar]
            for n, text in enumerate(paragraphs):
                lowered = text.lower()
                if len(lowered) != len(text):  # a character whose lower case is longer: offsets would drift
                    continue
                if "<" in lowered:  # the fragment's own markup: tags and the text of its links are not linkable
                    lowered = _UNLINKABLE_RE.sub(lambda m: "\x00" * len(m.group()), lowered)
                found = []
                for target, needle in pending:
                    at = _find_word(lowered, needle)
                    if at >= 0:
                        found.append((at, -len(needle), target))
                if not found:
                    continue
                found.sort()
                spans: list[tuple[int, int, int]] = []
                for at, minus_length, target in found:
                    pending = [p for p in pending if p[0] != target]  # its first appearance is here, linked or not
                    end = at - minus_length
                    if len(linked) < CONTEXTUAL_LINKS and (not spans or at >= spans[-1][1]):
                        spans.append((at, end, target))
                        linked.add(target)
                if spans:
                    out, last = [], 0
                    for start, end, target in spans:
                        out += [text[last:start], f'<a href="{self.link_hrefs[target]}">', text[start:end], "</a>"]
                        last = end
                    paragraphs[n] = "".join(out) + text[last:]
                if len(linked) >= CONTEXTUAL_LINKS or not pending:
                    return linked
        return linked

    def _hubs(self, geo: GeoTarget) -> str:
        """Links to the place's hub page and its state's hub page (one page in state mode), once per geo target."""
        block = self._hub_html.get(geo.key)
        if block is None:
            place, state = urls.place_hub_path(geo), urls.state_hub_path(geo.state)
            items = f'<li><a href="{place}">{html.escape(geo.label)}</a></li>'
            if state != place:
                items += f'<li><a href="{state}">{html.escape(geo.state)}</a></li>'
            block = self._hub_html[geo.key] = f'<nav class="hubs"><h2>More Local Guides</h2><ul>{items}</ul></nav>'
        return block

    def _schema(
        self, perm: Permutation, title: str, description: str, url: str, words: int, faq: list[tuple[str, str]]
    ) -> dict[str, Any]:
        site = self.site
        home = urls.absolute(site.domain, urls.HOME)
        organization = {"@type": "Organization", "name": site.brand, "url": home}
        crumbs = [("Home", home), (perm.geo.state, urls.absolute(site.domain, urls.state_hub_path(perm.geo.state)))]
        if perm.geo.city or perm.geo.county:
            crumbs.append((perm.geo.label, urls.absolute(site.domain, urls.place_hub_path(perm.geo))))
        crumbs.append((title, url))
        graph: list[dict[str, Any]] = [
            {
                "@type": "Article",
                "@id": f"{url}#article",
                "headline": truncate_words(title, 110),
                **({"description": description} if description else {}),
                "inLanguage": "en-US",
                # no datePublished / dateModified here: they are not content, and storing them in the hashed article
                # would make publishing it a change; the site build adds them from generated_articles.published_at
                # and date_updated
                "wordCount": words,
                "author": organization,
                "publisher": organization,
                "mainEntityOfPage": url,
                "about": {"@type": "Place", "name": perm.geo.label},
            },
            {
                "@type": "BreadcrumbList",
                "itemListElement": [
                    {"@type": "ListItem", "position": i, "name": name, "item": item}
                    for i, (name, item) in enumerate(crumbs, start=1)
                ],
            },
        ]
        business = self.blueprint.business
        if business is not None:
            article = graph[0]
            if business.image:
                article["image"] = business.image
            article["publisher"] = {"@id": f"{site.url}/#business"}
            graph.append(local_business_node(business, site.url, _place(perm.geo)))
        if faq:
            graph.append(
                {
                    "@type": "FAQPage",
                    "mainEntity": [
                        {"@type": "Question", "name": q, "acceptedAnswer": {"@type": "Answer", "text": a}}
                        for q, a in faq
                    ],
                }
            )
        return {"@context": "https://schema.org", "@graph": graph}




def _place(geo: GeoTarget) -> dict[str, Any]:
    """The schema.org place of a geo target: a City, or an AdministrativeArea (county, state)."""
    if geo.city:
        return {"@type": "City", "name": geo.label}
    return {"@type": "AdministrativeArea", "name": geo.label}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
_WHITESPACE_RE = re.compile(r"\s+")


def _collapse(text: str) -> str:
    return _WHITESPACE_RE.sub(" ", text)


def _fragment_literal(text: str) -> str:
    """A fragment's literal text as HTML: the allowed inline tags (blueprint.FRAGMENT_TAG_RE, checked at import) kept,
    everything else escaped, so a "<" in prose shows as "<"."""
    text = _WHITESPACE_RE.sub(" ", text)
    out, end = [], 0
    for tag in FRAGMENT_TAG_RE.finditer(text):
        out.append(html.escape(text[end:tag.start()]))
        out.append(tag.group())
        end = tag.end()
    out.append(html.escape(text[end:]))
    return "".join(out)


class _SanitizedTemplate:
    """A compiled template of HTML whose every render is sanitized (nh3), at the cost of the sanitizer once per
    template rather than once per render where that gives the same bytes.

    nh3 parses a render and writes it out again: tags outside the allow-list dropped, unbalanced ones closed, and text
    re-serialized (only `&`, `<`, `>` and no-break spaces escaped, so the `&quot;` and `&#x27;` of an html.escape'd
    token value come back as `"` and `'`). When a template's markup cannot vary between renders (every tag sits in
    text outside all choices and holds no token, and no choice writes `<`, `>` or `&`), renders differ only in text
    that html.escape wrote, and sanitizing one is that re-serialization (`_reserialized_text`). The first
    FAST_PATH_CHECKS renders are sanitized both ways and compared; any difference (say the template's own markup is
    unbalanced or not allowed) and every render goes through nh3, as before."""

    FAST_PATH_CHECKS = 8

    def __init__(self, text: str, function, sanitize) -> None:
        self.function = function
        self.sanitize = sanitize
        self.markup_is_fixed = _markup_is_fixed(spintax.parse(_collapse(text)))
        self.checks_left = self.FAST_PATH_CHECKS

    def __call__(self, values: Mapping[str, str], draw) -> str:
        render = self.function(values, draw)
        if self.markup_is_fixed:
            fast = _reserialized_text(render)
            if fast is not None:
                if not self.checks_left:
                    return fast
                sanitized = self.sanitize(render)
                if sanitized == fast:
                    self.checks_left -= 1
                else:
                    self.markup_is_fixed = False
                return sanitized
        return self.sanitize(render)


_TAG_IN_SKELETON_RE = re.compile(r"<[^>]*>?")


def _markup_is_fixed(tree: spintax.Sequence) -> bool:
    """Whether every render of the template has the same tags: tags only in text outside all choices, holding no token
    and no choice (nor an entity or a no-break space), and no choice that writes `<`, `>` or `&`."""
    skeleton = []
    for node in tree.nodes:
        if isinstance(node, spintax.Text):
            skeleton.append(node.value)
        elif isinstance(node, spintax.Token):
            skeleton.append("\x01")
        else:
            if _writes_markup(node):
                return False
            skeleton.append("\x02")
    return not any(
        any(ch in tag.group() for ch in "\x01\x02&\xa0") for tag in _TAG_IN_SKELETON_RE.finditer("".join(skeleton))
    )


def _writes_markup(node) -> bool:
    if isinstance(node, spintax.Text):
        return any(ch in node.value for ch in "<>&")
    if isinstance(node, spintax.Token):
        return False
    return any(_writes_markup(n) for option in node.options for n in option.nodes)


def _reserialized_text(render: str) -> str | None:
    """How an HTML serializer writes back text that html.escape wrote; None where parsing itself would change the
    text (carriage returns and NULs are normalized by the HTML parser)."""
    if "\r" in render or "\x00" in render:
        return None
    if "&" in render:
        render = render.replace("&quot;", '"').replace("&#x27;", "'")
    return render.replace("\xa0", "&nbsp;") if "\xa0" in render else render


_BLOCK_TAGS = ("<p>", "<ul>", "<ol>")


def _paragraph(fragment: str) -> str:
    """A rendered fragment as body HTML: a paragraph, unless it brings its own block markup (never <p> in a <p>)."""
    if "<" not in fragment or not any(tag in fragment for tag in _BLOCK_TAGS):
        return f"<p>{fragment}</p>"
    return fragment if fragment.startswith(_BLOCK_TAGS) else f"<div>{fragment}</div>"


def _fragment_words(fragment: str) -> int:
    return len(fragment.split()) if "<" not in fragment else word_count(fragment)


_UNPACK_16 = struct.Struct("<16I").unpack
_TO_UNIT = (2.3283064365386963e-10).__mul__  # x / 2**32, bit for bit


def _random_stream(seed: bytes):
    """A stream of floats in [0, 1) determined by `seed`: BLAKE2b of seed and a counter, 16 draws per digest. Cheap to
    start (an article starts about thirty; seeding a Mersenne Twister costs more than all the draws together) and the
    same on every platform and Python version. The draws come out of C iterators (chain, map): an article takes a few
    hundred, and a Python generator's frame per draw cost a tenth of its assembly."""

    def block(counter: int):
        return map(_TO_UNIT, _UNPACK_16(hashlib.blake2b(seed + counter.to_bytes(4, "little"), digest_size=64).digest()))

    return chain.from_iterable(map(block, count())).__next__


@lru_cache(maxsize=1 << 16)
def _bounded_slug(text: str) -> str:
    slug = slugify(text, max_length=10_000)
    if len(slug) <= SLUG_MAX:
        return slug
    suffix = hashlib.sha256(slug.encode()).hexdigest()[:8]
    return slugify(slug, max_length=SLUG_MAX - 9) + "-" + suffix


def _link_needles(keywords: Sequence[str]) -> list[tuple[int, str]]:
    """(index, keyword HTML-escaped and lowered) per link target with a keyword, longest first."""
    needles = [(i, html.escape(" ".join(k.split())).lower()) for i, k in enumerate(keywords) if k.strip()]
    return sorted(needles, key=lambda n: -len(n[1]))


def _find_word(text: str, needle: str) -> int:
    """Where `needle` first appears in `text` as a whole word (no word character either side, not inside an entity
    such as "&amp;"), or -1."""
    at = text.find(needle)
    while at >= 0:
        before = text[at - 1] if at else " "
        after_at = at + len(needle)
        after = text[after_at] if after_at < len(text) else " "
        if not (before.isalnum() or before in "_&#") and not (after.isalnum() or after == "_"):
            return at
        at = text.find(needle, at + 1)
    return -1
