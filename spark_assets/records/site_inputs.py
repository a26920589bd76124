"""What a site build reads from PostgreSQL, and the `site_builds` rows it leaves. No dagster.

Every query is scoped to one site id: a site's build never reads another site's articles, pages or hubs. Articles are
streamed (server-side cursors, a thousand rows at a time), so a build's memory does not grow with the site.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spark_assets.content import urls
from spark_assets.content.geo import GeoTarget
from spark_assets.site.build import (
    FEED_SIZE,
    BuildResult,
    HubMember,
    SlugRange,
    Theme,
    build_site,
    load_manifest,
    reused_build,
)
from spark_assets.site.model import ArticlePage, HubText, NavItem, Site, StaticPage

#: how an article's place is read: its permutation's geo target (the same data its breadcrumbs were made from)
_PLACE_COLUMNS = """g.location_key, g.label AS place_label, g.city, g.county, g.state, g.state_code"""
_PUBLISHED = """FROM generated_articles a
                JOIN cartesian_permutations p ON p.id = a.permutation_id
                JOIN geo_intelligence g ON g.id = p.geo_id
                WHERE a.site_id = :s AND a.status = 'published'"""
_DATES = """(a.published_at AT TIME ZONE 'UTC')::date AS published,
            (greatest(a.content_updated_at, a.published_at) AT TIME ZONE 'UTC')::date AS modified"""
STREAM_ROWS = 1000
#: articles in slug order by code point (as Python sorts them), whatever the database's collation
_BY_SLUG = 'a.slug COLLATE "C"'


@dataclass(frozen=True)
class SiteRow:
    id: UUID
    domain: str


def load_site(conn: Connection, domain: str, matomo_url: str | None) -> tuple[SiteRow, Site]:
    """The site row, its globals and navigation as the build's `Site`."""
    row = conn.execute(
        sa.text(
            """SELECT s.id, s.domain, coalesce(s.brand_name, s.name) AS brand, s.matomo_site_id,
                      gl.title, gl.description, gl.logo
               FROM sites s LEFT JOIN globals gl ON gl.site_id = s.id WHERE s.domain = :d"""
        ),
        {"d": domain},
    ).first()
    if row is None:
        raise LookupError(f"site '{domain}' is not registered: add it with `spark site add {domain}`")
    nav_rows = conn.execute(
        sa.text("SELECT id, label, url, parent, target FROM navigation WHERE site_id = :s ORDER BY sort, label, id"),
        {"s": row.id},
    ).all()
    children: dict[UUID, list[NavItem]] = {}
    for nav in nav_rows:
        if nav.parent is not None:
            children.setdefault(nav.parent, []).append(NavItem(nav.label, nav.url, nav.target == "_blank"))
    navigation = tuple(
        NavItem(nav.label, nav.url, nav.target == "_blank", tuple(children.get(nav.id, ())))
        for nav in nav_rows
        if nav.parent is None
    )
    site = Site(
        domain=row.domain,
        brand=row.brand,
        title=row.title or row.brand,
        description=row.description or "",
        logo=row.logo,
        navigation=navigation,
        matomo_site_id=row.matomo_site_id,
        matomo_url=matomo_url if row.matomo_site_id else None,
    )
    return SiteRow(row.id, row.domain), site


@lru_cache(maxsize=4096)
def _place(location_key: str, place_label: str | None, city: str | None, county: str | None, state: str,
           state_code: str | None) -> tuple[str, str, str]:
    """(place hub path, place label, state hub path) of a geo target: computed once per place, not per article."""
    geo = GeoTarget(None, location_key, place_label or location_key, state, state_code, city=city, county=county)
    return urls.place_hub_path(geo), geo.label, urls.state_hub_path(geo.state)


def _article(row, light: bool = False) -> ArticlePage:
    place_path, place_label, state_path = _place(row.location_key, row.place_label, row.city, row.county, row.state,
                                                 row.state_code)
    nearby = row.nearby if light else None
    return ArticlePage(
        slug=row.slug, title=row.title, content="" if light else row.content, seo_title=row.seo_title or "",
        seo_description=row.seo_description or "", schema_text="" if light else (row.schema_text or ""),
        published=row.published, modified=row.modified, place_path=place_path, place_label=place_label,
        state_path=state_path, state_label=row.state, version=row.version,
        nearby=tuple(nearby) if isinstance(nearby, list) else None,
    )


