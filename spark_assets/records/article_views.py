"""What operators read about articles and campaigns: a filtered, paged article list, one article in full, and the
per-campaign counts of `spark campaign list`. Read-only SQL; the CLI formats it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spark_assets.records.registry import RegistryError, get_campaign

ARTICLE_STATUSES = ("draft", "approved", "published", "archived")


@dataclass(frozen=True)
class ArticlePage:
    """One page of a campaign's articles matching the filters, how many match in all, and the campaign's (status,
    count) pairs regardless of the filters."""

    counts: list[tuple[str, int]]
    total: int
    offset: int
    rows: list


def find_articles(
    conn: Connection,
    key: str,
    *,
    status: str | None = None,
    issue: str | None = None,
    place: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> ArticlePage:
    """The campaign's articles (by slug) with the given status, quality issue and place (a case-insensitive part of
    the geo label or key), `limit` of them from `offset`."""
    campaign = get_campaign(conn, key)
    conditions = ["g.campaign_id = :c"]
    params: dict[str, Any] = {"c": campaign.id, "n": limit, "o": offset}
    if status:
        conditions.append("g.status = :status")
        params["status"] = status
    if issue:
        conditions.append("g.quality_issues ? :issue")
        params["issue"] = issue
    if place:
        # the place an article is about is its permutation's geo target
        conditions.append(
            """EXISTS (SELECT 1 FROM cartesian_permutations p JOIN geo_intelligence geo ON geo.id = p.geo_id
                       WHERE p.id = g.permutation_id
                         AND (geo.label ILIKE :place OR geo.location_key ILIKE :place))"""
        )
        params["place"] = "%" + place.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    where = " AND ".join(conditions)
    rows = conn.execute(
        sa.text(
            f"""SELECT count(*) OVER () AS total, g.status, g.slug, g.title, g.quality_issues
                FROM generated_articles g WHERE {where} ORDER BY g.slug LIMIT :n OFFSET :o"""
        ),
        params,
    ).all()
    if rows:
        total = rows[0].total
    else:  # past the last page, or nothing matches: the count alone
        total = conn.execute(
            sa.text(f"SELECT count(*) FROM generated_articles g WHERE {where}"),
            {k: v for k, v in params.items() if k not in ("n", "o")},
        ).scalar_one()
    counts = conn.execute(
        sa.text("SELECT status, count(*) FROM generated_articles WHERE campaign_id = :c GROUP BY 1 ORDER BY 1"),
        {"c": campaign.id},
    ).all()
    return ArticlePage(counts=[(r[0], r[1]) for r in counts], total=total, offset=offset, rows=rows)


@dataclass(frozen=True)
class ArticleDetail:
    domain: str
    campaign_key: str | None
    slug: str
    title: str
    seo_title: str | None
    seo_description: str | None
    content: str
    status: str
    word_count: int | None
    quality_issues: list[str]
    provenance: dict | None
    place: str | None
    date_updated: datetime

    @property
    def url(self) -> str:
        return f"https://{self.domain}/{self.slug}/"


def get_article(conn: Connection, slug: str, site_domain: str | None = None) -> ArticleDetail:
    """The article with this slug (on `site_domain`, which is needed when several sites have one)."""
    rows = conn.execute(
        sa.text(
            """SELECT s.domain, CASE WHEN c.id IS NULL THEN NULL ELSE s.domain || '/' || c.slug END AS campaign_key,
                      g.slug, g.title, g.seo_title, g.seo_description, g.content, g.status, g.word_count,
                      g.quality_issues, g.provenance, geo.label AS place, g.date_updated
               FROM generated_articles g JOIN sites s ON s.id = g.site_id
               LEFT JOIN campaign_masters c ON c.id = g.campaign_id
               LEFT JOIN cartesian_permutations p ON p.id = g.permutation_id
               LEFT JOIN geo_intelligence geo ON geo.id = p.geo_id
               WHERE g.slug = :slug AND (CAST(:domain AS text) IS NULL OR s.domain = :domain)
               ORDER BY s.domain"""
        ),
        {"slug": slug, "domain": site_domain},
    ).all()
    if not rows:
        where = f" on {site_domain}" if site_domain else ""
        raise RegistryError(
            f"no article '{slug}'{where}: list a campaign's articles with `spark articles list --campaign KEY`"
        )
    if len(rows) > 1:
        domains = ", ".join(r.domain for r in rows)
        raise RegistryError(f"'{slug}' is an article of several sites ({domains}): say which with --site DOMAIN")
    return ArticleDetail(**rows[0]._mapping)


@dataclass(frozen=True)
class CampaignCounts:
    partition_key: str
    name: str
    status: str
    articles: int
    drafts: int
    approved: int
    published: int
    with_issues: int
    verdict: str  # publishable, blocked, or none (no current quality report)


def campaign_counts(conn: Connection, site_domain: str | None = None) -> list[CampaignCounts]:
    """Every campaign (of one site) with its article counts and the verdict of its quality report, in one query."""
    rows = conn.execute(
        sa.text(
            """SELECT s.domain || '/' || c.slug AS partition_key, c.name, c.status,
                      count(g.id) AS articles,
                      count(g.id) FILTER (WHERE g.status = 'draft') AS drafts,
                      count(g.id) FILTER (WHERE g.status = 'approved') AS approved,
                      count(g.id) FILTER (WHERE g.status = 'published') AS published,
                      count(g.id) FILTER (WHERE g.quality_issues <> '[]'::jsonb) AS with_issues,
                      CASE WHEN q.publishable THEN 'publishable' WHEN NOT q.publishable THEN 'blocked' ELSE 'none'
                      END AS verdict
               FROM campaign_masters c JOIN sites s ON s.id = c.site_id
               LEFT JOIN generated_articles g ON g.campaign_id = c.id
               LEFT JOIN campaign_quality q ON q.campaign_id = c.id
               WHERE CAST(:domain AS text) IS NULL OR s.domain = :domain
               GROUP BY s.domain, c.slug, c.name, c.status, q.publishable
               ORDER BY s.domain, c.slug"""
        ),
        {"domain": site_domain},
    ).all()
    return [CampaignCounts(**r._mapping) for r in rows]
