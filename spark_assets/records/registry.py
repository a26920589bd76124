"""The registry of sites and campaigns: what operators register with the `spark` CLI and sensors turn into partitions.

Partition keys are derived here and nowhere else: a site's key is its domain (`demo-roofing.example`), a campaign's is
`<domain>/<campaign-slug>`. Both parts are validated names (see `content.names`), so a key never holds a comma, a space or
a path trick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spark_assets.analytics.days import InvalidTimeZone, time_zone
from spark_assets.content.blueprint import Blueprint
from spark_assets.content.names import normalize_domain


class RegistryError(ValueError):
    """An operator request that cannot be carried out (unknown site, bad key); nothing was written."""


@dataclass(frozen=True)
class Site:
    id: UUID
    domain: str
    name: str
    brand_name: str | None
    status: str
    status_dns: str
    status_hosting: str
    status_content: str
    status_deployment: str
    gsc_verification_status: str
    error_message: str | None
    date_created: datetime


@dataclass(frozen=True)
class Campaign:
    id: UUID
    site_id: UUID
    domain: str
    slug: str
    name: str
    status: str
    blueprint_hash: str
    date_created: datetime

    @property
    def partition_key(self) -> str:
        return campaign_key(self.domain, self.slug)


def campaign_key(domain: str, slug: str) -> str:
    return f"{domain}/{slug}"


def split_campaign_key(key: str) -> tuple[str, str]:
    """(domain, slug) of a campaign partition key, or RegistryError."""
    domain, sep, slug = key.partition("/")
    if not sep or not domain or not slug or "/" in slug:
        raise RegistryError(f"'{key}' is not a campaign key: expected '<domain>/<campaign-slug>'")
    return domain, slug


_SITE_COLUMNS = (
    "id, domain, name, brand_name, status, status_dns, status_hosting, status_content, status_deployment, "
    "gsc_verification_status, error_message, date_created"
)


def add_site(conn: Connection, domain: str, brand: str | None = None, *, timezone: str | None = None,
             launched_on: date | None = None) -> tuple[Site, bool]:
    """Register a site (domain validated and normalised). Returns (site, created); an existing site keeps its row and
    only takes the new brand, time zone (IANA name: its analytics days) or launch day (for a site live before it came
    to the factory: its analytics history starts there) if given."""
    domain = normalize_domain(domain)
    if timezone is not None:
        try:
            time_zone(timezone)
        except InvalidTimeZone as exc:
            raise RegistryError(str(exc)) from None
    site, created = _add_site(conn, domain, brand)
    if timezone is not None or launched_on is not None:
        conn.execute(
            sa.text("""UPDATE sites SET timezone = coalesce(:tz, timezone), launched_on = coalesce(:launched, launched_on)
                       WHERE id = :s"""),
            {"tz": timezone, "launched": launched_on, "s": site.id},
        )
    return site, created


def _add_site(conn: Connection, domain: str, brand: str | None) -> tuple[Site, bool]:
    if domain.startswith("www."):
        # a site is its apex: its www host is served the same site (the edge router and provisioning do both)
        raise RegistryError(f"register the apex domain, not its www host: `spark site add {domain[4:]}` "
                            f"(www.{domain[4:]} serves the same site)")
    row = conn.execute(
        sa.text(
            f"""INSERT INTO sites (domain, name, brand_name) VALUES (:domain, :name, :brand)
                ON CONFLICT (domain) DO NOTHING
                RETURNING {_SITE_COLUMNS}"""
        ),
        {"domain": domain, "name": brand or domain, "brand": brand},
    ).first()
    if row is not None:
        return Site(**row._mapping), True
    if brand:
        conn.execute(
            sa.text("UPDATE sites SET brand_name = :brand, name = :brand WHERE domain = :domain AND brand_name IS DISTINCT FROM :brand"),
            {"brand": brand, "domain": domain},
        )
    return get_site(conn, domain), False


def get_site(conn: Connection, domain: str) -> Site:
    row = conn.execute(sa.text(f"SELECT {_SITE_COLUMNS} FROM sites WHERE domain = :d"), {"d": domain}).first()
    if row is None:
        raise RegistryError(f"site '{domain}' is not registered: add it with `spark site add {domain}`")
    return Site(**row._mapping)


def list_sites(conn: Connection) -> list[Site]:
    rows = conn.execute(sa.text(f"SELECT {_SITE_COLUMNS} FROM sites ORDER BY domain"))
    return [Site(**row._mapping) for row in rows]


ImportOutcome = Literal["created", "updated", "unchanged"]


def import_campaign(
    conn: Connection, site_domain: str, blueprint: Blueprint, source: str | None = None
) -> tuple[Campaign, ImportOutcome]:
    """Create or update the campaign (site, blueprint slug) from a validated blueprint. Re-importing the same blueprint
    changes nothing; a changed one updates the row in place (same id, same partition key)."""
    site = get_site(conn, normalize_domain(site_domain))
    slug = blueprint.campaign_slug
    digest = blueprint.content_hash()
    previous = conn.execute(
        sa.text("SELECT blueprint_hash FROM campaign_masters WHERE site_id = :s AND slug = :slug FOR UPDATE"),
        {"s": site.id, "slug": slug},
    ).scalar_one_or_none()
    params = {
        "site_id": site.id,
        "slug": slug,
        "name": blueprint.name,
        "status": blueprint.status,
        "spintax": blueprint.headline_spintax_root,
        "words": blueprint.target_word_count,
        "mode": blueprint.location.mode,
        "batch": blueprint.batch_count,
        "doc": json.dumps(blueprint.model_dump(mode="json")),
        "hash": digest,
        "source": source,
    }
    if previous == digest:
        outcome: ImportOutcome = "unchanged"
    else:
        conn.execute(
            sa.text(
                """INSERT INTO campaign_masters (site_id, slug, name, status, headline_spintax_root, target_word_count,
                                                 location_mode, batch_count, blueprint, blueprint_hash, blueprint_source)
                   VALUES (:site_id, :slug, :name, :status, :spintax, :words, :mode, :batch, CAST(:doc AS jsonb),
                           :hash, :source)
                   ON CONFLICT (site_id, slug) DO UPDATE SET
                       name = EXCLUDED.name, status = EXCLUDED.status,
                       headline_spintax_root = EXCLUDED.headline_spintax_root,
                       target_word_count = EXCLUDED.target_word_count, location_mode = EXCLUDED.location_mode,
                       batch_count = EXCLUDED.batch_count, blueprint = EXCLUDED.blueprint,
                       blueprint_hash = EXCLUDED.blueprint_hash, blueprint_source = EXCLUDED.blueprint_source"""
            ),
            params,
        )
        outcome = "created" if previous is None else "updated"
    return get_campaign(conn, campaign_key(site.domain, slug)), outcome


_CAMPAIGN_SELECT = """SELECT c.id, c.site_id, s.domain, c.slug, c.name, c.status, c.blueprint_hash, c.date_created
                      FROM campaign_masters c JOIN sites s ON s.id = c.site_id"""


def get_campaign(conn: Connection, key: str) -> Campaign:
    domain, slug = split_campaign_key(key)
    row = conn.execute(
        sa.text(f"{_CAMPAIGN_SELECT} WHERE s.domain = :d AND c.slug = :slug"), {"d": domain, "slug": slug}
    ).first()
    if row is None:
        raise RegistryError(f"campaign '{key}' is not registered: import its blueprint with `spark campaign import`")
    return Campaign(**row._mapping)


def list_campaigns(conn: Connection, site_domain: str | None = None) -> list[Campaign]:
    where, params = ("WHERE s.domain = :d", {"d": site_domain}) if site_domain else ("", {})
    rows = conn.execute(sa.text(f"{_CAMPAIGN_SELECT} {where} ORDER BY s.domain, c.slug"), params)
    return [Campaign(**row._mapping) for row in rows]


def load_campaign_blueprint(conn: Connection, key: str) -> tuple[Campaign, Blueprint]:
    """The campaign and its stored blueprint, re-validated (a stored document is trusted no more than a file)."""
    campaign = get_campaign(conn, key)
    doc = conn.execute(sa.text("SELECT blueprint FROM campaign_masters WHERE id = :id"), {"id": campaign.id}).scalar_one()
    return campaign, Blueprint.model_validate(doc)


def active_site_keys(conn: Connection) -> list[str]:
    """Partition keys of every site that is not archived, sorted."""
    return list(conn.execute(sa.text("SELECT domain FROM sites WHERE status <> 'archived' ORDER BY domain")).scalars())


def locations_loaded(conn: Connection) -> bool:
    """Whether the places every campaign draws from (the `locations` asset's tables) are loaded in this database."""
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM locations_states)")).scalar_one()


