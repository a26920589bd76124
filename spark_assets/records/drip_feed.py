"""Drip-feed publishing, in SQL: a site's daily quota, its queue, and the day's batch.

A site's `daily_publish_quota` (NULL: publish at once, as before) is set by `spark site publishing DOMAIN
--daily-quota N`. On such a site auto-publishing only approves (`records.publishing.auto_publish`), and the daily
`drip_feed_schedule` runs the `published_batch` asset, which calls `publish_batch` here.

The queue: the site's approved articles free of blocking issues (`records.publishing.BLOCKING_ISSUES`, which include
markup left over), of its non-archived campaigns whose quality report allows publishing; every query is scoped to the
site's id, so another site's rows are never read or written. Its order is `content.drip.drip_order`.

Place and size: an article's place is its geo target's `location_key` (the hub it belongs to, `/<key>/`), through its
permutation; an article without one (its permutation gone) is in the place "" ("no place"). A place's size is the
largest `geo_intelligence.population` of the site's geo rows for that key; when none of them has a population, the
number of the site's articles in that place that are queued or published. Sizes do not change as articles are
published, so the order does not shift from one day to the next.

Idempotency: `drip_batches` holds one row per site and day (the tick's date, UTC) with how many the drip published. A
batch publishes `quota - published` (nothing once the day's quota is used), so a second tick, or a re-run of the
partition, the same day publishes nothing more; a tick that found the queue empty leaves room for articles approved
later that day.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spark_assets.content.drip import QueuedArticle, drip_order, next_batch
from spark_assets.records.publishing import BLOCKING_ISSUES, PUBLISHED, daily_publish_quota
from spark_assets.records.registry import RegistryError, Site, get_site, lock_campaign

_QUEUE = """
WITH site_articles AS (
    SELECT g.id, g.slug, g.status, g.date_created, coalesce(geo.location_key, '') AS place, geo.population,
           coalesce(geo.state_code, '') AS state,
           coalesce(geo.city, geo.county, geo.state, '') AS label,
           (g.status = 'approved' AND NOT (g.quality_issues ?| CAST(:blocking AS text[]))
            AND c.status <> 'archived' AND q.publishable IS TRUE) AS queued
    FROM generated_articles g
    LEFT JOIN campaign_masters c ON c.id = g.campaign_id AND c.site_id = g.site_id
    LEFT JOIN campaign_quality q ON q.campaign_id = g.campaign_id
    LEFT JOIN cartesian_permutations p ON p.id = g.permutation_id
    LEFT JOIN geo_intelligence geo ON geo.id = p.geo_id
    WHERE g.site_id = :s AND g.status IN ('approved', 'published')
), places AS (
    SELECT place,
           coalesce(max(population), count(*) FILTER (WHERE queued OR status = 'published')) AS size,
           count(*) FILTER (WHERE status = 'published') AS published
    FROM site_articles GROUP BY place
)
"""


@dataclass(frozen=True)
class SiteQueue:
    """A site's queue, unordered, and how many articles each of its places already has published."""

    articles: list[QueuedArticle]
    published: dict[str, int]

    def ordered(self) -> list[QueuedArticle]:
        return drip_order(self.articles, self.published)

    def next(self, quota: int) -> list[QueuedArticle]:
        return next_batch(self.articles, quota, self.published)


@dataclass(frozen=True)
class PublishingPolicy:
    """What `spark site publishing DOMAIN` shows."""

    site: Site
    daily_quota: int | None
    queue: SiteQueue
    next_batch: list[QueuedArticle]


def set_daily_quota(conn: Connection, domain: str, quota: int | None) -> Site:
    """Set (a positive number) or clear (None: publish at once) the site's daily publishing quota."""
    if quota is not None and quota < 1:
        raise RegistryError(f"a daily quota is at least 1 article, not {quota}; clear it with --no-quota")
    site = get_site(conn, domain)
    conn.execute(sa.text("UPDATE sites SET daily_publish_quota = :q WHERE id = :s"), {"q": quota, "s": site.id})
    return site


