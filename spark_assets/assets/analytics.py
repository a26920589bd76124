"""Daily analytics: Matomo visits and Search Console performance per site and day, merged into `daily_analytics`, and
the operator's report with charts.

    matomo_daily ───────┐
                        ├──> daily_analytics ──> analytics_report
    search_console_daily┘

Partitioned by day (`analytics_days`), never by site and day: each run handles every active site for its days (a
range of days in one run: `BackfillPolicy.multi_run`, at most `MAX_DAYS_PER_RUN`), as Dagster's own platform does. So
200 sites x 90 days is three runs, not 18,000. Inside a run:

* Matomo answers every site and day in one call (`idSite=1,4,5`, `period=day` over the range). A site Matomo refuses is
  named by its error; it is left out and the call made again for the others.
* Search Console needs calls per site: the days (`dimensions: [date]`), the top queries and the top pages, each over
  the run's whole range, `GSC_WORKERS` sites at a time. Each Google account's rate limit is shared by every process
  (the database-backed limiter of `SearchConsoleResource`).
* A site that fails is recorded (`sites.error_message`, prefixed "Matomo analytics for <domain>:" or "Search Console
  analytics for <domain>:") and named in the asset check `every_site_fetched`; the others are written.
* Final numbers are never replaced by provisional ones (`records.analytics`), so re-running a day converges, and late
  data replaces early data until the provider calls it final. `analytics_ledger` is what is final.

A run tagged `spark/analytics_sites=<domain>,<domain>` handles those sites only (`spark analytics backfill --site`,
and `analytics_history_sensor`'s runs for sites with history to fill).
"""

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from uuid import UUID

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from spark_assets.analytics.charts import write_charts
from spark_assets.analytics.days import freshness_cutoff, site_days, utc_now
from spark_assets.analytics.report import build_report
from spark_assets.analytics.rows import matomo_days, search_days, search_details
from spark_assets.partitions import ANALYTICS_START, analytics_days
from spark_assets.records import analytics as records
from spark_assets.records.accounts import gsc_refresh_token
from spark_assets.records.registry import RegistryError
from spark_resources.database import DatabaseResource, spark_home
from spark_resources.providers.google import GoogleClient, SearchConsoleResource, domain_property
from spark_resources.providers.http import ProviderError
from spark_resources.providers.matomo import MatomoClient, MatomoResource, site_id_in_error
from spark_resources.secrets import SecretKeyError

#: the most days one run handles: a backfill of 90 days is three runs
MAX_DAYS_PER_RUN = 31
ANALYTICS_BACKFILL = BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)
#: a run with this tag handles only these sites (their domains, comma-separated: a domain never holds a comma)
SITES_TAG = "spark/analytics_sites"
#: Search Console sites fetched at once within a run
GSC_WORKERS = 8
#: how many days the report covers (charts), and the days it compares
REPORT_DAYS = 90

EVERY_SITE_FETCHED = "every_site_fetched"
_EXPECTED = (ProviderError, RegistryError, SecretKeyError)