def active_campaign_keys(conn: Connection) -> list[str]:
    """Partition keys of every campaign that is not archived and whose site is not archived, sorted."""
    rows = conn.execute(
        sa.text(
            """SELECT s.domain || '/' || c.slug FROM campaign_masters c JOIN sites s ON s.id = c.site_id
               WHERE c.status <> 'archived' AND s.status <> 'archived' ORDER BY 1"""
        )
    )
    return list(rows.scalars())


#: the class of the advisory locks that serialise one campaign's stages (pg_advisory_xact_lock(class, hashtext(key)));
#: any constant of this project's, distinct from the migration runner's single-key lock
_CAMPAIGN_LOCK_CLASS = 0x5F_AC_00_01
#: the same for the site-wide personas the `avatars` asset writes
_AVATARS_LOCK_CLASS = 0x5F_AC_00_02


def lock_campaign(conn: Connection, key: str, on_wait: Callable[[str], None] | None = None) -> None:
    """Hold campaign `key`'s lock until the transaction ends, so two runs of its stages never interleave: a second run
    waits for the first to commit, then merges onto what it wrote (two first runs would otherwise both insert the same
    derived ids). `on_wait` is told when another run holds the lock."""
    _advisory_lock(conn, _CAMPAIGN_LOCK_CLASS, key, on_wait, f"waiting for another run of {key} to finish")


def lock_personas(conn: Connection, on_wait: Callable[[str], None] | None = None) -> None:
    """Hold the lock on every site's personas (avatar_intelligence, avatar_variants) until the transaction ends."""
    _advisory_lock(conn, _AVATARS_LOCK_CLASS, "avatars", on_wait, "waiting for another run of avatars to finish")


def _advisory_lock(conn: Connection, lock_class: int, key: str, on_wait: Callable[[str], None] | None,
                   message: str) -> None:
    params = {"cls": lock_class, "key": key}
    if conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:cls, hashtext(:key))"), params).scalar_one():
        return
    if on_wait is not None:
        on_wait(message)
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:key))"), params)
