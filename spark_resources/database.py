"""PostgreSQL for Spark Factory: the server named by DATABASE_URL, or an embedded one that needs no installation.

With DATABASE_URL unset, `pgserver` (a PostgreSQL 16 build shipped in a Python wheel) is started on a data directory under
`$SPARK_HOME/pgdata` (default `.spark/` in the working directory), or reused if another process already runs it; the
`spark` database is created and migrated on first use. Processes share one server; it stops when the last one exits.

With DATABASE_URL set, that server is used as it is: its schema is upgraded by `spark db upgrade`, and a connection to an
out-of-date schema fails with a message saying so rather than with a missing-column error halfway through a run.

Local state is private: SPARK_HOME is mode 0700 (0711 as root, so the embedded server's own 'pgserver' user can pass
through to pgdata) and directories made in it with `private_directory` are 0700.

URLs may carry passwords, so they are only ever shown redacted (`describe_url`), and a driver error is shown only as its
first line with every form of the password masked (`mask_secrets`). DATABASE_URL may be anything libpq accepts: a
`postgresql://` URL (password in the user info or as `?password=`, percent-encoded) or a `key=value` string; an
unescaped `@` in the user info, which libpq would split into a wrong host that then shows up in its errors, is refused.
"""

from __future__ import annotations

import json
import os
import re
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, unquote

import sqlalchemy as sa
from dagster import ConfigurableResource
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field
from sqlalchemy.engine import URL, Connection, Engine, make_url

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


#: SPARK_HOME's mode: only its owner may list or read it (it holds the key file, the database, Dagster's event log and
#: compute logs). As root the embedded server runs as the 'pgserver' user, which must still pass through to pgdata:
#: execute (traverse) for others, no read, so nobody else can list what is there.
def _home_mode() -> int:
    return 0o711 if hasattr(os, "geteuid") and os.geteuid() == 0 else 0o700


def private_directory(path: Path, *, tighten: bool = True) -> Path:
    """`path` made (parents too, like `mkdir -p`) and readable by this user only (0700; SPARK_HOME itself
    `_home_mode()`): local state is created this way. An existing directory of ours is tightened unless `tighten` is
    false (a directory the operator named, such as their own DAGSTER_HOME, keeps the mode they gave it)."""
    path = path.resolve()
    home = spark_home()
    mode = _home_mode() if path == home else 0o700
    if home in path.parents:  # SPARK_HOME and every directory between it and `path`, first
        private_directory(path.parent, tighten=tighten)
    existed = path.is_dir()
    path.mkdir(mode=mode, parents=True, exist_ok=True)  # mkdir's mode is reduced by the umask: set it below
    status = path.stat()
    if (tighten or not existed) and status.st_uid == os.getuid() and status.st_mode & 0o777 != mode:
        path.chmod(mode)
    return path


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES_SCHEME_RE = re.compile(r"^postgres(?:ql)?(?:\+\w+)?$")
#: connection parameters that are secrets: never shown, always masked
_SECRET_PARAMETERS = ("password", "sslpassword")
#: seconds a connection attempt may take when the URL does not say (libpq's default is to wait for ever)
CONNECT_TIMEOUT_SECONDS = 10


def _parse(url: str | URL) -> URL:
    """Any connection string libpq accepts (or a SQLAlchemy URL) as a SQLAlchemy psycopg 3 URL, or DatabaseUnavailable
    saying what is wrong without quoting the value (it may hold a password)."""
    value = url.render_as_string(hide_password=False) if isinstance(url, URL) else url.strip()
    scheme = _SCHEME_RE.match(value)
    if scheme:
        if not _POSTGRES_SCHEME_RE.fullmatch(scheme.group(1)):
            raise DatabaseUnavailable(
                f"DATABASE_URL must be a PostgreSQL URL (postgresql://...), not {scheme.group(1)}://"
            )
        authority = value[scheme.end():].split("?", 1)[0]
        if authority.count("@") > 1:  # libpq takes the first '@': the rest of the password would become the host
            raise DatabaseUnavailable(
                "DATABASE_URL has an unescaped '@' in its user name or password: percent-encode it as %40"
            )
    try:
        if isinstance(url, URL) or (scheme and "+" in scheme.group(1)):
            # SQLAlchemy's own spelling (postgresql+psycopg://, what normalize_url returns): its parser, which
            # quotes a little differently from libpq (a space in a query value is '+')
            raw = _sqlalchemy_parameters(url if isinstance(url, URL) else make_url(value))
        else:
            raw = _connection_parameters(value, is_url=bool(scheme))
        params = {k: str(v) for k, v in raw.items()}
    except Exception:  # noqa: BLE001 - the parsers' messages quote the value, which may hold the password
        raise DatabaseUnavailable(
            "DATABASE_URL is not a valid URL: expected postgresql://user:password@host:port/database "
            "(or libpq's key=value form)"
        ) from None
    ports = params.pop("port", None)
    if ports is not None and not all(p.isdigit() for p in ports.split(",") if p):
        raise DatabaseUnavailable("DATABASE_URL is not a valid URL: its port is not a number")
    host = params.pop("host", None)
    single_host = host is not None and "," not in host and not host.startswith("/")
    port = int(ports) if single_host and ports and "," not in ports else None
    if not single_host:  # sockets and multi-host lists go to psycopg as query parameters, as libpq takes them
        params.update({k: v for k, v in (("host", host), ("port", ports)) if v is not None})
    elif ports and port is None:
        params["port"] = ports
    return URL.create(
        "postgresql+psycopg",
        username=params.pop("user", None),
        password=params.pop("password", None),
        host=host if single_host else None,
        port=port,
        database=params.pop("dbname", None),
        query=params,
    )