def _days(context: AssetExecutionContext) -> tuple[date, date]:
    """The run's first and last day (inclusive)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def _domains(context: AssetExecutionContext) -> list[str] | None:
    tag = context.run.tags.get(SITES_TAG, "")
    return [domain for domain in tag.split(",") if domain] or None


def _fetched_check(failed: dict[str, str], asked: int) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=EVERY_SITE_FETCHED,
        passed=not failed,
        severity=AssetCheckSeverity.WARN,
        description=(f"{len(failed)} of {asked} site(s) failed: {', '.join(sorted(failed))}" if failed
                     else f"all {asked} site(s) fetched"),
        metadata={"failed_sites": MetadataValue.json(failed)},
    )


def _failures_table(failed: dict[str, str]) -> str:
    lines = ["| site | error |", "|---|---|"]
    lines += [f"| {domain} | {message.replace('|', '/')} |" for domain, message in sorted(failed.items())]
    return "\n".join(lines)


@asset(
    partitions_def=analytics_days,
    backfill_policy=ANALYTICS_BACKFILL,
    group_name="analytics",
    kinds={"matomo", "postgres"},
    owners=["team:platform"],
    pool="matomo",
    check_specs=[AssetCheckSpec(EVERY_SITE_FETCHED, asset="matomo_daily",
                                description="Matomo answered for every site asked about")],
    description="Matomo visits, unique visitors, actions, bounce rate and time on site per site and day "
    "(matomo_daily), for every active site with a Matomo site, in one call per run.",
)
def matomo_daily(context: AssetExecutionContext, database: DatabaseResource, matomo: MatomoResource) -> MaterializeResult:
    start, end = _days(context)
    started = time.perf_counter()
    with database.connect() as conn:
        sites = records.analytics_sites(conn, records.MATOMO, end, _domains(context))
    ranges = {site.id: site_days(site.first_published, start, end) for site in sites}
    visits, failed = {}, {}
    if sites:
        client = matomo.get_client()
        try:
            visits, failed = _fetch_matomo(client, sites, start, end)
        finally:
            client.close()
    now = utc_now()
    rows = [row for site in sites if site.id in visits
            for row in matomo_days(site.id, site.timezone, visits[site.id], *ranges[site.id], now)]
    return _written(context, database, records.MATOMO, sites, failed, rows, start, end, started,
                    write=lambda conn: records.write_matomo(conn, rows, now),
                    totals={"visits": sum(row.visits for row in rows)})


def _written(context: AssetExecutionContext, database: DatabaseResource, source: str, sites: list, failed: dict,
             rows: list, start: date, end: date, started: float, write, totals: dict) -> MaterializeResult:
    """Write a source's rows (`write`) and its sites' errors in one transaction; the materialization that says what
    was written and which sites failed (its `every_site_fetched` check)."""
    with database.begin() as conn:
        written = write(conn)
        records.record_errors(conn, source, failed)
        records.clear_errors(conn, source, [site.id for site in sites if site.id not in failed])
    failed_by_domain = {site.domain: failed[site.id] for site in sites if site.id in failed}
    for domain, message in failed_by_domain.items():
        context.log.warning(f"{records.ERROR_LABELS[source]} for {domain}: {message}")
    return MaterializeResult(
        metadata={
            "days": f"{start} to {end}",
            "sites": len(sites),
            "sites_failed": len(failed),
            "rows_written": written.written,
            "rows_new": written.new,
            "provisional_settled": written.settled,
            "final_kept": written.kept_final,
            "final_rows": sum(row.data_state == "final" for row in rows),
            **totals,
            "seconds": round(time.perf_counter() - started, 2),
            **({"failures": MetadataValue.md(_failures_table(failed_by_domain))} if failed_by_domain else {}),
        },
        check_results=[_fetched_check(failed_by_domain, len(sites))],
    )


def _fetch_matomo(client: MatomoClient, sites: list[records.AnalyticsSite], start: date,
                  end: date) -> tuple[dict[UUID, list], dict[UUID, str]]:
    """Every site's days in as few calls as Matomo allows; (days by site id, error by site id). A site Matomo
    refuses by name is left out and the call made again for the rest; an error naming no site fails them all."""
    by_matomo_id = {site.matomo_site_id: site for site in sites}
    pending = sorted(by_matomo_id)
    failed: dict[UUID, str] = {}
    while pending:
        try:
            answer = client.daily_visits_by_site(pending, start, end)
        except ProviderError as exc:
            refused = site_id_in_error(exc)
            if refused in pending:
                failed[by_matomo_id[refused].id] = str(exc)
                pending.remove(refused)
                continue
            failed |= {by_matomo_id[matomo_id].id: str(exc) for matomo_id in pending}
            return {}, failed
        visits = {by_matomo_id[matomo_id].id: days for matomo_id, days in answer.items() if matomo_id in by_matomo_id}
        for matomo_id in pending:
            if matomo_id not in answer:
                failed[by_matomo_id[matomo_id].id] = f"Matomo answered nothing for its site {matomo_id}"
        return visits, failed
    return {}, failed


@asset(
    partitions_def=analytics_days,
    backfill_policy=ANALYTICS_BACKFILL,
    group_name="analytics",
    kinds={"google", "postgres"},
    owners=["team:platform"],
    pool="google",
    check_specs=[AssetCheckSpec(EVERY_SITE_FETCHED, asset="search_console_daily",
                                description="Search Console answered for every site asked about")],
    description="Search Console clicks, impressions, CTR and position per site and day (search_console_daily), and "
    "each day's top queries and pages (search_console_queries), for every verified site.",
)
def search_console_daily(context: AssetExecutionContext, database: DatabaseResource,
                         search_console: SearchConsoleResource) -> MaterializeResult:
    start, end = _days(context)
    started = time.perf_counter()
    with database.connect() as conn:
        sites = records.analytics_sites(conn, records.SEARCH_CONSOLE, end, _domains(context))
    days, details, failed = _fetch_search_console(context, database, search_console, sites, start, end)
    now = utc_now()
    return _written(context, database, records.SEARCH_CONSOLE, sites, failed, days, start, end, started,
                    write=lambda conn: records.write_search_console(conn, days, details, now),
                    totals={"detail_rows": len(details), "clicks": sum(row.clicks for row in days),
                            "impressions": sum(row.impressions for row in days)})


def _fetch_search_console(context, database, search_console, sites, start, end):
    """Each site's days and detail rows, `GSC_WORKERS` sites at a time, one client per Google account (its rate
    limit shared through the database); (days, details, error by site id)."""
    clients: dict[UUID, GoogleClient] = {}
    failed: dict[UUID, str] = {}
    days, details = [], []

    def client_for(site) -> GoogleClient:
        if site.gsc_account_id not in clients:
            with database.connect() as conn:
                token = gsc_refresh_token(conn, site.gsc_account_id)
            clients[site.gsc_account_id] = search_console.get_client(token, engine=database.engine)
        return clients[site.gsc_account_id]

    def fetch(site):
        first, last = site_days(site.first_published, start, end)
        client = client_for(site)
        prop = domain_property(site.domain)
        daily = client.daily_search(prop, first, last)
        queries, _ = search_details(site.id, "query", client.search_analytics(
            prop, first, last, dimensions=("date", "query"), data_state="all"), first, last)
        pages, pages_per_day = search_details(site.id, "page", client.search_analytics(
            prop, first, last, dimensions=("date", "page"), data_state="all"), first, last)
        return search_days(site.id, daily, first, last, pages_per_day), queries + pages

    # clients are made up front, in this thread: the account's token is read once, not raced for
    usable = []
    for site in sites:
        try:
            client_for(site)
            usable.append(site)
        except _EXPECTED as exc:
            failed[site.id] = str(exc)
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(GSC_WORKERS, len(usable)))) as pool:
            futures = {site.id: pool.submit(fetch, site) for site in usable}
            for site in usable:
                try:
                    site_days_rows, site_details = futures[site.id].result()
                except _EXPECTED as exc:
                    failed[site.id] = str(exc)
                    continue
                except Exception as exc:  # a bug or an answer the contract does not know: this site only
                    context.log.exception(f"Search Console analytics for {site.domain}")
                    failed[site.id] = f"unexpected {type(exc).__name__} (see the run's log)"
                    continue
                days += site_days_rows
                details += site_details
    finally:
        for client in clients.values():
            client.close()
    return days, details, failed


@asset(
    partitions_def=analytics_days,
    backfill_policy=ANALYTICS_BACKFILL,
    group_name="analytics",
    kinds={"postgres"},
    owners=["team:platform"],
    deps=[matomo_daily, search_console_daily],
    description="One row per site and day (daily_analytics): Matomo's and Search Console's numbers side by side, "
    "with whether each is final; what the report reads.",
)
def daily_analytics(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    start, end = _days(context)
    domains = _domains(context)
    with database.begin() as conn:
        site_ids = records.site_ids(conn, domains) if domains else None
        changed = records.merge_daily_analytics(conn, start, end, site_ids)
        totals = records.daily_totals(conn, start, end, site_ids)
    return MaterializeResult(
        metadata={
            "days": f"{start} to {end}",
            "rows_changed": changed,
            "sites": totals["sites"],
            "visits": totals["visits"],
            "clicks": totals["clicks"],
            "impressions": totals["impressions"],
            "days_not_final": totals["not_final"],
        }
    )


@asset_check(
    asset=daily_analytics,
    name="analytics_fresh",
    description="Every active site has final numbers, in every source it is provisioned with, for every day from its "
    "first publishing day until 5 days ago; fails naming the sites that do not.",
)
def analytics_fresh(context: AssetCheckExecutionContext, database: DatabaseResource) -> AssetCheckResult:
    cutoff = freshness_cutoff(utc_now().date())
    with database.connect() as conn:
        stale = records.stale_sites(conn, cutoff, date.fromisoformat(ANALYTICS_START))
    domains = sorted({s.domain for s in stale})
    table = ["| site | source | days missing | days not final | oldest |", "|---|---|---:|---:|---|"]
    table += [f"| {s.domain} | {s.source} | {s.missing} | {s.provisional} | {s.oldest} |" for s in stale]
    return AssetCheckResult(
        passed=not stale,
        severity=AssetCheckSeverity.ERROR,
        description=(f"stale analytics up to {cutoff}: {', '.join(domains)} (fill with `spark analytics backfill "
                     f"--site DOMAIN`)" if stale else f"every active site is final up to {cutoff}"),
        metadata={"cutoff": str(cutoff), "stale_sites": MetadataValue.json(domains),
                  **({"stale": MetadataValue.md("\n".join(table))} if stale else {})},
    )


@asset(
    group_name="analytics",
    kinds={"pandas", "matplotlib"},
    owners=["team:platform"],
    deps=[daily_analytics],
    description="The operator's report: per site and across sites, the last 7 and 28 days against the periods before, "
    "top movers, sites without traffic, pages published against pages with impressions; PNG charts of the trends "
    "under $SPARK_HOME/reports/analytics/.",
)
def analytics_report(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    result = write_report(database, utc_now().date() - timedelta(days=1))
    charts = result["charts"]
    traffic = next((path for path in charts if path.name == "traffic.png"), None)
    metadata = {
        **result["report"].summary(),
        "report": MetadataValue.md(result["markdown"]),
        "directory": MetadataValue.path(str(result["directory"])),
        **{f"chart_{path.stem}": MetadataValue.path(str(path)) for path in charts},
    }
    if traffic is not None:  # shown in the UI, so an operator looks instead of reads
        encoded = base64.b64encode(traffic.read_bytes()).decode()
        metadata["traffic_chart"] = MetadataValue.md(f"![traffic](data:image/png;base64,{encoded})")
    return MaterializeResult(metadata=metadata)


def write_report(database: DatabaseResource, as_of: date, site: str | None = None) -> dict:
    """The report as of `as_of` (for one site, if given): its markdown and its charts, written under
    $SPARK_HOME/reports/analytics/ (or .../<domain>/). Shared by the asset and `spark analytics report`."""
    with database.connect() as conn:
        daily, sites = records.report_frames(conn, as_of - timedelta(days=REPORT_DAYS - 1), as_of, site)
    report = build_report(daily, sites, as_of, site=site)
    directory = spark_home() / "reports" / "analytics" / (site or "")
    charts = write_charts(daily, as_of, directory, site=site, days=REPORT_DAYS)
    return {"as_of": as_of, "markdown": report.markdown(), "directory": directory,
            "charts": charts, "report": report}