def site_queue(conn: Connection, site_id: UUID) -> SiteQueue:
    """The site's approved, passing, unpublished articles with their places (see the module docstring)."""
    params = {"s": site_id, "blocking": list(BLOCKING_ISSUES)}
    rows = conn.execute(
        sa.text(
            _QUEUE + """SELECT a.id::text AS id, a.slug, a.place, p.size, a.date_created, a.state, a.label
                        FROM site_articles a JOIN places p USING (place) WHERE a.queued"""
        ),
        params,
    )
    articles = [
        QueuedArticle(slug=r.slug, place=r.place, place_size=int(r.size), created=r.date_created, id=r.id,
                      state=r.state, place_label=r.label)
        for r in rows
    ]
    published = dict(conn.execute(sa.text(_QUEUE + "SELECT place, published FROM places"), params).all())
    return SiteQueue(articles, {place: int(count) for place, count in published.items()})


def publishing_policy(conn: Connection, domain: str) -> PublishingPolicy:
    """The site's quota, its queue and the batch the next tick would publish (the whole quota: a new day)."""
    site = get_site(conn, domain)
    quota = daily_publish_quota(conn, site.id)
    queue = site_queue(conn, site.id)
    return PublishingPolicy(site, quota, queue, queue.next(quota) if quota is not None else [])


def drip_sites(conn: Connection) -> list[str]:
    """Domains of the sites the drip feed serves: a daily quota set, not archived; sorted."""
    return list(
        conn.execute(
            sa.text("SELECT domain FROM sites WHERE daily_publish_quota IS NOT NULL AND status <> 'archived' "
                    "ORDER BY domain")
        ).scalars()
    )


def publish_batch(conn: Connection, site_id: UUID, today: date,
                  on_wait: Callable[[str], None] | None = None) -> list[QueuedArticle]:
    """Publish what is left of the site's quota for `today`, in drip order, in the caller's transaction; returns what
    it published (empty for a site without a quota, an empty queue, or a day whose quota is used)."""
    quota = daily_publish_quota(conn, site_id)
    if quota is None:
        return []
    # the site's campaigns' locks, in key order: no campaign run rewrites articles under the batch (and the order
    # matches what any other multi-campaign locker would take, so no deadlock)
    for key in conn.execute(
        sa.text("""SELECT s.domain || '/' || c.slug FROM campaign_masters c JOIN sites s ON s.id = c.site_id
                   WHERE c.site_id = :s ORDER BY 1"""),
        {"s": site_id},
    ).scalars():
        lock_campaign(conn, key, on_wait=on_wait)
    # the day's row, locked until commit: a concurrent batch of the same site and day waits, then sees what this one did
    done = conn.execute(
        sa.text("""INSERT INTO drip_batches (site_id, day) VALUES (:s, :d)
                   ON CONFLICT (site_id, day) DO UPDATE SET day = EXCLUDED.day RETURNING published"""),
        {"s": site_id, "d": today},
    ).scalar_one()
    batch = site_queue(conn, site_id).next(max(quota - done, 0))
    if not batch:
        return []
    published = conn.execute(
        sa.text(f"""UPDATE generated_articles SET {PUBLISHED}
                    WHERE site_id = :s AND status = 'approved' AND id = ANY(CAST(:ids AS uuid[]))"""),
        {"s": site_id, "ids": [a.id for a in batch]},
    ).rowcount
    assert published == len(batch), "the queue changed under the campaign locks"
    conn.execute(
        sa.text("""UPDATE drip_batches SET published = published + :n, slugs = slugs || CAST(:slugs AS jsonb)
                   WHERE site_id = :s AND day = :d"""),
        {"n": published, "slugs": json.dumps([a.slug for a in batch]), "s": site_id, "d": today},
    )
    return batch