#: changes whenever the row does: its content hash (what it says) and date_updated (any edit, by any writer)
_VERSION = "coalesce(a.content_hash, '') || '@' || a.date_updated::text AS version"
_FULL_COLUMNS = f"""a.slug, a.title, a.content, a.seo_title, a.seo_description, a.schema_json::text AS schema_text,
                    {_VERSION}, {_DATES}, {_PLACE_COLUMNS}"""


def stream_articles(engine: Engine, site_id: UUID) -> Iterator[ArticlePage]:
    """The site's published articles ordered by slug, streamed, without their bodies: what a build needs to decide
    which pages are unchanged (`stream_article_bodies` reads the rest for those that are not)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
            sa.text(
                f"""SELECT a.slug, a.title, a.seo_title, a.seo_description, {_VERSION},
                           a.provenance -> 'nearby' AS nearby, {_DATES}, {_PLACE_COLUMNS}
                    {_PUBLISHED} ORDER BY {_BY_SLUG}"""
            ),
            {"s": site_id},
        )
        for row in result:
            yield _article(row, light=True)


def stream_article_bodies(engine: Engine, site_id: UUID,
                          slugs: list[str] | SlugRange | None = None) -> Iterator[ArticlePage]:
    """The full rows of the site's published articles among `slugs` (a list, a SlugRange, or all of them when None),
    ordered by slug (code points), streamed."""
    if isinstance(slugs, SlugRange):
        bounds = "".join([" AND a.slug COLLATE \"C\" >= :low" if slugs.low is not None else "",
                          " AND a.slug COLLATE \"C\" < :high" if slugs.high is not None else ""])
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
                sa.text(f"SELECT {_FULL_COLUMNS} {_PUBLISHED}{bounds} ORDER BY {_BY_SLUG}"),
                {"s": site_id, "low": slugs.low, "high": slugs.high})
            for row in result:
                yield _article(row)
        return
    wanted = set(slugs) if slugs is not None else None
    with engine.connect() as conn:
        if wanted is not None and len(wanted) <= 2 * STREAM_ROWS:
            query, params = f"SELECT {_FULL_COLUMNS} {_PUBLISHED} AND a.slug = ANY(:slugs) ORDER BY {_BY_SLUG}", {
                "s": site_id, "slugs": sorted(wanted)}
        elif wanted:  # many: one pass over their range (a build's half) beats a huge ANY array; the rest is skipped
            query, params = (f"""SELECT {_FULL_COLUMNS} {_PUBLISHED}
                                 AND a.slug COLLATE "C" BETWEEN :low AND :high ORDER BY {_BY_SLUG}""",
                             {"s": site_id, "low": min(wanted), "high": max(wanted)})
        else:
            query, params = f"SELECT {_FULL_COLUMNS} {_PUBLISHED} ORDER BY {_BY_SLUG}", {"s": site_id}
        result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(sa.text(query), params)
        for row in result:
            if wanted is None or row.slug in wanted:
                yield _article(row)


def stream_hub_members(engine: Engine, site_id: UUID) -> Iterator[HubMember]:
    """The same articles as their hubs list them, ordered by state, then place (a state-mode target first), then
    title, streamed."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
            sa.text(
                f"""SELECT a.slug, a.title, {_DATES}, {_PLACE_COLUMNS} {_PUBLISHED}
                    ORDER BY g.state,
                             CASE WHEN g.city IS NULL AND g.county IS NULL THEN '' ELSE g.location_key END,
                             a.title, a.slug"""
            ),
            {"s": site_id},
        )
        for row in result:
            place_path, place_label, state_path = _place(row.location_key, row.place_label, row.city, row.county,
                                                         row.state, row.state_code)
            yield HubMember(state_path, row.state, place_path, place_label, row.slug, row.title, row.modified)


def latest_articles(conn: Connection, site_id: UUID, limit: int) -> list[ArticlePage]:
    rows = conn.execute(
        sa.text(
            # the newest ids first, on narrow rows: sorting the full rows would read every body of the site
            f"""SELECT {_FULL_COLUMNS} {_PUBLISHED}
                AND a.id IN (SELECT id FROM generated_articles WHERE site_id = :s AND status = 'published'
                             ORDER BY published_at DESC, slug DESC LIMIT :n)
                ORDER BY a.published_at DESC, a.slug DESC"""
        ),
        {"s": site_id, "n": limit},
    )
    return [_article(row) for row in rows]


