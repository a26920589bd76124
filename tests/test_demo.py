"""`spark demo` as a newcomer runs it: a fresh SPARK_HOME, no DATABASE_URL, no Postgres installed; twice."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from dagster import AssetKey, DagsterInstance

from .conftest import REPO_ROOT

KEY = "demo-roofing.example/roof-repair-replacement"


def _spark(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME")}
    env["SPARK_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "spark_assets.ops.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _servers_on(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture
def home():
    """A fresh SPARK_HOME outside pytest's 0700 temp root (the embedded server runs as the 'pgserver' user)."""
    path = Path(tempfile.mkdtemp(prefix="spark-demo-"))
    yield path / "spark"
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_demo_runs_the_factory_from_nothing_and_again(home):
    first = _spark(["demo"], home)

    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "13 migration(s) applied" in out
    assert "site demo-roofing.example registered; campaign created" in out
    steps = [line.split()[3] for line in out.splitlines() if line.startswith("-> materialize")]
    assert steps == [
        # published_batch: the demo site has no daily quota, so its batch publishes nothing (it auto-publishes)
        "avatars", "campaign_blueprint", "locations", "published_batch", "site_dns", "site_matomo", "campaign_geo",
        "site_search_console",
        "cartesian_permutations", "headlines", "articles", "article_quality", "site_build", "site_release",
    ]  # fmt: skip
    # provisioned against the local Cloudflare, Namecheap, Google and Matomo simulators
    assert "DNS active, Matomo site 1 (active), Search Console verified" in out
    assert "FAILED" not in out and "did not pass" not in out
    assert "content_fragments    21" in out
    assert "articles             288" in out  # 12 cities x 6 personas x 4 patterns
    assert "articles_published   288" in out  # the demo campaign auto-publishes what passes every check
    assert "Traceback" not in first.stderr
    # four weeks of analytics from the Matomo and Search Console simulators, in one run, and the report's charts
    assert "-> analytics: the last 28 days from the Matomo and Search Console simulators" in out
    assert re.search(r"Analytics: \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d in 1 run\(s\)", out), out
    for chart in ("traffic.png", "sites.png", "position.png"):
        assert (home / "reports" / "analytics" / chart).read_bytes().startswith(b"\x89PNG")

    instance = DagsterInstance.from_config(str(home / "dagster"))
    try:
        assert instance.get_dynamic_partitions("campaign") == [KEY]
        assert instance.get_dynamic_partitions("site") == ["demo-roofing.example"]
        # the repository's local dagster.yaml reached the demo's instance: at most two runs at once, not Dagster's default
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
        for name in ("campaign_blueprint", "articles", "article_quality"):
            event = instance.get_latest_materialization_event(AssetKey(name))
            assert event is not None and event.dagster_event.partition == KEY
    finally:
        instance.dispose()
    assert _servers_on(home / "pgdata") == [], "the embedded server stops with the last process using it"

    second = _spark(["demo"], home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 migration(s) applied" in second.stdout
    assert "already registered; campaign unchanged" in second.stdout
    assert "content_fragments    21" in second.stdout  # converged, nothing duplicated
    assert "articles             288" in second.stdout
    assert "new=0, changed=0, unchanged=288" in second.stdout
    # the site was built the first time (288 articles, their hubs, the demo's pages) and nothing changed since
    assert "Built the site: " in out
    # nothing changed: nothing written, nothing uploaded (the pages name the sandbox's Matomo at a fixed address)
    assert re.search(r"Built the site: \d+ files \(0 written,", second.stdout), second.stdout
    assert re.search(r"Released it: \S+ \(\d+ object\(s\) uploaded, 0 already stored\)", out), out
    assert "(already live, nothing uploaded)" in second.stdout
    assert "Open it: `spark site serve demo-roofing.example` (what a visitor sees)" in out

    listing = _spark(["site", "list"], home)
    assert listing.returncode == 0 and "demo-roofing.example" in listing.stdout

    # the report an operator reads next: 28 days of the demo site, its pages with impressions among those published
    report = _spark(["analytics", "report", "--site", "demo-roofing.example"], home)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "# Analytics for demo-roofing.example, through " in report.stdout
    assert re.search(r"Pages with at least one impression in the last 28 days: \d+ of 288 published", report.stdout)


@pytest.mark.slow
def test_a_killed_user_does_not_keep_the_embedded_server_running(home, monkeypatch):
    """pgserver stops the server when its last user exits; a user killed with SIGKILL must not count for ever."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"SPARK_HOME": str(home)}
    code = "from spark_resources.database import get_engine; import time; get_engine(); print('up', flush=True); time.sleep(120)"
    user = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert user.stdout.readline().strip() == "up"
    user.kill()
    user.wait()
    assert _servers_on(home / "pgdata"), "the killed user left the server running"

    from spark_resources.database import get_engine, stop_embedded_servers

    monkeypatch.setenv("SPARK_HOME", str(home))
    get_engine()  # joins the running server, and forgets the dead user
    stop_embedded_servers()  # the last live user leaves: the server stops
    deadline = time.monotonic() + 15
    while _servers_on(home / "pgdata") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_on(home / "pgdata") == []
