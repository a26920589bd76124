"""A small, tested migration runner for the plain-SQL files in `sql/`.

Why not Alembic or yoyo: the schema is plain SQL by design (reviewable, runnable with psql), and what we need from a tool is
four rules that fit in this file and are covered by tests:

* migrations are `sql/NNNN_name.sql`, applied in version order, each in its own transaction together with the row that
  records it in `spark_schema_migrations` (so a failing file leaves nothing behind and the earlier ones stay applied);
* re-running is a no-op;
* a file edited after it was applied is refused (its checksum no longer matches), as is a database that has versions this
  code does not know (it was upgraded by newer code);
* concurrent runners (the Dagster code server, a run and the CLI starting together) serialise on an advisory lock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spark_resources.paths import SQL_DIRECTORY

MIGRATIONS_TABLE = "spark_schema_migrations"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5_9A_4B_F0  # any constant shared by every runner of this project


class MigrationError(RuntimeError):
    """The schema cannot be brought to the version this code expects; the message says which file and why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def sql_directory() -> Path:
    """`sql/` beside the packages in a source checkout, or the copy inside the wheel."""
    for candidate in (SQL_DIRECTORY, Path(__file__).resolve().parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("cannot find the sql/ migrations directory")


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_directory()
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_case_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path.name}: version {version} is used by {migrations[version].filename} too")
        migrations[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [migrations[v] for v in sorted(migrations)]


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str


def _ensure_table(conn: Connection) -> None:
    conn.exec_driver_sql(
        f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
    )


def applied(conn: Connection) -> dict[int, AppliedMigration]:
    exists = conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": MIGRATIONS_TABLE}).scalar_one()
    if not exists:
        return {}
    rows = conn.execute(sa.text(f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"))
    return {row.version: AppliedMigration(row.version, row.name, row.checksum) for row in rows}


def _check_history(done: dict[int, AppliedMigration], known: list[Migration]) -> None:
    by_version = {m.version: m for m in known}
    for version, row in done.items():
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{row.name} that this code does not know: "
                "it was upgraded by a newer Spark Factory"
            )
        if migration.checksum != row.checksum:
            raise MigrationError(
                f"{migration.filename} was changed after it was applied: add a new migration instead of editing it"
            )


def pending(engine: Engine, migrations: list[Migration] | None = None) -> list[Migration]:
    """The migrations not yet applied (after checking the applied ones are unchanged)."""
    known = migrations if migrations is not None else discover()
    with engine.connect() as conn:
        done = applied(conn)
    _check_history(done, known)
    return [m for m in known if m.version not in done]


def upgrade(engine: Engine, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied (empty when up to date)."""
    known = migrations if migrations is not None else discover()
    newly_applied: list[Migration] = []
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
        conn.commit()
        try:
            with conn.begin():
                _ensure_table(conn)
                done = applied(conn)
            _check_history(done, known)
            for migration in known:
                if migration.version in done:
                    continue
                try:
                    with conn.begin():
                        # straight to psycopg with no parameters, so '%' in SQL (format('%I', ...)) is left alone
                        with conn.connection.dbapi_connection.cursor() as cursor:
                            cursor.execute(migration.sql)
                        conn.execute(
                            sa.text(f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES (:v, :n, :c)"),
                            {"v": migration.version, "n": migration.name, "c": migration.checksum},
                        )
                except (sa.exc.DBAPIError, psycopg.Error) as exc:
                    cause = getattr(exc, "orig", None) or exc
                    detail = str(cause).strip().splitlines()[0]
                    raise MigrationError(f"{migration.filename} failed and was rolled back: {detail}") from None
                newly_applied.append(migration)
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
            conn.commit()
    return newly_applied
