"""Test fixtures on a real PostgreSQL.

The server is the embedded one (pgserver) started once per test session in a temporary directory, or, when
SPARK_TEST_DATABASE_URL is set, that server (any PostgreSQL 13+; the URL must allow CREATE DATABASE). Each test that needs
the database gets a database of its own, created empty or migrated, and dropped afterwards.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from spark_resources import migrations
from spark_resources.database import DatabaseResource, dispose_engines, normalize_url

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_BLUEPRINT = REPO_ROOT / "examples" / "demo-roofing.yaml"


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """URL of the `postgres` database on the test server."""
    external = os.environ.get("SPARK_TEST_DATABASE_URL")
    if external:
        yield normalize_url(external)
        return
    # Outside pytest's rotating temp dirs (a concurrent pytest run may delete those), removed when the session ends.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="spark-test-pg-"), cleanup_mode="delete")
    yield normalize_url(server.get_uri())
    dispose_engines()
    server.cleanup()


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's DATABASE_URL, SPARK_HOME or DAGSTER_HOME."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "spark_home"))
    yield
    dispose_engines()


def _create_database(admin_url: str, template: str | None = None) -> str:
    name = f"spark_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_template(admin_url: str) -> Iterator[str]:
    """A database migrated once per session, copied (CREATE DATABASE ... TEMPLATE) for each test that needs one."""
    url = _create_database(admin_url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    migrations.upgrade(engine)
    engine.dispose()
    yield make_url(url).database
    _drop_database(admin_url, url)


def _drop_database(admin_url: str, url: str) -> None:
    dispose_engines()
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    engine.dispose()


@pytest.fixture
def empty_database_url(admin_url: str) -> Iterator[str]:
    """A new database with nothing in it."""
    url = _create_database(admin_url)
    yield url
    _drop_database(admin_url, url)


@pytest.fixture
def database_url(admin_url: str, migrated_template: str) -> Iterator[str]:
    """A new database with every migration applied."""
    url = _create_database(admin_url, template=migrated_template)
    yield url
    _drop_database(admin_url, url)


@pytest.fixture
def database(database_url: str) -> DatabaseResource:
    return DatabaseResource(url=database_url)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.engine.Engine]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def database_snapshot(engine: sa.engine.Engine) -> dict[str, tuple[int, str]]:
    """(row count, digest of every row) per table: tests compare it before and after to prove nothing was written."""
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
        ).scalars().all()
        return {
            t: tuple(
                conn.execute(
                    sa.text(f'''SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), ''))
                                FROM "{t}" r''')
                ).one()
            )
            for t in tables
        }


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server on loopback (moto's server mode), spoken to over HTTP by the same boto3 code as R2."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
