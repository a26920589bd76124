"""Schedules: what runs at a time of day rather than on a change.

`drip_feed_schedule` (06:00 UTC): for every site with a daily publishing quota (`sites.daily_publish_quota`), one run
of `drip_feed_job` for the site's partition: `published_batch` publishes the day's batch, `site_build` renders the site
(it depends on `published_batch`, so it runs after it) and `site_release` releases the build. The tick's date goes to
the run as the tag `spark/drip_day` (the day's batch is counted against it), and the run key is `<domain>/<day>`, so a
tick evaluated twice launches each site's run once.
"""

from datetime import date

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from spark_assets.analytics.days import schedule_window
from spark_assets.assets.drip_feed import DRIP_DAY_TAG
from spark_assets.automation.run_kinds import run_kind_tags
from spark_assets.partitions import site_partitions  # the job's partitions come from its assets; the tick reads keys
from spark_assets.records.drip_feed import drip_sites
from spark_resources.database import DatabaseResource

#: one site's day: its batch published, then its build and release
drip_feed_job = define_asset_job(
    "drip_feed_job",
    selection=AssetSelection.assets("published_batch", "site_build", "site_release"),
    description="A site's daily drip-feed batch published, then the site built and released.",
    run_tags=run_kind_tags("releases"),
)


@schedule(
    job=drip_feed_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 UTC: each site with a daily publishing quota publishes its next batch, then is "
    "built and released.",
)
def drip_feed_schedule(context: ScheduleEvaluationContext, database: DatabaseResource):
    day = context.scheduled_execution_time.date().isoformat()
    with database.connect() as conn:
        domains = drip_sites(conn)
    known = set(site_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
    missing = [d for d in domains if d not in known]
    if missing:  # new_sites_sensor adds them on its next tick; tomorrow's tick will include them
        context.log.info(f"not yet a partition, skipped today: {', '.join(missing)}")
    requests = [
        RunRequest(run_key=f"{domain}/{day}", partition_key=domain,
                   tags={DRIP_DAY_TAG: day, **run_kind_tags("releases")})
        for domain in domains
        if domain in known
    ]
    return requests or SkipReason(f"no site with a daily publishing quota ({day})")


#: the tags that make a run cover a range of partitions (Dagster's own, as its backfills set them)
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

#: every analytics asset: both sources for the run's days, their merge, then the report
daily_analytics_job = define_asset_job(
    "daily_analytics_job",
    selection=AssetSelection.groups("analytics"),
    description="Matomo and Search Console for a range of days, every active site in the run; the merge; the report.",
    run_tags=run_kind_tags("analytics"),
)


def analytics_range_tags(first: date, last: date) -> dict[str, str]:
    """The tags of one run over the analytics days `first`..`last` (inclusive)."""
    return {PARTITION_RANGE_START_TAG: first.isoformat(), PARTITION_RANGE_END_TAG: last.isoformat()}


@schedule(
    job=daily_analytics_job,
    cron_schedule="0 7 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 07:00 UTC: one run over the trailing five days (yesterday back), every active site, both "
    "sources: provisional numbers are replaced until Matomo and Google call them final.",
)
def analytics_schedule(context: ScheduleEvaluationContext):
    tick = context.scheduled_execution_time.date()
    first, last = schedule_window(tick)
    return RunRequest(run_key=f"analytics/{tick.isoformat()}",
                      tags=analytics_range_tags(first, last) | run_kind_tags("analytics"))
