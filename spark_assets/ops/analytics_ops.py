"""`spark analytics backfill` and `spark analytics report`, and the demo's four weeks of analytics.

A backfill is what the UI's backfill of the analytics assets does, run from here: the days cut into runs of at most
`MAX_DAYS_PER_RUN` (the assets' `BackfillPolicy`), each run handling every active site (or the one `--site`) for its
days, recorded in the local Dagster instance so the UI shows them. The report is written last, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

from dagster import AssetKey, DagsterInstance, materialize

from spark_assets.analytics.days import days_between, utc_now
from spark_assets.assets.analytics import MAX_DAYS_PER_RUN, SITES_TAG, write_report
from spark_assets.automation.schedules import analytics_range_tags
from spark_assets.definitions import all_assets, defs
from spark_assets.ops.materializing import QUIET_RUN, MaterializeFailed, failure_of
from spark_assets.partitions import ANALYTICS_START
from spark_assets.records.analytics import first_publishing_day
from spark_assets.records.registry import RegistryError, get_site
from spark_resources.database import DatabaseResource, get_engine

#: what one backfill run materializes, in this order (the report once, after the last run)
BACKFILL_ASSETS = [AssetKey("matomo_daily"), AssetKey("search_console_daily"), AssetKey("daily_analytics")]


@dataclass
class Backfill:
    first: date
    last: date
    runs: list[tuple[date, date, bool]] = field(default_factory=list)  # (first, last, succeeded)
    failed_sites: dict[str, str] = field(default_factory=dict)  # "<source>: <domain>" -> message
    rows: dict[str, int] = field(default_factory=dict)


def backfill_days(days: int | None, site: str | None, today: date | None = None) -> tuple[date, date]:
    """The days a backfill covers: the last `days` days to yesterday; without `days`, from the site's first
    publishing day (the analytics start at most)."""
    today = today or utc_now().date()
    last = today - timedelta(days=1)
    earliest = date.fromisoformat(ANALYTICS_START)
    if days is not None:
        if days < 1:
            raise RegistryError("--days must be 1 or more")
        return max(earliest, last - timedelta(days=days - 1)), last
    if site is None:
        raise RegistryError("give --days N (or --site DOMAIN to fill a site's whole history)")
    with get_engine().connect() as conn:
        first = first_publishing_day(conn, get_site(conn, site).id)
    if first is None:
        raise RegistryError(f"{site} has published nothing yet: its analytics start on its first publishing day")
    if first > last:
        raise RegistryError(f"{site} went live on {first}: it has no finished day to fetch yet (the daily schedule "
                            "takes it from tomorrow)")
    return max(earliest, first), last


def run_backfill(first: date, last: date, *, site: str | None = None, resources: dict | None = None,
                 instance: DagsterInstance | None = None, echo: Callable[[str], None] = print,
                 report: bool = True) -> Backfill:
    """Runs of at most MAX_DAYS_PER_RUN days from `first` to `last`, then the report; raises MaterializeFailed at the
    first run that fails (the runs before it are kept: each is its own transaction per source)."""
    if site is not None:
        with get_engine().connect() as conn:
            site = get_site(conn, site).domain  # refuse an unknown site before any run
    instance = instance or DagsterInstance.get()
    resources = resources or defs.resources
    days = days_between(first, last)
    result = Backfill(first, last)
    for index in range(0, len(days), MAX_DAYS_PER_RUN):
        chunk = days[index:index + MAX_DAYS_PER_RUN]
        tags = analytics_range_tags(chunk[0], chunk[-1]) | ({SITES_TAG: site} if site else {})
        outcome = materialize(all_assets, selection=BACKFILL_ASSETS, instance=instance, resources=resources,
                              tags=tags, run_config=QUIET_RUN, raise_on_error=False)
        result.runs.append((chunk[0], chunk[-1], outcome.success))
        if not outcome.success:
            raise MaterializeFailed(f"analytics {chunk[0]} to {chunk[-1]} failed: {failure_of(outcome)}")
        for event in outcome.get_asset_materialization_events():
            metadata = event.materialization.metadata
            if "rows_written" in metadata and event.partition == chunk[0].isoformat():
                name = event.asset_key.to_user_string()
                result.rows[name] = result.rows.get(name, 0) + int(metadata["rows_written"].value)
        for check in outcome.get_asset_check_evaluations():
            if not check.passed:
                for domain, message in (check.metadata.get("failed_sites").value or {}).items():
                    result.failed_sites[f"{check.asset_key.to_user_string()}: {domain}"] = message
        echo(f"   {chunk[0]} to {chunk[-1]}: run {outcome.run_id[:8]} "
             + ", ".join(f"{k} {v}" for k, v in result.rows.items()))
    if report:
        outcome = materialize(all_assets, selection=[AssetKey("analytics_report")], instance=instance,
                              resources=resources, run_config=QUIET_RUN, raise_on_error=False)
        if not outcome.success:
            raise MaterializeFailed(f"analytics_report failed: {failure_of(outcome)}")
    return result


def print_report(site: str | None, echo: Callable[[str], None] = print, as_of: date | None = None) -> dict:
    """The report as of yesterday (or `as_of`) on the terminal, and its charts written; what `write_report` returned."""
    if site is not None:
        with get_engine().connect() as conn:
            site = get_site(conn, site).domain
    result = write_report(DatabaseResource(), as_of or utc_now().date() - timedelta(days=1), site)
    echo(result["markdown"])
    echo("")
    echo(f"charts: {', '.join(str(path) for path in result['charts'])}")
    return result
