"""What a site build reads: the site, its pages and its published articles, as plain values (no database, no dagster).

The records layer (`spark_assets.records.site_inputs`) fills these from PostgreSQL; tests and the benchmark build them by
hand. Dates are calendar dates (the site's pages carry days, not instants), so builds of the same rows are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    new_tab: bool = False
    children: tuple["NavItem", ...] = ()


@dataclass(frozen=True)
class Site:
    domain: str
    brand: str
    #: globals.title / description / logo (the brand and nothing else when the site has no globals row)
    title: str
    description: str = ""
    logo: str | None = None
    navigation: tuple[NavItem, ...] = ()
    #: Matomo's site id and the tracker's base URL; no tracking snippet when either is missing
    matomo_site_id: int | None = None
    matomo_url: str | None = None

    @property
    def url(self) -> str:
        return f"https://{self.domain}"


@dataclass(frozen=True)
class ArticlePage:
    """One published article and where it sits: its place hub and its state hub (one page in state mode)."""

    slug: str
    title: str
    content: str  # the body HTML as generated (an <h1> first)
    seo_title: str
    seo_description: str
    schema_text: str  # its JSON-LD, as stored
    published: date
    modified: date
    place_path: str
    place_label: str
    state_path: str
    state_label: str
    #: what changes whenever its stored row changes (content hash and last update): lets a build skip an unchanged
    #: article without reading its body; empty = derived from the fields above
    version: str = ""
    #: the paths its "Nearby Areas" block links (from its provenance); None = unknown, read from the body
    nearby: tuple[str, ...] | None = None


@dataclass(frozen=True)
class HubText:
    """An operator's words for a hub (the seed's hub_pages row): title, intro (HTML, sanitized) and SEO fields."""

    title: str | None = None
    intro: str | None = None
    seo_title: str | None = None
    seo_description: str | None = None


@dataclass(frozen=True)
class StaticPage:
    """A row of `pages` or `posts`, published at `path` (a page's permalink, else `/<slug>/`). Content is an
    operator's HTML, sanitized at build."""

    kind: str  # "page" or "post"
    slug: str
    path: str
    title: str
    content: str
    seo_title: str | None
    seo_description: str | None
    published: date
    modified: date
