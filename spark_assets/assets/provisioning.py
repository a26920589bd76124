"""Provisioning assets, per site: DNS (Cloudflare zone and records, the registrar's name servers), the Matomo analytics
site, and the verified Search Console property.

    site_dns ──> site_search_console        site_matomo

Each step converges: an existing zone, record, Matomo site or property counts as done, so a re-run after a fixed cause
finishes the job without duplicating anything. A failing step records `failed` in its own status column and a
secret-free `error_message` on the site, and fails the run for that site only (one run per site).

A new zone is `pending` until the registrar's name servers point at it and Cloudflare notices, which can take hours:
`site_dns` does not wait. `zone_activation_sensor` (spark_assets/automation/sensors.py) asks Cloudflare about pending
zones and, once a zone is active, runs `site_dns` again (which records `active`) and the steps that need an active zone.

Each asset names the pool of the provider it is limited by (`pool=`): `spark ui` gives those pools their limits
(PROVIDER_POOLS, through `spark_assets.ops.local_instance.apply_pool_limits`), so parallel runs cannot together exceed what a provider allows.
"""

from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryRequested,
    asset,
)

from spark_assets.partitions import site_partitions
from spark_assets.records.accounts import assign_accounts, cloudflare_credentials, gsc_refresh_token
from spark_assets.records.registry import RegistryError, Site, get_site
from spark_assets.release.lookup import worker_source
from spark_resources.database import DatabaseResource
from spark_resources.providers.cloudflare import CloudflareClient, CloudflareResource
from spark_resources.providers.google import SearchConsoleResource, VerificationPendingError, domain_property
from spark_resources.providers.http import ProviderError
from spark_resources.providers.matomo import MatomoResource
from spark_resources.providers.namecheap import NamecheapResource
from spark_resources.secrets import SecretKeyError
from spark_resources.storage import storage_from_environment

#: the Dagster pools the provisioning steps run in, and their limits (steps at once, across all runs). Namecheap allows
#: 20 calls a minute per key, so its step runs alone; the others leave room for the client-side rate limiters.
PROVIDER_POOLS = {"namecheap": 1, "google": 2, "matomo": 2}


#: how each step names itself in `sites.error_message` ("DNS for example.com: ..."); a success clears its own only
DNS, MATOMO, SEARCH_CONSOLE = "DNS", "Matomo", "Search Console"
#: set `error_message` to NULL when the message is the step's own (`:own` = its prefix); another step's stays
_CLEAR_OWN_ERROR = "error_message = CASE WHEN error_message LIKE :own THEN NULL ELSE error_message END"


def _own(label: str, site: Site) -> str:
    return f"{label} for {site.domain}: %"


#: what a provisioning step reports as the cause, never with a credential in it
_EXPECTED = (ProviderError, RegistryError, SecretKeyError)


@contextmanager
def _step(database: DatabaseResource, site: Site, status_column: str, label: str) -> Iterator[None]:
    """Record a failure as `<status_column> = 'failed'` and `error_message`, and fail the step. An expected failure
    (a provider's answer, a missing account or key) is told as is: its text never holds a credential. Anything else
    (a bug, a provider answering something the contract does not know) is recorded by its type only, and re-raised
    with its traceback for the run's log."""
    try:
        yield
    except RetryRequested:
        raise  # not a failure yet: Dagster runs the step again
    except _EXPECTED as exc:
        message = f"{label} for {site.domain}: {exc}"
        _record_failure(database, site, status_column, message)
        raise Failure(description=message) from None
    except Exception as exc:
        _record_failure(database, site, status_column,
                        f"{label} for {site.domain}: unexpected {type(exc).__name__} (see the run's log)")
        raise


def _record_failure(database: DatabaseResource, site: Site, status_column: str, message: str) -> None:
    with database.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE sites SET {status_column} = 'failed', error_message = :m WHERE id = :s"),
            {"m": message, "s": site.id},
        )


#: the edge router's script name in each Cloudflare account, and the runtime date it is written for
WORKER_SCRIPT = "spark-router"
WORKER_COMPATIBILITY_DATE = "2026-01-01"


