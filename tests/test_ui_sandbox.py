"""`spark ui --sandbox` as an operator uses it: the UI with its daemon, a site added from the CLI, provisioned by the
sensor's run against the simulators; then a SIGTERM stops everything and the sandbox accounts go back to disabled."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import REPO_ROOT


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME")}
    return env | {"SPARK_HOME": str(home)}


def _spark(home: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "spark_assets.ops.cli", *args], cwd=REPO_ROOT, env=_env(home),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_site_added_under_the_sandbox_ui_is_provisioned_by_the_sensor():
    root = Path(tempfile.mkdtemp(prefix="spark-ui-"))
    home, log = root / "spark", root / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "spark_assets.ops.cli", "ui", "--sandbox", "-p", str(_free_port())],
            cwd=REPO_ROOT, env=_env(home), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for(lambda: "Serving dagster-webserver" in log.read_text(), 120, "the webserver")
        assert "sandbox: Cloudflare, Namecheap, Google and Matomo answer from local simulators" in log.read_text()
        assert "pool namecheap: at most 1 step(s) at once" in log.read_text()
        _spark(home, "site", "add", "sensor-test.example", "--brand", "Sensor Test")

        def provisioned() -> bool:
            row = _spark(home, "site", "list").splitlines()[1].split()
            return row[:7] == ["sensor-test.example", "Sensor", "Test", "active", "active", "active", "pending"]

        _wait_for(provisioned, 180, "new_sites_sensor's run to provision DNS and Matomo")
        assert "sandbox   " in _spark(home, "account", "list") and " active " in _spark(home, "account", "list")
    finally:
        ui.send_signal(signal.SIGTERM)
        try:
            code = ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            raise
    try:
        text = log.read_text()
        assert "Dagster services shut down." in text, text[-2000:]
        assert code == 0 and "Traceback" not in text
        accounts = _spark(home, "account", "list")
        assert " active " not in accounts and accounts.count("disabled") == 2  # the sandbox's, back to disabled
    finally:
        shutil.rmtree(root, ignore_errors=True)
