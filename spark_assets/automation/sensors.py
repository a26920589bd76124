"""Sensors that turn registry rows into partitions (and the runs new partitions need).

Each tick reads the active keys from PostgreSQL and compares a fingerprint of them with the cursor; when the registry has
not changed the tick is skipped without touching the Dagster instance. When it has, the keys the instance does not know yet
are added, so every key is added exactly once even if the cursor is lost or rows commit out of order (a "max id seen"
cursor would skip a row that commits after a later one).

`analytics_history_sensor` (hourly) fills analytics history: days missing or not final before the daily schedule's
window, in the backfill's fixed 31-day runs, each naming the sites it is for.

Archived sites and campaigns are not removed: their partitions keep their materialization history browsable in the UI,
and the sensors simply stop adding anything for them. Remove a partition by hand in the UI if it must go.
"""

import hashlib
from datetime import date, timedelta
from typing import Callable, Iterable

import sqlalchemy as sa
from dagster import (
    AssetKey,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from sqlalchemy.engine import Connection

from spark_assets.analytics.days import aligned_chunks, schedule_window, utc_now
from spark_assets.assets.analytics import MAX_DAYS_PER_RUN, SITES_TAG
from spark_assets.automation.run_kinds import run_kind_tags
from spark_assets.automation.schedules import analytics_range_tags
from spark_assets.partitions import ANALYTICS_START, campaign_partitions, site_partitions
from spark_assets.records.accounts import cloudflare_credentials
from spark_assets.records.analytics import unsettled_days
from spark_assets.records.registry import active_campaign_keys, active_site_keys, locations_loaded
from spark_resources.database import DatabaseResource
from spark_resources.providers.cloudflare import CloudflareResource
from spark_resources.providers.http import ProviderError
from spark_resources.secrets import SecretKeyError

#: what a new campaign partition is materialized with: its whole content chain (avatars too: the campaign may bring new
#: personas). `locations` is not here: it is loaded once (the demo does it) and refreshed by hand.
NEW_CAMPAIGN_ASSETS = [
    AssetKey(name)
    for name in (
        "avatars", "campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines", "articles",
        "article_quality",
    )
]
#: what a campaign's content stands on and a fresh database lacks: the places, loaded once (`locations`)
PREREQUISITE_ASSETS: list[AssetKey] = [AssetKey("locations")]
#: what a new site partition is materialized with: the provisioning steps that need nothing but the site
NEW_SITE_ASSETS: list[AssetKey] = [AssetKey("site_dns"), AssetKey("site_matomo")]
#: what runs once a site's zone is active: site_dns again (it records `active`) and the steps that need the zone
ACTIVE_ZONE_ASSETS: list[AssetKey] = [AssetKey("site_dns"), AssetKey("site_search_console")]
#: pending zones asked about per tick (one Cloudflare call each; the tick comes every five minutes)
ZONES_PER_TICK = 50

def registry_fingerprint(keys: Iterable[str]) -> str:
    """A short digest of the sorted key set: equal fingerprints mean nothing was added or archived."""
    return hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:32]

def unseen(keys: Iterable[str], known: Iterable[str]) -> list[str]:
    known_set = set(known)
    return [key for key in keys if key not in known_set]

