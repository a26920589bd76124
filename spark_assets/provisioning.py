"""Provisioning assets, per site: DNS at Cloudflare and the registrar (more steps join as they are built).

Each step converges: an existing zone, record or name-server setting counts as done, so a re-run after a fixed cause
finishes the job without duplicating anything. A failing step records `failed` and a secret-free `error_message` on
the site and fails the run for that site only (one run per site: no single-run backfill here).
"""

from typing import Any

import sqlalchemy as sa
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset
from sqlalchemy.engine import Connection

from spark_assets.accounts import assign_accounts, cloudflare_credentials
from spark_assets.partitions import site_partitions
from spark_assets.registry import RegistryError, get_site
from spark_resources.database import DatabaseResource
from spark_resources.providers.cloudflare import CloudflareResource
from spark_resources.providers.http import ProviderError
from spark_resources.providers.namecheap import NamecheapResource
from spark_resources.secrets import SecretKeyError

#: what a provisioning step reports as the cause, never with a credential in it
_EXPECTED = (ProviderError, RegistryError, SecretKeyError)


def _record_failure(conn: Connection, site_id: Any, column: str, message: str) -> None:
    conn.execute(
        sa.text(f"UPDATE sites SET {column} = 'failed', error_message = :m WHERE id = :s"), {"m": message, "s": site_id}
    )


@asset(
    partitions_def=site_partitions,
    group_name="provisioning",
    kinds={"cloudflare", "postgres"},
    owners=["team:platform"],
    op_tags={"dagster/concurrency_key": "cloudflare"},
    description="The site's Cloudflare zone, its apex and www records, and the registrar's name servers pointed at it; "
    "sites.status_dns is `active` once Cloudflare says so (it can take hours: the step does not wait).",
)
def site_dns(
    context: AssetExecutionContext,
    database: DatabaseResource,
    cloudflare: CloudflareResource,
    namecheap: NamecheapResource,
) -> MaterializeResult:
    domain = context.partition_key
    with database.begin() as conn:
        site = get_site(conn, domain)
    try:
        with database.begin() as conn:
            account_id, _ = assign_accounts(conn, site)
            if account_id is None:
                raise RegistryError("no Cloudflare account: add one with `spark account add cloudflare`")
            provider_account, token = cloudflare_credentials(conn, account_id)
        client = cloudflare.get_client(token)
        try:
            zone, created = client.ensure_zone(domain, provider_account)
            records = {
                name: client.ensure_dns_record(
                    zone.id, type="CNAME", name=name, content=cloudflare.hosting_target, proxied=True
                )[1]
                for name in (domain, f"www.{domain}")
            }
            registrar = namecheap.get_client()
            try:
                _, current = registrar.get_nameservers(domain)
                pointed = sorted(current) == sorted(zone.name_servers)
                if not pointed:
                    registrar.set_custom_nameservers(domain, list(zone.name_servers))
            finally:
                registrar.close()
            zone = client.get_zone(zone.id)
        finally:
            client.close()
    except _EXPECTED as exc:
        message = f"DNS for {domain}: {exc}"
        with database.begin() as conn:
            _record_failure(conn, site.id, "status_dns", message)
        raise Failure(description=message) from None
    status = "active" if zone.status == "active" else "pending"
    with database.begin() as conn:
        conn.execute(
            sa.text(
                """UPDATE sites SET cloudflare_zone_id = :zone, name_servers = :ns, status_dns = :status,
                       error_message = NULL WHERE id = :s"""
            ),
            {"zone": zone.id, "ns": list(zone.name_servers), "status": status, "s": site.id},
        )
    return MaterializeResult(
        metadata={
            "domain": domain,
            "zone_id": zone.id,
            "zone_status": zone.status,
            "zone_created": created,
            "records": MetadataValue.json(records),
            "name_servers": MetadataValue.json(list(zone.name_servers)),
            "name_servers_changed": not pointed,
            "status_dns": status,
        }
    )
