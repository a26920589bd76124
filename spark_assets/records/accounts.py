"""Provider accounts (Cloudflare, Google Search Console): stored with their tokens encrypted, assigned to sites.

About 25 Cloudflare and 5 Google accounts serve hundreds of sites: a new site gets the active account with the fewest
sites (ties by nickname / email), unless the operator names one. Tokens are encrypted before they reach SQL and come
back only as `Secret`s; listings never select them.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spark_assets.records.registry import RegistryError, Site
from spark_resources.secrets import Secret, decrypt, encrypt


@dataclass(frozen=True)
class Account:
    id: UUID
    kind: str  # "cloudflare" | "gsc"
    email: str
    label: str  # nickname for Cloudflare, email for Google
    status: str
    sites: int


def add_cloudflare_account(
    conn: Connection, *, email: str, nickname: str, provider_account_id: str, api_token: str
) -> tuple[Account, bool]:
    """Add the account, or replace the token (and account id) of the one with this nickname; (account, created)."""
    row = conn.execute(
        sa.text(
            """INSERT INTO cloudflare_accounts (email, account_nickname, provider_account_id, api_token)
               VALUES (:email, :nickname, :acct, :token)
               ON CONFLICT (account_nickname) DO UPDATE SET api_token = EXCLUDED.api_token,
                   provider_account_id = EXCLUDED.provider_account_id, email = EXCLUDED.email
               RETURNING id, (xmax = 0) AS created"""
        ),
        {"email": email, "nickname": nickname, "acct": provider_account_id, "token": encrypt(api_token)},
    ).one()
    return _account(conn, "cloudflare", row.id), row.created


def add_gsc_account(conn: Connection, *, email: str, refresh_token: str) -> tuple[Account, bool]:
    row = conn.execute(
        sa.text(
            """INSERT INTO gsc_accounts (email, oauth_refresh_token) VALUES (:email, :token)
               ON CONFLICT (email) DO UPDATE SET oauth_refresh_token = EXCLUDED.oauth_refresh_token
               RETURNING id, (xmax = 0) AS created"""
        ),
        {"email": email, "token": encrypt(refresh_token)},
    ).one()
    return _account(conn, "gsc", row.id), row.created


_LISTS = {
    "cloudflare": """SELECT a.id, 'cloudflare' AS kind, a.email, a.account_nickname AS label, a.status,
                            count(s.id) AS sites
                     FROM cloudflare_accounts a LEFT JOIN sites s ON s.cloudflare_account_id = a.id
                     GROUP BY a.id""",
    "gsc": """SELECT a.id, 'gsc' AS kind, a.email, a.email AS label, a.status, count(s.id) AS sites
              FROM gsc_accounts a LEFT JOIN sites s ON s.gsc_account_id = a.id GROUP BY a.id""",
}


def list_accounts(conn: Connection, kind: str) -> list[Account]:
    rows = conn.execute(sa.text(f"SELECT * FROM ({_LISTS[kind]}) x ORDER BY label"))
    return [Account(**r._mapping) for r in rows]


def _account(conn: Connection, kind: str, account_id: UUID) -> Account:
    return next(a for a in list_accounts(conn, kind) if a.id == account_id)


def assign_accounts(
    conn: Connection, site: Site, cloudflare: str | None = None, gsc: str | None = None
) -> tuple[UUID | None, UUID | None]:
    """Give the site a Cloudflare and a Google account if it has none: the one named (Cloudflare by nickname, Google
    by email), else the least loaded active one. Returns the site's (cloudflare_account_id, gsc_account_id); None where
    no account exists yet."""
    current = conn.execute(
        sa.text("SELECT cloudflare_account_id, gsc_account_id FROM sites WHERE id = :s FOR UPDATE"), {"s": site.id}
    ).one()
    cloudflare_id, gsc_id = current.cloudflare_account_id, current.gsc_account_id
    if cloudflare is not None:
        match = [a for a in list_accounts(conn, "cloudflare") if a.label == cloudflare]
        if not match:
            raise RegistryError(f"no Cloudflare account nicknamed '{cloudflare}': see `spark account list`")
        cloudflare_id = match[0].id
    elif cloudflare_id is None:
        cloudflare_id = _least_loaded(list_accounts(conn, "cloudflare"))
    if gsc is not None:
        match = [a for a in list_accounts(conn, "gsc") if a.label == gsc]
        if not match:
            raise RegistryError(f"no Google account '{gsc}': see `spark account list`")
        gsc_id = match[0].id
    elif gsc_id is None:
        gsc_id = _least_loaded(list_accounts(conn, "gsc"))
    conn.execute(
        sa.text("UPDATE sites SET cloudflare_account_id = :cf, gsc_account_id = :g WHERE id = :s"),
        {"cf": cloudflare_id, "g": gsc_id, "s": site.id},
    )
    return cloudflare_id, gsc_id


def _least_loaded(accounts: list[Account]) -> UUID | None:
    active = [a for a in accounts if a.status == "active"]
    return min(active, key=lambda a: (a.sites, a.label)).id if active else None


def cloudflare_credentials(conn: Connection, account_id: UUID) -> tuple[str, Secret]:
    """(provider account id, API token) of a Cloudflare account."""
    row = conn.execute(
        sa.text("SELECT provider_account_id, api_token FROM cloudflare_accounts WHERE id = :a"), {"a": account_id}
    ).one()
    return row.provider_account_id or "", decrypt(row.api_token)


def gsc_refresh_token(conn: Connection, account_id: UUID) -> Secret:
    token = conn.execute(
        sa.text("SELECT oauth_refresh_token FROM gsc_accounts WHERE id = :a"), {"a": account_id}
    ).scalar_one()
    return decrypt(token)