def _connection_parameters(value: str, *, is_url: bool) -> dict:
    """libpq's parameters (user, password, host, port, dbname, ...) of a connection string."""
    try:
        return conninfo_to_dict(value)  # libpq's own parser: URLs, key=value strings, percent-decoding
    except Exception:  # noqa: BLE001
        if not is_url:
            raise
    # libpq refuses a URL holding a raw space (a socket directory under a path with spaces, as pgserver writes it);
    # SQLAlchemy's parser takes it
    return _sqlalchemy_parameters(make_url(value))


def _sqlalchemy_parameters(parsed: URL) -> dict:
    found = {"user": parsed.username, "password": parsed.password, "host": parsed.host, "dbname": parsed.database}
    params = {k: v for k, v in found.items() if v is not None}
    params.update({k: (",".join(v) if isinstance(v, tuple) else v) for k, v in parsed.query.items()})
    if parsed.port is not None:
        params["port"] = parsed.port
    return params


def describe_url(url: str | URL) -> str:
    """The URL with any password masked: the only form in which a database URL is logged or shown."""
    try:
        parsed = _parse(url)
    except DatabaseUnavailable:  # an unparsable URL is shown as nothing rather than risk leaking it
        return "<unparsable database URL>"
    masked = {k: ("***" if k in _SECRET_PARAMETERS else v) for k, v in parsed.query.items()}
    return parsed.set(query=masked).render_as_string(hide_password=True)


def mask_secrets(text: str, url: str | URL | None) -> str:
    """`text` (a driver's error, say) with every form of the password in `url` replaced by ***: as written, percent-
    decoded and re-encoded, so no part of it survives however the server or libpq quotes it back."""
    if url is None:
        return text
    raw = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    secrets: set[str] = set()
    try:
        parsed = _parse(raw)
    except DatabaseUnavailable:
        parsed = None
    if parsed is not None:
        secrets.update(v for k, v in parsed.query.items() if k in _SECRET_PARAMETERS)
        if parsed.password:
            secrets.add(parsed.password)
    scheme = _SCHEME_RE.match(raw)
    if scheme:  # the user info as written, in case it was parsed otherwise than meant
        userinfo = raw[scheme.end():].split("?", 1)[0].rpartition("@")[0]
        if ":" in userinfo:
            secrets.add(userinfo.split(":", 1)[1])
    for match in re.finditer(r"(?:^|[?&\s])(?:ssl)?password=('(?:[^'\\]|\\.)*'|[^&\s]*)", raw):
        secrets.add(match.group(1).strip("'"))
    secrets |= {unquote(s) for s in secrets} | {quote(s, safe="") for s in secrets}
    # and its pieces between URL delimiters: a URL parsed otherwise than meant puts them in host or database names
    secrets |= {piece for s in list(secrets) for piece in re.split(r"[@#:/?&]", unquote(s)) if len(piece) >= 4}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def connection_failure(exc: BaseException, url: str | URL | None) -> DatabaseUnavailable:
    """`exc` (SQLAlchemy's OperationalError around psycopg's) as one line naming the server, password masked."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    reason = mask_secrets(lines[0].removeprefix("connection failed: ") if lines else "connection failed", url)
    where = describe_url(url) if url is not None else "the database"
    return DatabaseUnavailable(f"cannot connect to {where}: {reason}")


def normalize_url(url: str) -> str:
    """Any postgres URL (postgres://, postgresql://, postgresql+psycopg2://, key=value) as SQLAlchemy psycopg 3 URL."""
    return _parse(url).render_as_string(hide_password=False)


def embedded_url(home: Path | None = None) -> str:
    """Start (or join) the embedded server under `home`, create the `spark` database, and return its URL."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells)
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = (home or spark_home()) / "pgdata"
    with _lock:
        server = _embedded_servers.get(pgdata)
        if server is None:
            # pgdata's own mode is initdb's (0700) and, as root, pgserver gives it to its 'pgserver' user: only its
            # parents are ours to keep private
            if pgdata.parent == spark_home():
                private_directory(pgdata.parent)
            pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
            _forget_dead_users(pgserver, pgdata)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = pgserver.get_server(pgdata, cleanup_mode="stop")
            if pgdata.parent == spark_home():
                # as root, pgserver opens every directory above pgdata to everyone (g+rx, o+rx) on each start so its
                # user can reach it; traversing is all it needs, so SPARK_HOME goes back to 0711
                private_directory(pgdata.parent)
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
    target = _parse(explicit) if explicit else make_url(embedded_url())
    # an unreachable host answers after the connect timeout, not after the operating system's (minutes)
    connect_args = {} if "connect_timeout" in target.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return sa.create_engine(target, pool_pre_ping=True, connect_args=connect_args)


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
        raise connection_failure(exc, engine.url) from None
    if missing:
        names = ", ".join(m.filename for m in missing)
        raise DatabaseUnavailable(
            f"the database at {describe_url(engine.url)} needs migrations {names}: run `spark db upgrade`"
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
        return describe_url(self.engine.url)