def build_registry_sensor(
    name: str,
    noun: str,
    partitions_def: DynamicPartitionsDefinition,
    read_keys: Callable[[Connection], list[str]],
    assets: list[AssetKey],
    description: str,
    run_kind: str,
    prerequisites: Callable[[Connection], list[AssetKey]] | None = None,
) -> SensorDefinition:
    """A sensor that adds a partition of `partitions_def` for every new key `read_keys` returns, and requests a run of
    `assets` for it (when there are any). When `prerequisites` names unpartitioned assets the runs need first (and
    there are new keys), the tick requests one run of those instead and leaves the keys for a later tick, once they
    are there."""

    @sensor(
        name=name,
        description=description,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=[*PREREQUISITE_ASSETS, *assets] if prerequisites else (assets or None),
    )
    def _sensor(context: SensorEvaluationContext, database: DatabaseResource) -> SensorResult | SkipReason:
        with database.connect() as conn:
            keys = read_keys(conn)
            missing = prerequisites(conn) if prerequisites else []
        fingerprint = registry_fingerprint(keys)
        if context.cursor == fingerprint:
            return SkipReason(f"no new {noun}s ({len(keys)} registered)")
        new_keys = unseen(keys, context.instance.get_dynamic_partitions(partitions_def.name))
        if new_keys and missing:
            # once per database: the key names the assets, so later ticks wait for this run rather than repeat it
            names = ", ".join(key.to_user_string() for key in missing)
            context.log.info(f"new {noun}s wait for {names}: requested first")
            return SensorResult(
                run_requests=[RunRequest(asset_selection=missing, run_key=f"prerequisite:{names}",
                                         tags=run_kind_tags(run_kind))],
                cursor=context.cursor,
            )
        if new_keys:
            context.log.info(f"new {noun}s: {', '.join(new_keys)}")
        return SensorResult(
            run_requests=[
                RunRequest(partition_key=key, asset_selection=assets, run_key=f"new-{noun}:{key}",
                           tags=run_kind_tags(run_kind))
                for key in new_keys
                if assets
            ],
            dynamic_partitions_requests=[partitions_def.build_add_request(new_keys)] if new_keys else [],
            cursor=fingerprint,
        )

    return _sensor

new_sites_sensor = build_registry_sensor(
    name="new_sites_sensor",
    noun="site",
    partitions_def=site_partitions,
    read_keys=active_site_keys,
    assets=NEW_SITE_ASSETS,
    run_kind="provisioning",
    description="Adds a `site` partition for every registered site that is not archived.",
)

new_campaigns_sensor = build_registry_sensor(
    name="new_campaigns_sensor",
    noun="campaign",
    partitions_def=campaign_partitions,
    read_keys=active_campaign_keys,
    assets=NEW_CAMPAIGN_ASSETS,
    run_kind="content",
    prerequisites=lambda conn: [] if locations_loaded(conn) else PREREQUISITE_ASSETS,
    description="Adds a `campaign` partition for every imported campaign that is not archived, and materializes it; "
    "on a database without places yet, loads `locations` first.",
)


@sensor(
    name="zone_activation_sensor",
    description="Asks Cloudflare about sites whose zone is pending; once a zone is active, runs site_dns (which records "
    "`active`) and the steps that need an active zone (site_search_console), once per zone.",
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    asset_selection=ACTIVE_ZONE_ASSETS,
)
def zone_activation_sensor(
    context: SensorEvaluationContext, database: DatabaseResource, cloudflare: CloudflareResource
) -> SensorResult | SkipReason:
    # Sites whose zone exists and whose later steps have not run: zones already recorded active by site_dns (nothing
    # to ask), and pending zones, asked about ZONES_PER_TICK at a time in domain order from where the last tick
    # stopped (the cursor), so every pending zone is asked about in turn however many there are. Failed steps wait
    # for the operator's re-run.
    waiting = """SELECT domain, cloudflare_zone_id, cloudflare_account_id, status_dns FROM sites
                 WHERE status = 'active' AND cloudflare_zone_id IS NOT NULL AND gsc_verification_status = 'pending'"""
    after = context.cursor or ""
    with database.connect() as conn:
        recorded = conn.execute(sa.text(f"{waiting} AND status_dns = 'active' ORDER BY domain")).all()
        pending = conn.execute(
            sa.text(f"{waiting} AND status_dns = 'pending' ORDER BY domain > :after DESC, domain LIMIT :n"),
            {"after": after, "n": ZONES_PER_TICK},
        ).all()
    if not recorded and not pending:
        return SkipReason("no site is waiting for its zone")
    activated = [site for site in pending if _zone_is_active(context, database, cloudflare, site)]
    still_pending = [site.domain for site in pending if site not in activated]
    if still_pending:
        context.log.info(f"zones still pending: {', '.join(still_pending)}")
    # one run per zone: the run key holds the zone id, so a zone is handed on once however often it is seen
    return SensorResult(
        run_requests=[
            RunRequest(partition_key=site.domain, asset_selection=ACTIVE_ZONE_ASSETS,
                       run_key=f"zone-active:{site.domain}:{site.cloudflare_zone_id}",
                       tags=run_kind_tags("provisioning"))
            for site in [*recorded, *activated]
        ],
        cursor=pending[-1].domain if pending else after,
    )


