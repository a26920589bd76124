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
from spark_assets.content.dedupe import find_near_duplicates
from spark_assets.records.publishing import QualityReport, auto_publish, record_quality
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
    published = 0
    for key in context.partition_keys:
        # one transaction, under the campaign's lock: the report is about exactly the articles it flags
        with database.begin() as conn:
            lock_campaign(conn, key, on_wait=context.log.info)
            campaign, blueprint = load_campaign_blueprint(conn, key)
            bodies = conn.execute(
                sa.text("SELECT id::text, content FROM generated_articles WHERE campaign_id = :c ORDER BY id")
                .execution_options(stream_results=True, yield_per=1000),
                {"c": campaign.id},
            )
            near = find_near_duplicates(((r[0], r[1]) for r in bodies), threshold=blueprint.publishing.similarity_threshold)
            report = record_quality(conn, campaign, blueprint, near)
            if blueprint.publishing.auto_publish and report.publishable:
                published += auto_publish(conn, campaign)
        context.log.info(f"{key}: {report.summary()}")
    assert report is not None
    yield MaterializeResult(
        metadata={
            "articles": report.articles,
            "near_duplicate_rate": report.near_duplicate_rate,
            "max_near_duplicate_rate": report.max_near_duplicate_rate,
            "articles_with_issues": report.articles_with_issues,
            "publishable": report.publishable,
            "auto_published": published,
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
