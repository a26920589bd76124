"""PostgreSQL for Spark Factory: the server named by DATABASE_URL, or an embedded one that needs no installation.

With DATABASE_URL unset, `pgserver` (a PostgreSQL 16 build shipped in a Python wheel) is started on a data directory under
`$SPARK_HOME/pgdata` (default `.spark/` in the working directory), or reused if another process already runs it; the
`spark` database is created and migrated on first use. Processes share one server; it stops when the last one exits.

With DATABASE_URL set, that server is used as it is: its schema is upgraded by `spark db upgrade`, and a connection to an
out-of-date schema fails with a message saying so rather than with a missing-column error halfway through a run.

URLs may carry passwords, so they are only ever shown redacted (`describe_url`).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy.engine import Connection, Engine, make_url

from spark_resources import migrations

EMBEDDED_DATABASE = "spark"
_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_embedded_servers: dict[Path, object] = {}  # keep pgserver handles alive for the life of the process


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or is not at the schema version this code needs."""


def spark_home() -> Path:
    """Where local state lives: $SPARK_HOME, default `.spark/` in the working directory."""
    return Path(os.environ.get("SPARK_HOME") or Path.cwd() / ".spark").resolve()


def describe_url(url: str) -> str:
    """The URL with any password masked: the only form in which a database URL is logged or shown."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing rather than risk leaking it
        return "<unparsable database URL>"


def normalize_url(url: str) -> str:
    """Any postgres URL (postgres://, postgresql://, postgresql+psycopg2://) as a SQLAlchemy psycopg 3 URL."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseUnavailable(f"DATABASE_URL must be a PostgreSQL URL, got {describe_url(url)}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def embedded_url(home: Path | None = None) -> str:
    """Start (or join) the embedded server under `home`, create the `spark` database, and return its URL."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells)
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = (home or spark_home()) / "pgdata"
    with _lock:
        server = _embedded_servers.get(pgdata)
        if server is None:
            pgdata.mkdir(parents=True, exist_ok=True)
            _forget_dead_users(pgserver, pgdata)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = pgserver.get_server(pgdata, cleanup_mode="stop")
            _embedded_servers[pgdata] = server
    admin_url = normalize_url(server.get_uri())  # type: ignore[attr-defined]
    ensure_database(admin_url, EMBEDDED_DATABASE)
    return make_url(admin_url).set(database=EMBEDDED_DATABASE).render_as_string(hide_password=False)


def _forget_dead_users(pgserver, pgdata: Path) -> None:
    """Drop pids of processes that no longer exist from pgserver's list of the server's users.

    pgserver stops the server when its last user exits normally; a user that was killed (SIGKILL, a crashed run
    worker) never takes itself off the list, and the server would then run forever."""
    handles = pgdata / ".handle_pids.json"
    with pgserver.PostgresServer._lock:  # the lock pgserver itself takes around that file
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if _process_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def ensure_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE `name` unless it exists (safe when several processes race to do it)."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                try:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                except sa.exc.ProgrammingError as exc:
                    if "already exists" not in str(exc.orig):
                        raise
    finally:
        engine.dispose()


def configured_url() -> str | None:
    """DATABASE_URL when it is set (and not empty), else None (the embedded server)."""
    return os.environ.get("DATABASE_URL") or None


def open_engine(url: str | None = None) -> Engine:
    """A new engine on `url`, DATABASE_URL, or the embedded server, with no schema check (for `spark db upgrade`)."""
    explicit = url or configured_url()
    return sa.create_engine(normalize_url(explicit) if explicit else embedded_url(), pool_pre_ping=True)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: DATABASE_URL, else the embedded server), its schema checked: the
    embedded server is migrated on first use, any other server must already be current."""
    explicit = url or configured_url()
    key = explicit or f"embedded:{spark_home()}"
    with _lock:
        engine = _engines.get(key)
    if engine is not None:
        return engine
    engine = open_engine(explicit)
    if explicit:
        _require_current_schema(engine)
    else:
        migrations.upgrade(engine)
    with _lock:
        return _engines.setdefault(key, engine)


def _require_current_schema(engine: Engine) -> None:
    try:
        missing = migrations.pending(engine)
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise DatabaseUnavailable(f"cannot connect to {describe_url(str(engine.url))}: {reason}") from None
    if missing:
        names = ", ".join(m.filename for m in missing)
        raise DatabaseUnavailable(
            f"the database at {describe_url(str(engine.url))} needs migrations {names}: run `spark db upgrade`"
        )


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before a process hands its server to another)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def stop_embedded_servers() -> None:
    """Release this process's handles on embedded servers (each stops when no other process holds it)."""
    dispose_engines()
    with _lock:
        servers = list(_embedded_servers.values())
        _embedded_servers.clear()
    for server in servers:
        server.cleanup()  # type: ignore[attr-defined]


class DatabaseResource(ConfigurableResource):
    """Spark Factory's PostgreSQL: SQLAlchemy 2 connections over psycopg 3.

    Leave `url` unset in code: it then comes from the DATABASE_URL environment variable at run time (so it never appears
    in run config or the event log), and without DATABASE_URL an embedded PostgreSQL under $SPARK_HOME is used.
    """

    url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset means $DATABASE_URL, else the embedded server under $SPARK_HOME",
    )

    @property
    def engine(self) -> Engine:
        return get_engine(self.url)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def description(self) -> str:
        """Where the data lives, safe to show (password masked)."""
        return describe_url(str(self.engine.url))
