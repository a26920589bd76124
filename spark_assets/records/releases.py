"""The `site_deployments` rows of releases and rollbacks, and the site's `status_deployment`. No dagster.

A release's failure is recorded on its row and on the site (`status_deployment = 'failed'`, `error_message` beginning
"Release for <domain>:"); a later success clears that message only (another step's stays, as provisioning does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

ERROR_PREFIX = "Release for "


@dataclass(frozen=True)
class Deployment:
    id: UUID
    kind: str
    status: str
    release_id: str | None
    previous_release: str | None
    build_id: UUID | None
    objects_uploaded: int
    objects_reused: int
    bytes_uploaded: int
    duration_ms: int | None
    error_message: str | None
    started_at: datetime | None
    finished_at: datetime | None


def start(conn: Connection, site_id: UUID, build_id: UUID | None, bucket: str, prefix: str, kind: str,
          release_id: str) -> UUID:
    conn.execute(sa.text("UPDATE sites SET status_deployment = 'deploying' WHERE id = :s"), {"s": site_id})
    return conn.execute(
        sa.text(
            """INSERT INTO site_deployments (site_id, build_id, bucket, prefix, kind, release_id, status, started_at)
               VALUES (:s, :b, :bucket, :prefix, :kind, :r, 'deploying', now()) RETURNING id"""
        ),
        {"s": site_id, "b": build_id, "bucket": bucket, "prefix": prefix, "kind": kind, "r": release_id},
    ).scalar_one()


def finish(conn: Connection, deployment_id: UUID, site_id: UUID, domain: str, **values) -> None:
    assignments = "".join(f", {name} = :{name}" for name in values)
    conn.execute(
        sa.text(f"UPDATE site_deployments SET status = 'deployed', finished_at = now(){assignments} WHERE id = :id"),
        {"id": deployment_id, **values},
    )
    conn.execute(
        sa.text("""UPDATE sites SET status_deployment = 'deployed',
                      error_message = CASE WHEN error_message LIKE :own THEN NULL ELSE error_message END
                   WHERE id = :s"""),
        {"s": site_id, "own": f"{ERROR_PREFIX}{domain}:%"},
    )


def fail(conn: Connection, deployment_id: UUID, site_id: UUID, domain: str, error: str, duration_ms: int) -> str:
    """Record the failure; the message as recorded ("Release for <domain>: ...")."""
    message = f"{ERROR_PREFIX}{domain}: {error}"[:2000]
    conn.execute(
        sa.text("""UPDATE site_deployments SET status = 'failed', error_message = :m, finished_at = now(),
                      duration_ms = :d WHERE id = :id"""),
        {"id": deployment_id, "m": message, "d": duration_ms},
    )
    conn.execute(sa.text("UPDATE sites SET status_deployment = 'failed', error_message = :m WHERE id = :s"),
                 {"s": site_id, "m": message})
    return message


def history(conn: Connection, site_id: UUID, limit: int = 50) -> list[Deployment]:
    """The site's releases and rollbacks, newest first."""
    rows = conn.execute(
        sa.text(
            """SELECT id, kind, status, release_id, previous_release, build_id, objects_uploaded, objects_reused,
                      bytes_uploaded, duration_ms, error_message, started_at, finished_at
               FROM site_deployments WHERE site_id = :s ORDER BY date_created DESC, id LIMIT :n"""
        ),
        {"s": site_id, "n": limit},
    ).all()
    return [Deployment(*row) for row in rows]


def release_build_id(conn: Connection, site_id: UUID, release_id: str) -> UUID | None:
    return conn.execute(
        sa.text("""SELECT build_id FROM site_deployments WHERE site_id = :s AND release_id = :r AND kind = 'release'
                   ORDER BY date_created DESC LIMIT 1"""),
        {"s": site_id, "r": release_id},
    ).scalar()