def _zone_is_active(context: SensorEvaluationContext, database: DatabaseResource, cloudflare: CloudflareResource,
                    site) -> bool:
    """What Cloudflare says now. A failure is logged and the site asked about again next tick."""
    try:
        with database.connect() as conn:
            _, token = cloudflare_credentials(conn, site.cloudflare_account_id)
        # a tick must end within Dagster's sensor timeout: a lockout's retry-after is not waited out here (the error
        # says when Cloudflare answers again, and the next tick asks again)
        client = cloudflare.get_client(token, engine=database.engine, max_retry_after=0)
        try:
            return client.get_zone(site.cloudflare_zone_id).status == "active"
        finally:
            client.close()
    except (ProviderError, SecretKeyError) as exc:
        context.log.warning(f"could not ask Cloudflare about {site.domain}: {exc}")
        return False


#: what a history run materializes: both sources and their merge (the daily schedule's run writes the report)
HISTORY_ASSETS = [AssetKey("matomo_daily"), AssetKey("search_console_daily"), AssetKey("daily_analytics")]
#: history runs one tick may request (each at most MAX_DAYS_PER_RUN days)
HISTORY_RUNS_PER_TICK = 10
#: above this many sites in one run the tag is left off: the run fetches every site (final days are kept as they are)
HISTORY_SITES_PER_TAG = 50


@sensor(
    asset_selection=HISTORY_ASSETS,
    minimum_interval_seconds=3600,
    default_status=DefaultSensorStatus.RUNNING,
    description="Hourly: sites with analytics days missing or not final before the daily schedule's window (a site "
    "that went live before it came to the factory, days the schedule missed) get runs that fill them, the days cut "
    "into the backfill's fixed 31-day runs, each run naming the sites it is for.",
)
def analytics_history_sensor(context: SensorEvaluationContext, database: DatabaseResource):
    today = utc_now().date()
    before_window = schedule_window(today)[0] - timedelta(days=1)
    origin = date.fromisoformat(ANALYTICS_START)
    with database.connect() as conn:
        gaps = unsettled_days(conn, before_window, origin)
    sites_by_run: dict[tuple[date, date], set[str]] = {}
    for domain, days in gaps.items():
        for run in aligned_chunks(days, origin, MAX_DAYS_PER_RUN):
            sites_by_run.setdefault(run, set()).add(domain)
    if not sites_by_run:
        return SkipReason(f"every site's analytics are final up to {before_window}")
    requests = []
    for (first, last), domains in sorted(sites_by_run.items())[:HISTORY_RUNS_PER_TICK]:
        tags = analytics_range_tags(first, min(last, before_window)) | run_kind_tags("analytics")
        if len(domains) <= HISTORY_SITES_PER_TAG:
            tags[SITES_TAG] = ",".join(sorted(domains))
        # the tick's day in the key: a run whose sites still have gaps (a provider refused) is tried again tomorrow
        key = hashlib.sha256(",".join(sorted(domains)).encode()).hexdigest()[:12]
        requests.append(RunRequest(run_key=f"analytics-history/{first}/{today}/{key}", tags=tags))
    context.log.info(f"{len(sites_by_run)} run(s) of history to fill for {len(gaps)} site(s); {len(requests)} requested")
    return requests
