"""Local state under $SPARK_HOME (the key file, the embedded database, Dagster's event log and compute logs) is readable
by its owner only, and the embedded server still starts when it runs as another user (root runs it as 'pgserver')."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from spark_assets.ops.local_instance import dagster_home, prepare_dagster_home
from spark_resources import secrets
from spark_resources.database import get_engine, private_directory, spark_home, stop_embedded_servers

# as root, others may pass through SPARK_HOME (not list it) so the 'pgserver' user reaches pgdata
HOME_MODE = 0o711 if os.geteuid() == 0 else 0o700


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_dagster_home_and_spark_home_are_private():
    previous = os.umask(0o022)  # the usual umask, which gave 0755 before
    try:
        home = prepare_dagster_home(dagster_home())
    finally:
        os.umask(previous)

    assert home == spark_home() / "dagster"
    assert _mode(home) == 0o700
    assert _mode(spark_home()) == HOME_MODE


def test_the_key_file_is_private_and_so_is_its_directory():
    secrets.encrypt("token")
    assert _mode(spark_home() / "fernet.key") == 0o600
    assert _mode(spark_home()) == HOME_MODE


def test_an_existing_world_readable_spark_home_is_tightened():
    spark_home().mkdir(mode=0o755)
    os.chmod(spark_home(), 0o755)
    (spark_home() / "dagster").mkdir(mode=0o755)
    os.chmod(spark_home() / "dagster", 0o755)

    prepare_dagster_home(dagster_home())

    assert _mode(spark_home()) == HOME_MODE
    assert _mode(spark_home() / "dagster") == 0o700


def test_a_dagster_home_the_operator_chose_keeps_its_mode(monkeypatch, tmp_path):
    chosen = tmp_path / "shared-dagster"
    chosen.mkdir()
    os.chmod(chosen, 0o750)
    monkeypatch.setenv("DAGSTER_HOME", str(chosen))

    assert prepare_dagster_home(dagster_home()) == chosen
    assert _mode(chosen) == 0o750


def test_new_directories_under_spark_home_are_private():
    reports = private_directory(spark_home() / "builds" / "reports")
    assert _mode(reports) == _mode(reports.parent) == 0o700
    assert _mode(spark_home()) == HOME_MODE


@pytest.mark.slow
def test_the_embedded_server_starts_under_a_private_spark_home(monkeypatch):
    """As root pgserver runs PostgreSQL as 'pgserver' and opens SPARK_HOME to everyone while it starts; SPARK_HOME is
    private again once it runs, and the server (running as another user) still serves."""
    home = Path(tempfile.mkdtemp(prefix="spark-home-"))  # outside pytest's 0700 temp root: the server may run as
    # 'pgserver', which could not pass through it
    os.chmod(home, 0o755)
    monkeypatch.setenv("SPARK_HOME", str(home))
    try:
        engine = get_engine()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
        assert _mode(home) == HOME_MODE
        assert _mode(home / "pgdata") == 0o700  # initdb's own
    finally:
        stop_embedded_servers()
        shutil.rmtree(home, ignore_errors=True)