@contextmanager
def _cloudflare_client(database: DatabaseResource, cloudflare: CloudflareResource, site: Site) -> Iterator[tuple[CloudflareClient, str]]:
    """A client with the site's Cloudflare account's token (assigning an account first if it has none), and the
    provider's account id."""
    with database.begin() as conn:
        account_id, _ = assign_accounts(conn, site)
        if account_id is None:
            raise RegistryError("no Cloudflare account: add one with `spark account add-cloudflare`")
        provider_account, token = cloudflare_credentials(conn, account_id)
    client = cloudflare.get_client(token, engine=database.engine)  # the token's budget, shared by all processes
    try:
        yield client, provider_account
    finally:
        client.close()


@asset(
    partitions_def=site_partitions,
    group_name="provisioning",
    kinds={"cloudflare", "postgres"},
    owners=["team:platform"],
    pool="namecheap",
    description="The site's Cloudflare zone, its apex and www records (proxied), the edge router Worker on both, and "
    "the registrar's name servers pointed at the zone; sites.status_dns is `active` once Cloudflare says so (it can "
    "take hours: the step does not wait).",
)
def site_dns(
    context: AssetExecutionContext,
    database: DatabaseResource,
    cloudflare: CloudflareResource,
    namecheap: NamecheapResource,
) -> MaterializeResult:
    with database.begin() as conn:
        site = get_site(conn, context.partition_key)
    domain = site.domain
    with _step(database, site, "status_dns", DNS), _cloudflare_client(database, cloudflare, site) as (client, account):
        zone, created = client.ensure_zone(domain, account)
        records, replaced = {}, []
        for name in (domain, f"www.{domain}"):
            ensured = client.ensure_dns_record(zone.id, type="CNAME", name=name, content=cloudflare.hosting_target,
                                               proxied=True)
            records[name] = ensured.outcome
            replaced += [record.describe() for record in ensured.replaced]
        if replaced:
            # usually the old host's records, imported when the zone was added: say what went, so it can be restored
            context.log.warning(f"{domain}: replaced conflicting DNS records with the hosting CNAMEs: "
                                f"{'; '.join(replaced)}")
        # the edge router: the Worker that serves the live release from the bucket (release/worker/worker.js), on
        # the apex and www (both proxied above, as routes run only on proxied names); re-uploading replaces it
        script = client.upload_worker_script(account, WORKER_SCRIPT, worker_source(),
                                             compatibility_date=WORKER_COMPATIBILITY_DATE,
                                             r2_buckets={"SITES": storage_from_environment().bucket})
        routes = {}
        for pattern in (f"{domain}/*", f"www.{domain}/*"):
            _, routes[pattern] = client.ensure_worker_route(zone.id, pattern, WORKER_SCRIPT)
        registrar = namecheap.get_client(engine=database.engine)
        try:
            _, current = registrar.get_nameservers(domain)
            pointed = sorted(current) == sorted(zone.name_servers)
            if not pointed:
                registrar.set_custom_nameservers(domain, list(zone.name_servers))
        finally:
            registrar.close()
        zone = client.get_zone(zone.id)
    status = "active" if zone.status == "active" else "pending"
    with database.begin() as conn:
        conn.execute(
            sa.text(
                f"""UPDATE sites SET cloudflare_zone_id = :zone, name_servers = :ns, status_dns = :status,
                        {_CLEAR_OWN_ERROR} WHERE id = :s"""
            ),
            {"zone": zone.id, "ns": list(zone.name_servers), "status": status, "s": site.id, "own": _own(DNS, site)},
        )
    if status == "pending":
        context.log.info(f"zone for {domain} is pending: zone_activation_sensor will carry on once Cloudflare activates it")
    return MaterializeResult(
        metadata={
            "domain": domain,
            "zone_id": zone.id,
            "zone_status": zone.status,
            "zone_created": created,
            "records": MetadataValue.json(records),
            "replaced_records": MetadataValue.json(replaced),
            "name_servers": MetadataValue.json(list(zone.name_servers)),
            "name_servers_changed": not pointed,
            "status_dns": status,
            "worker": f"{WORKER_SCRIPT} (etag {script.etag})",
            "worker_routes": MetadataValue.json(routes),
        }
    )


def _timezone(database: DatabaseResource, site: Site) -> str:
    with database.connect() as conn:
        return conn.execute(sa.text("SELECT timezone FROM sites WHERE id = :s"), {"s": site.id}).scalar_one()