def static_pages(conn: Connection, site_id: UUID) -> list[StaticPage]:
    """The site's published pages (at their permalink, else `/<slug>/`) and posts (at `/<slug>/`)."""
    pages = [
        StaticPage("page", r.slug, r.permalink or urls.article_path(r.slug), r.title, r.content or "", r.seo_title,
                   r.seo_description, r.published, r.modified)
        for r in conn.execute(
            sa.text(
                """SELECT slug, permalink, title, content, seo_title, seo_description,
                          (date_created AT TIME ZONE 'UTC')::date AS published,
                          (date_updated AT TIME ZONE 'UTC')::date AS modified
                   FROM pages WHERE site_id = :s AND status = 'published' ORDER BY slug"""
            ),
            {"s": site_id},
        )
    ]
    posts = [
        StaticPage("post", r.slug, urls.article_path(r.slug), r.title, r.content or "", None, r.excerpt,
                   r.published, r.modified)
        for r in conn.execute(
            sa.text(
                """SELECT slug, title, content, excerpt,
                          (coalesce(published_at, date_created) AT TIME ZONE 'UTC')::date AS published,
                          (date_updated AT TIME ZONE 'UTC')::date AS modified
                   FROM posts WHERE site_id = :s AND status = 'published' ORDER BY slug"""
            ),
            {"s": site_id},
        )
    ]
    return pages + posts


def hub_texts(conn: Connection, site_id: UUID) -> dict[str, HubText]:
    """The operator's words for the site's hubs, by hub slug ("texas", "austin-tx"); archived rows are ignored."""
    rows = conn.execute(
        sa.text(
            """SELECT slug, title, content, seo_title, seo_description FROM hub_pages
               WHERE site_id = :s AND status <> 'archived'"""
        ),
        {"s": site_id},
    )
    return {r.slug: HubText(r.title, r.content, r.seo_title, r.seo_description) for r in rows}


def site_fingerprint(conn: Connection, site_id: UUID) -> str:
    """One digest over every row a build of the site reads: its published articles (version, dates, place), pages,
    posts, hub texts, globals, navigation and the site row. Equal digests, equal inputs: a build can reuse the previous
    manifest without reading anything else (`build_site`'s `fingerprint`). One aggregate query, ~6 ms per 1,000
    articles."""
    # the articles: their count and the sum of a 64-bit hash per row (order-free, so no sort; a changed, added or
    # removed row changes it, barring a 2^-64 coincidence)
    return conn.execute(
        sa.text(
            """SELECT md5(concat_ws('|',
                 (SELECT concat_ws(':', count(*), sum(hashtextextended(concat_ws(':', a.slug, a.content_hash,
                                   a.date_updated, a.published_at, a.content_updated_at, g.id, g.date_updated), 0)
                                   ::numeric))
                  FROM generated_articles a JOIN cartesian_permutations p ON p.id = a.permutation_id
                  JOIN geo_intelligence g ON g.id = p.geo_id WHERE a.site_id = :s AND a.status = 'published'),
                 (SELECT string_agg(concat_ws(':', id, status, date_updated), ',' ORDER BY id)
                  FROM pages WHERE site_id = :s),
                 (SELECT string_agg(concat_ws(':', id, status, date_updated), ',' ORDER BY id)
                  FROM posts WHERE site_id = :s),
                 (SELECT string_agg(concat_ws(':', id, status, date_updated), ',' ORDER BY id)
                  FROM hub_pages WHERE site_id = :s),
                 (SELECT string_agg(concat_ws(':', id, date_updated), ',' ORDER BY id)
                  FROM navigation WHERE site_id = :s),
                 (SELECT concat_ws(':', id, date_updated) FROM globals WHERE site_id = :s),
                 (SELECT concat_ws(':', domain, brand_name, name, matomo_site_id) FROM sites WHERE id = :s)))"""
        ),
        {"s": site_id},
    ).scalar_one()


# --- site_builds --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoodBuild:
    id: UUID
    tree: str
    manifest_path: str
    manifest_hash: str


