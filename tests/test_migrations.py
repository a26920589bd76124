"""The schema on a real PostgreSQL: migrations from empty, re-applied, failing, edited, concurrent; tables, constraints and
indexes as the design asks; the embedded default and a server given by DATABASE_URL."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from spark_assets.ops.cli import main
from spark_resources import migrations
from spark_resources.database import DatabaseUnavailable, describe_url, get_engine, spark_home, stop_embedded_servers

# Every table of DATABASE_SCHEMA.md and the Website Factory design, plus what the factory adds.
DESIGN_TABLES = {
    # batch 1, foundation
    "sites", "campaign_masters", "avatar_intelligence", "avatar_variants", "cartesian_patterns", "geo_intelligence",
    "offer_blocks",
    # batch 2, walls
    "generated_articles", "generation_jobs", "pages", "posts", "leads", "headline_inventory", "content_fragments",
    # batch 3, roof
    "link_targets", "globals", "navigation", "work_log", "hub_pages", "forms", "form_submissions", "site_analytics",
    "events", "pageviews", "conversions", "locations_states", "locations_counties", "locations_cities",
    # Website Factory
    "cloudflare_accounts", "gsc_accounts", "daily_analytics",
    # the factory's own
    "cartesian_permutations", "site_builds", "site_deployments", "campaign_quality", "provider_calls", "drip_batches",
    "matomo_daily", "search_console_daily", "search_console_queries",
}  # fmt: skip


def _engine(url: str) -> sa.engine.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _tables(engine: sa.engine.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars()
        )


def test_migrations_from_empty_then_reapplied_as_no_op(empty_database_url):
    engine = _engine(empty_database_url)
    files = migrations.discover()
    assert [m.filename for m in files] == [
        "0001_foundation.sql", "0002_walls.sql", "0003_roof.sql", "0004_factory.sql", "0005_content.sql",
        "0006_provisioning.sql", "0007_provider_calls.sql", "0008_site_scoped_avatars.sql",
        "0009_place_coordinates.sql", "0010_site_builds.sql", "0011_site_releases.sql", "0012_publishing_quota.sql",
        "0013_analytics.sql",
    ]  # fmt: skip

    applied = migrations.upgrade(engine)

    assert [m.version for m in applied] == [m.version for m in files]
    assert _tables(engine) == DESIGN_TABLES | {migrations.MIGRATIONS_TABLE}
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT version, checksum FROM spark_schema_migrations ORDER BY 1")).all()
    assert recorded == [(m.version, m.checksum) for m in files]
    assert migrations.upgrade(engine) == []
    assert migrations.pending(engine) == []


def test_sites_carry_the_website_factory_columns(engine):
    with engine.connect() as conn:
        columns = set(
            conn.execute(sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'sites'")).scalars()
        )
        pk = conn.execute(
            sa.text(
                """SELECT array_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                   WHERE i.indrelid = 'daily_analytics'::regclass AND i.indisprimary"""
            )
        ).scalar_one()
    assert {
        "domain", "brand_name", "cloudflare_account_id", "gsc_account_id", "status_dns", "status_hosting",
        "status_content", "status_deployment", "matomo_site_id", "gsc_verification_status", "error_message",
        "name", "url", "status",
    } <= columns  # fmt: skip
    assert pk == ["date", "site_id"]


def test_every_foreign_key_status_and_slug_column_is_indexed(engine):
    with engine.connect() as conn:
        # (table, column) pairs that lead some index
        indexed = set(
            conn.execute(
                sa.text(
                    """SELECT c.relname, a.attname FROM pg_index i
                       JOIN pg_class c ON c.oid = i.indrelid
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"""
                )
            ).all()
        )
        fk_columns = set(
            conn.execute(
                sa.text(
                    """SELECT c.relname, a.attname FROM pg_constraint k
                       JOIN pg_class c ON c.oid = k.conrelid
                       JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE k.contype = 'f' AND n.nspname = current_schema()"""
                )
            ).all()
        )
        status_and_slug = set(
            conn.execute(
                sa.text(
                    """SELECT table_name, column_name FROM information_schema.columns
                       WHERE table_schema = current_schema() AND (column_name LIKE 'status%' OR column_name = 'slug'
                             OR column_name = 'gsc_verification_status')"""
                )
            ).all()
        )
    assert len(fk_columns) > 40
    assert fk_columns - indexed == set()
    assert status_and_slug - indexed == set()


def test_status_columns_only_accept_their_values(engine):
    with engine.connect() as conn:
        checked = conn.execute(
            sa.text(
                """SELECT count(*) FROM information_schema.columns col
                   WHERE col.table_schema = current_schema() AND col.column_name LIKE 'status%'
                     AND NOT EXISTS (SELECT 1 FROM information_schema.constraint_column_usage u
                                     JOIN information_schema.check_constraints cc
                                       ON cc.constraint_name = u.constraint_name
                                     WHERE u.table_name = col.table_name AND u.column_name = col.column_name)"""
            )
        ).scalar_one()
    # work_log.status is free text in the design (a status message); every other status column is constrained
    assert checked == 1
    with pytest.raises(sa.exc.IntegrityError, match="sites_status_dns_check"):
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO sites (domain, name, status_dns) VALUES ('a.example', 'a', 'done')"))


@pytest.mark.parametrize("domain", ["Upper.example", "no-tld", "bad_underscore.example", "-lead.example", "x.123"])
def test_the_database_refuses_an_invalid_domain_even_past_the_application(engine, domain):
    with pytest.raises(sa.exc.IntegrityError, match="sites_domain_check"):
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO sites (domain, name) VALUES (:d, 'x')"), {"d": domain})


def test_integrity_rules_between_tables(engine):
    with engine.begin() as conn:
        site = conn.execute(sa.text("INSERT INTO sites (domain, name) VALUES ('a.example', 'a') RETURNING id")).scalar()
        conn.execute(
            sa.text(
                """INSERT INTO daily_analytics (date, site_id, matomo_visits) VALUES ('2026-11-01', :s, 3)"""
            ),
            {"s": site},
        )
    with pytest.raises(sa.exc.IntegrityError, match="daily_analytics_pkey"):
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO daily_analytics (date, site_id) VALUES ('2026-11-01', :s)"), {"s": site})
    with pytest.raises(sa.exc.IntegrityError, match="generated_articles_published_flag"):
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    """INSERT INTO generated_articles (site_id, title, content, slug, status, is_published)
                       VALUES (:s, 't', 'c', 'a-slug', 'published', false)"""
                ),
                {"s": site},
            )
    with engine.begin() as conn:  # deleting a site removes what hangs off it
        conn.execute(sa.text("DELETE FROM sites WHERE id = :s"), {"s": site})
        assert conn.execute(sa.text("SELECT count(*) FROM daily_analytics")).scalar_one() == 0


def test_date_updated_is_maintained_by_the_database(engine):
    with engine.begin() as conn:
        before = conn.execute(
            sa.text("INSERT INTO sites (domain, name) VALUES ('a.example', 'a') RETURNING date_updated")
        ).scalar_one()
    with engine.begin() as conn:
        after = conn.execute(
            sa.text("UPDATE sites SET brand_name = 'A' WHERE domain = 'a.example' RETURNING date_updated")
        ).scalar_one()
    assert after > before


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


def test_a_failing_migration_is_rolled_back_and_named(empty_database_url, tmp_path):
    _write(tmp_path, "0001_one.sql", "CREATE TABLE one (id int);")
    _write(tmp_path, "0002_two.sql", "CREATE TABLE two (id int);\nINSERT INTO two VALUES ('not a number');")
    engine = _engine(empty_database_url)

    with pytest.raises(migrations.MigrationError, match=r"0002_two\.sql failed and was rolled back: .*integer"):
        migrations.upgrade(engine, migrations.discover(tmp_path))

    assert _tables(engine) == {"one", migrations.MIGRATIONS_TABLE}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM spark_schema_migrations")).scalars().all() == [1]


def test_an_applied_migration_that_was_edited_is_refused(empty_database_url, tmp_path):
    _write(tmp_path, "0001_one.sql", "CREATE TABLE one (id int);")
    engine = _engine(empty_database_url)
    migrations.upgrade(engine, migrations.discover(tmp_path))
    _write(tmp_path, "0001_one.sql", "CREATE TABLE one (id bigint);")

    with pytest.raises(migrations.MigrationError, match="0001_one.sql was changed after it was applied"):
        migrations.upgrade(engine, migrations.discover(tmp_path))


def test_a_database_newer_than_the_code_is_refused(empty_database_url, tmp_path):
    _write(tmp_path, "0001_one.sql", "SELECT 1;")
    _write(tmp_path, "0002_two.sql", "SELECT 2;")
    engine = _engine(empty_database_url)
    migrations.upgrade(engine, migrations.discover(tmp_path))
    (tmp_path / "0002_two.sql").unlink()

    with pytest.raises(migrations.MigrationError, match="0002_two that this code does not know"):
        migrations.pending(engine, migrations.discover(tmp_path))


def test_badly_named_migration_files_are_refused(tmp_path):
    _write(tmp_path, "1_first.sql", "SELECT 1;")
    with pytest.raises(migrations.MigrationError, match="NNNN_lower_case_name.sql"):
        migrations.discover(tmp_path)


def test_concurrent_upgrades_apply_each_migration_once(empty_database_url):
    engine = sa.create_engine(empty_database_url, pool_size=4)
    results: list[list[migrations.Migration]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrations.upgrade(engine))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()

    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, len(migrations.discover())]


def test_db_upgrade_on_a_server_given_by_database_url(empty_database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    runner = CliRunner()

    # a server that is behind is refused with the command that fixes it, not used half-migrated
    with pytest.raises(DatabaseUnavailable, match="run `spark db upgrade`"):
        get_engine()
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "applied 0007_provider_calls.sql" in result.output
    again = runner.invoke(main, ["db", "upgrade"])
    assert again.exit_code == 0 and f"schema is current ({len(migrations.discover())} migrations)" in again.output

    engine = get_engine()
    assert _tables(engine) >= DESIGN_TABLES
    assert not (spark_home() / "pgdata").exists(), "DATABASE_URL must not start the embedded server"
    status = runner.invoke(main, ["db", "status"])
    assert status.exit_code == 0 and "PENDING" not in status.output


@pytest.mark.slow
def test_embedded_default_starts_and_migrates_itself(monkeypatch):
    """With DATABASE_URL unset (the fixture unsets it), the first connection starts pgserver under SPARK_HOME."""
    home = Path(tempfile.mkdtemp(prefix="spark-home-"))  # outside pytest's 0700 temp root: the server runs as 'pgserver'
    monkeypatch.setenv("SPARK_HOME", str(home))
    try:
        engine = get_engine()
        assert (home / "pgdata" / "PG_VERSION").exists()
        assert engine.url.database == "spark"
        assert migrations.pending(engine) == []
        assert _tables(engine) >= DESIGN_TABLES
        assert get_engine() is engine  # one engine per process
    finally:
        stop_embedded_servers()
        shutil.rmtree(home, ignore_errors=True)


def test_urls_are_only_shown_with_the_password_masked(monkeypatch):
    secret_url = "postgresql://spark:hunter2-secret@127.0.0.1:1/spark"
    assert "hunter2-secret" not in describe_url(secret_url)
    monkeypatch.setenv("DATABASE_URL", secret_url)

    with pytest.raises(DatabaseUnavailable) as caught:
        get_engine()

    assert "hunter2-secret" not in str(caught.value)
    assert "cannot connect to postgresql+psycopg://spark:***@127.0.0.1:1/spark" in str(caught.value)
    result = CliRunner().invoke(main, ["site", "list"])
    assert result.exit_code == 1
    assert "hunter2-secret" not in result.output


def test_psycopg_is_the_driver(engine):
    with engine.connect() as conn:
        assert isinstance(conn.connection.dbapi_connection, psycopg.Connection)
