"""The publishing gate, per campaign: `article_quality` checks the stored articles as a whole and decides what goes out.

It finds near-duplicates (MinHash/LSH over every article body), flags articles with markup left or SEO fields out of
bounds, records the campaign's quality report and auto-publishes where the campaign's blueprint allows. The workflow
itself (draft -> approved -> published, and what the report blocks) is `spark_assets.records.publishing`, which the
`spark articles` commands share.
"""

import time
from typing import Any, Iterator

import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from spark_assets.assets.generation import CAMPAIGN_CONTENT
from spark_assets.content import urls
from spark_assets.content.dedupe import find_copies_of, find_near_duplicates
from spark_assets.content.geo import GeoTarget
from spark_assets.content.quality import BlockCounter, article_agreement_slips, broken_links
from spark_assets.records.publishing import GateFindings, QualityReport, auto_publish, record_quality
from spark_assets.records.registry import load_campaign_blueprint, lock_campaign
from spark_resources.database import DatabaseResource


@asset(
    **CAMPAIGN_CONTENT,
    deps=["articles"],
    description="The publishing gate: near-duplicates (MinHash/LSH), markup left over and SEO limits over the stored "
    "articles; flags each article, records the campaign's report and auto-publishes where the campaign allows.",
    check_specs=[
        AssetCheckSpec("near_duplicate_rate_within_threshold", asset="article_quality",
                       description="share of near-duplicate articles at or below the campaign's maximum"),
        AssetCheckSpec("stored_articles_are_clean", asset="article_quality",
                       description="no stored title, body or meta holds markup, and SEO fields fit their limits"),
    ],
)
def article_quality(context: AssetExecutionContext, database: DatabaseResource) -> Iterator[Any]:
    started = time.perf_counter()
    report: QualityReport | None = None
    published = queued = 0
    for key in context.partition_keys:
        # one transaction, under the campaign's lock: the report is about exactly the articles it flags
        with database.begin() as conn:
            lock_campaign(conn, key, on_wait=context.log.info)
            campaign, blueprint = load_campaign_blueprint(conn, key)
            threshold = blueprint.publishing.similarity_threshold
            near = find_near_duplicates(_bodies(conn, "g.campaign_id = :c", campaign), threshold=threshold)
            findings = _findings(conn, campaign, blueprint, near.flagged)
            report = record_quality(conn, campaign, blueprint, near, findings)
            if blueprint.publishing.auto_publish and report.publishable:
                done, waiting = auto_publish(conn, campaign)
                published, queued = published + done, queued + waiting
        context.log.info(f"{key}: {report.summary()}")
    assert report is not None
    yield MaterializeResult(
        metadata={
            "articles": report.articles,
            "near_duplicate_rate": report.near_duplicate_rate,
            "max_near_duplicate_rate": report.max_near_duplicate_rate,
            "articles_with_issues": report.articles_with_issues,
            "articles_blocked": report.blocked_articles,
            **{f"issue_{name}": MetadataValue.int(count) for name, count in sorted(report.issue_counts.items())},
            "issues": MetadataValue.md(report.issues_markdown()),
            "publishable": report.publishable,
            "auto_published": published,
            # approved by auto-publishing on a site with a daily quota: the drip feed publishes them (published_batch)
            "auto_queued": queued,
            "worst_pairs": MetadataValue.md(report.worst_pairs_markdown()),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    yield AssetCheckResult(
        check_name="near_duplicate_rate_within_threshold",
        passed=report.near_duplicate_rate <= report.max_near_duplicate_rate,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rate": report.near_duplicate_rate, "maximum": report.max_near_duplicate_rate,
                  "worst_pairs": MetadataValue.md(report.worst_pairs_markdown())},
    )
    yield AssetCheckResult(
        check_name="stored_articles_are_clean",
        passed=report.unclean_articles == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"unclean_articles": report.unclean_articles},
    )


#: the share of the blocking threshold from which two articles are flagged `similar_content` (a warning): 0.35 for the
#: default 0.5, the band SEO practitioners watch on 5-word-shingle Jaccard
SIMILAR_SHARE = 0.7


def _bodies(conn, where: str, campaign) -> Iterator[tuple[str, str]]:
    rows = conn.execute(
        sa.text(f"SELECT g.id::text, g.content FROM generated_articles g JOIN campaign_masters m ON m.id = g.campaign_id "
                f"WHERE {where} AND g.status <> 'archived' ORDER BY g.id")
        .execution_options(stream_results=True, yield_per=1000),
        {"c": campaign.id, "s": campaign.site_id},
    )
    return ((r[0], r[1]) for r in rows)


def _findings(conn, campaign, blueprint, near: frozenset[str]) -> GateFindings:
    """Each pass streams the bodies again (they are not kept): similar (warning band), copies in the site's other
    campaigns, copies on the operator's other sites, thin content once boilerplate is removed, agreement slips."""
    threshold = blueprint.publishing.similarity_threshold
    own = "g.campaign_id = :c"
    similar = find_near_duplicates(_bodies(conn, own, campaign), threshold=threshold * SIMILAR_SHARE).flagged - near
    in_site = find_copies_of(
        _bodies(conn, "g.campaign_id <> :c AND m.site_id = :s", campaign), _bodies(conn, own, campaign),
        threshold=threshold,
    )
    across = find_copies_of(
        _bodies(conn, "m.site_id <> :s", campaign), _bodies(conn, own, campaign), threshold=threshold
    )
    counter = BlockCounter()
    for _, content in _bodies(conn, own, campaign):
        counter.add(content)
    pages = site_pages(conn, campaign)
    declared = frozenset(link.url for link in blueprint.link_targets)
    thin, agreement, broken = set(), set(), set()
    for article_id, content in _bodies(conn, own, campaign):
        if counter.own_words(content) < blueprint.publishing.min_words:
            thin.add(article_id)
        if article_agreement_slips(content):
            agreement.add(article_id)
        if broken_links(content, pages, declared):
            broken.add(article_id)
    return GateFindings(
        similar_content=frozenset(similar), near_duplicate_in_site=in_site, near_duplicate_across_sites=across,
        thin_content=frozenset(thin), article_agreement=frozenset(agreement), broken_link=frozenset(broken),
    )


def site_pages(conn, campaign) -> frozenset[str]:
    """The paths the site will have once this campaign is published: the home page, this campaign's articles, the
    other campaigns' published articles, the hubs of every place and state the site's campaigns cover, and the site's
    pages and posts (by the URL scheme in `content.urls`)."""
    rows = conn.execute(
        sa.text(
            """SELECT g.slug FROM generated_articles g WHERE g.site_id = :s AND (g.campaign_id = :c OR g.is_published)
               UNION SELECT p.slug FROM pages p WHERE p.site_id = :s AND p.status = 'published'
               UNION SELECT p.slug FROM posts p WHERE p.site_id = :s AND p.status = 'published'"""
        ),
        {"s": campaign.site_id, "c": campaign.id},
    ).scalars()
    paths = {urls.HOME, *(urls.article_path(slug) for slug in rows)}
    for row in conn.execute(
        sa.text(
            """SELECT geo.location_key, geo.city, geo.county, geo.state, geo.state_code FROM geo_intelligence geo
               JOIN campaign_masters m ON m.id = geo.campaign_id
               WHERE m.site_id = :s AND m.status <> 'archived' AND geo.status <> 'archived'"""
        ),
        {"s": campaign.site_id},
    ):
        place = GeoTarget(None, row.location_key, row.location_key, row.state, row.state_code, city=row.city,
                          county=row.county)
        paths |= urls.hub_paths([place])
    return frozenset(paths)