def good_build(conn: Connection, site_id: UUID) -> GoodBuild | None:
    """The site's last good build row (the one a release ships), or None."""
    row = conn.execute(
        sa.text(
            """SELECT id, output_path, manifest_path, manifest_hash FROM site_builds
               WHERE site_id = :s AND status = 'built' AND manifest_path IS NOT NULL
               ORDER BY finished_at DESC NULLS LAST, date_created DESC LIMIT 1"""
        ),
        {"s": site_id},
    ).first()
    return GoodBuild(*row) if row else None


def last_good_build(conn: Connection, site_id: UUID) -> tuple[Path, Path] | None:
    """(tree, manifest) of the site's last good build, or None."""
    build = good_build(conn, site_id)
    return (Path(build.tree), Path(build.manifest_path)) if build else None


def last_good_manifest(conn: Connection, site_id: UUID) -> Path | None:
    build = last_good_build(conn, site_id)
    return build[1] if build else None


def start_build(conn: Connection, site_id: UUID, output_path: Path) -> UUID:
    return conn.execute(
        sa.text(
            """INSERT INTO site_builds (site_id, status, output_path, started_at)
               VALUES (:s, 'building', :out, now()) RETURNING id"""
        ),
        {"s": site_id, "out": str(output_path)},
    ).scalar_one()


def finish_build(conn: Connection, build_id: UUID, **values) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    conn.execute(
        sa.text(f"UPDATE site_builds SET {assignments}, status = 'built', finished_at = now() WHERE id = :id"),
        {"id": build_id, **values},
    )


def fail_build(conn: Connection, build_id: UUID, error: str) -> None:
    conn.execute(
        sa.text("UPDATE site_builds SET status = 'failed', error_message = :e, finished_at = now() WHERE id = :id"),
        {"id": build_id, "e": error[:2000]},
    )


def article_count(conn: Connection, site_id: UUID) -> int:
    return conn.execute(
        sa.text("SELECT count(*) FROM generated_articles WHERE site_id = :s AND status = 'published'"), {"s": site_id}
    ).scalar_one()


def upsert_page(conn: Connection, site_id: UUID, *, slug: str, title: str, content: str, permalink: str | None = None,
                seo_description: str | None = None) -> None:
    """Create or update one of the site's pages (by slug), published."""
    conn.execute(
        sa.text(
            """INSERT INTO pages (site_id, slug, permalink, title, content, seo_description, status)
               VALUES (:s, :slug, :permalink, :title, :content, :description, 'published')
               ON CONFLICT (site_id, slug) DO UPDATE SET permalink = excluded.permalink, title = excluded.title,
                   content = excluded.content, seo_description = excluded.seo_description, status = 'published'
               WHERE (pages.permalink, pages.title, pages.content, pages.seo_description, pages.status)
                     IS DISTINCT FROM (excluded.permalink, excluded.title, excluded.content, excluded.seo_description,
                                       'published')"""
        ),
        {"s": site_id, "slug": slug, "permalink": permalink, "title": title, "content": content,
         "description": seo_description},
    )


def build_from_rows(engine: Engine, site_id: UUID, site: Site, root: Path, theme: Theme, fingerprint: str,
                    previous_manifest: Path | None, *, workers: int = 1, progress=None) -> BuildResult:
    """The site built from its rows, as the `site_build` asset builds it (and the benchmark measures it): the previous
    build reused when the fingerprint says nothing changed (`reused_build`: its manifest's header line read first);
    else the previous manifest read whole, pages, hub texts and the latest articles read, and the articles streamed
    on connections of their own (a forked second renderer disposes the pool it inherited and opens its own)."""
    reused = reused_build(site, root, fingerprint, theme, previous_manifest)
    if reused is not None:
        return reused
    previous, previous_header = load_manifest(previous_manifest)  # (an older layout's: build_site reuses it)
    with engine.begin() as conn:
        pages = static_pages(conn, site_id)
        hubs = hub_texts(conn, site_id)
        latest = latest_articles(conn, site_id, FEED_SIZE)
    return build_site(
        site,
        root,
        articles=lambda: stream_articles(engine, site_id),
        hub_members=lambda: stream_hub_members(engine, site_id),
        article_bodies=lambda slugs: stream_article_bodies(engine, site_id, slugs),
        latest=latest,
        pages=pages,
        hub_texts=hubs,
        previous=previous,
        theme=theme,
        fingerprint=fingerprint,
        previous_header=previous_header,
        progress=progress,
        workers=workers,
        after_fork=lambda: engine.dispose(close=False),
    )
