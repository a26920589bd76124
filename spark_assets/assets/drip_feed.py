"""Drip-feed publishing: `published_batch`, one day's batch of a site's queued articles (sites with a daily quota).

The `drip_feed_schedule` (spark_assets/automation/schedules.py) runs `drip_feed_job` once a day for every site with a
quota: `published_batch` publishes the day's batch, then `site_build` (which depends on it) renders the site and
`site_release` puts it live. The order and the once-a-day rule are `records.drip_feed` (and the pure
`content.drip`); the day is the schedule's tick date, passed as the run tag `spark/drip_day`.
"""

from datetime import date, datetime, timezone

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from spark_assets.partitions import site_partitions
from spark_assets.records.drip_feed import publish_batch
from spark_assets.records.publishing import daily_publish_quota
from spark_assets.records.registry import get_site
from spark_resources.database import DatabaseResource

#: the run tag carrying the tick's date (ISO, UTC); a run without it (launched by hand) publishes for today, UTC
DRIP_DAY_TAG = "spark/drip_day"


def drip_day(tags: dict[str, str]) -> date:
    value = tags.get(DRIP_DAY_TAG)
    return date.fromisoformat(value) if value else datetime.now(timezone.utc).date()


@asset(
    partitions_def=site_partitions,
    group_name="sites",
    kinds={"postgres"},
    owners=["team:content"],
    description="The day's drip-feed batch of a site with a daily publishing quota: up to the quota of its approved, "
    "passing articles published, breadth first (every place before any place's second article), largest places first.",
)
def published_batch(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    domain = context.partition_key
    day = drip_day(context.run.tags)
    with database.begin() as conn:
        site = get_site(conn, domain)
        quota = daily_publish_quota(conn, site.id)
        batch = publish_batch(conn, site.id, day, on_wait=context.log.info)
    if quota is None:
        context.log.info(f"{domain} has no daily publishing quota: its articles are published as they pass")
    context.log.info(f"{domain}: published {len(batch)} article(s) for {day.isoformat()}")
    rows = "\n".join(f"| {n} | {a.slug} | {a.place_label or a.place or '-'} | {a.place} |"
                     for n, a in enumerate(batch, 1))
    return MaterializeResult(
        metadata={
            "day": day.isoformat(),
            "daily_quota": MetadataValue.int(quota) if quota is not None else MetadataValue.text("none"),
            "published": len(batch),
            "places": len({a.place for a in batch}),
            "batch": MetadataValue.md("| # | article | place | key |\n|---|---|---|---|\n" + rows if batch
                                      else "nothing published"),
        }
    )