@asset(
    partitions_def=site_partitions,
    group_name="provisioning",
    kinds={"matomo", "postgres"},
    owners=["team:platform"],
    pool="matomo",
    description="The site's Matomo analytics site, found by URL or added; sites.matomo_site_id and status_hosting.",
)
def site_matomo(context: AssetExecutionContext, database: DatabaseResource, matomo: MatomoResource) -> MaterializeResult:
    with database.begin() as conn:
        site = get_site(conn, context.partition_key)
    url = f"https://{site.domain}"
    with _step(database, site, "status_hosting", MATOMO):
        client = matomo.get_client()
        try:
            matomo_id, created = client.ensure_site(site.brand_name or site.name, url, timezone=_timezone(database, site))
        finally:
            client.close()
    with database.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE sites SET matomo_site_id = :m, status_hosting = 'active', {_CLEAR_OWN_ERROR} WHERE id = :s"),
            {"m": matomo_id, "s": site.id, "own": _own(MATOMO, site)},
        )
    return MaterializeResult(
        metadata={"domain": site.domain, "url": url, "matomo_site_id": matomo_id, "matomo_site_created": created}
    )


@asset(
    partitions_def=site_partitions,
    group_name="provisioning",
    deps=[site_dns],
    kinds={"google", "cloudflare", "postgres"},
    owners=["team:platform"],
    pool="google",
    description="The site's verified Search Console domain property: a Site Verification token published as a TXT "
    "record through Cloudflare, verified, and `sc-domain:` added; sites.gsc_verification_status. Needs an active zone.",
)
def site_search_console(
    context: AssetExecutionContext,
    database: DatabaseResource,
    cloudflare: CloudflareResource,
    search_console: SearchConsoleResource,
) -> MaterializeResult:
    with database.connect() as conn:
        site = get_site(conn, context.partition_key)
        row = conn.execute(
            sa.text("SELECT cloudflare_zone_id, status_dns FROM sites WHERE id = :s"), {"s": site.id}
        ).one()
    if row.status_dns != "active" or row.cloudflare_zone_id is None:
        # not a failure of this step: it waits for the zone (zone_activation_sensor runs it once the zone is active)
        raise Failure(
            description=f"{SEARCH_CONSOLE} for {site.domain}: DNS is {row.status_dns}, not active yet; "
            "zone_activation_sensor runs this step once Cloudflare activates the zone"
        )
    domain, property_url = site.domain, domain_property(site.domain)
    with _step(database, site, "gsc_verification_status", SEARCH_CONSOLE):
        with database.begin() as conn:
            _, gsc_account = assign_accounts(conn, site)
            if gsc_account is None:
                raise RegistryError("no Google account: add one with `spark account add-gsc`")
            refresh_token = gsc_refresh_token(conn, gsc_account)
        google = search_console.get_client(refresh_token, engine=database.engine)
        try:
            token = google.verification_token(domain)
            with _cloudflare_client(database, cloudflare, site) as (client, _):
                _, txt_created = client.ensure_record_present(row.cloudflare_zone_id, type="TXT", name=domain,
                                                              content=token)
            try:
                owners = google.verify_domain(domain)
            except VerificationPendingError:
                # only this answer is worth waiting for; a revoked token or a refused request fails at once
                if context.retry_number >= search_console.verification_retries:
                    raise
                # Google does not see the TXT record yet (DNS propagation): wait and run the step again
                context.log.info(f"Google cannot see the TXT record of {domain} yet; verifying again in "
                                 f"{search_console.verification_retry_seconds:.0f} s")
                raise RetryRequested(max_retries=search_console.verification_retries,
                                     seconds_to_wait=search_console.verification_retry_seconds) from None
            property_added = google.ensure_site(property_url)
        finally:
            google.close()
    with database.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE sites SET gsc_verification_status = 'verified', {_CLEAR_OWN_ERROR} WHERE id = :s"),
            {"s": site.id, "own": _own(SEARCH_CONSOLE, site)},
        )
    return MaterializeResult(
        metadata={
            "domain": domain,
            "property": property_url,
            "txt_record_created": txt_created,
            "property_added": property_added,
            "owners": len(owners),
            "gsc_verification_status": "verified",
        }
    )
