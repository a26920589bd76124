"""The operator's day in the Dagster UI, in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright)
against `spark ui --sandbox` on loopback, after `spark demo`. The graph, the partitions, a site added from the CLI and
provisioned by the sensor, a partition materialized from the UI, and the metadata an operator reads.

Installs nothing at run time: skips, saying why, where /usr/bin/chromium or the playwright package is missing.
Screenshots go to a temporary directory, or to $SPARK_SCREENSHOTS_DIR (`make screenshots` sets docs/screenshots)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import REPO_ROOT
from .test_ui_sandbox import _env, _free_port, _spark, _wait_for

CHROMIUM = Path("/usr/bin/chromium")
SITE, CAMPAIGN = "demo-roofing.example", "demo-roofing.example/roof-repair-replacement"
WAIT_MS = 60_000  # every wait for the UI is bounded: a page, a dialog, a run's status


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: Chromium's own sandbox refuses to run as root (CI containers)
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shots():
    if os.environ.get("SPARK_SCREENSHOTS_DIR"):
        path = Path(os.environ["SPARK_SCREENSHOTS_DIR"])
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        path = Path(tempfile.mkdtemp(prefix="spark-shots-"))
        yield path
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ui_home():
    """`spark demo` in a fresh SPARK_HOME, then `spark ui --sandbox` on a free loopback port; stopped by SIGTERM."""
    root = Path(tempfile.mkdtemp(prefix="spark-ui-browser-"))  # outside pytest's 0700 root: pgserver's user reads it
    home, log = root / "spark", root / "ui.log"
    demo = subprocess.run([sys.executable, "-m", "spark_assets.ops.cli", "demo"], cwd=REPO_ROOT, env=_env(home),
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    port = _free_port()
    with log.open("w") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "spark_assets.ops.cli", "ui", "--sandbox", "-p", str(port)],
            cwd=REPO_ROOT, env=_env(home), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for(lambda: "Serving dagster-webserver" in log.read_text(), 120, "the webserver")
        yield home, f"http://127.0.0.1:{port}"
    finally:
        ui.send_signal(signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def _open(page, url: str, ready: str) -> None:
    """Go to a page and wait until `ready` (a text the page shows once its data has loaded) is visible."""
    page.goto(url)
    page.get_by_text(ready, exact=True).first.wait_for(timeout=WAIT_MS)


def _runs(page, url: str, *texts: str) -> int:
    """How many rows of the Runs page show every text (the run's partition, its asset, who launched it, `Success`)."""
    page.goto(url + "/runs")
    rows = page.locator("[data-index]")  # the runs table's rows (a virtualized list of divs, no ARIA roles)
    rows.first.wait_for(timeout=WAIT_MS)
    for text in texts:
        rows = rows.filter(has_text=text)
    return rows.count()


def _wait_for_run(page, url: str, *texts: str, timeout: float) -> None:
    """Reload the Runs page until a run shows every text."""
    def shown() -> bool:
        return _runs(page, url, *texts) > 0

    try:
        _wait_for(shown, timeout, "a run with " + ", ".join(texts))
    except AssertionError:
        rows = page.locator("[data-index]").all_inner_texts()[:5]
        raise AssertionError(f"no run with {texts} in {timeout:.0f} s; the newest runs: {rows}") from None


@pytest.mark.slow
def test_the_operators_day_in_the_ui(ui_home, browser, shots):
    home, url = ui_home
    started = time.monotonic()
    # first, as an operator would: a site from the CLI; new_sites_sensor provisions it while we look around
    _spark(home, "site", "add", "second.example", "--brand", "Second Roofing")

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)
    skip = page.get_by_role("button", name="Skip")  # Dagster's "join the community" dialog, on a first visit
    page.add_locator_handler(skip, lambda: skip.click())

    # the global lineage: the five groups, and with them expanded the assets from locations to the release and report
    _open(page, url + "/asset-groups", "Global asset lineage")
    for group in ("dimensions", "content", "provisioning", "sites", "analytics"):
        page.get_by_text(group, exact=True).first.wait_for()
    page.locator("body").click(button="right", position={"x": 900, "y": 750})  # the graph's background menu
    page.get_by_role("menuitem", name="Expand all groups").click()
    for node in ("locations", "campaign_blueprint", "avatars", "headlines", "articles", "article_quality",
                 "site_dns", "site_matomo", "published_batch", "site_build", "site_release",
                 "matomo_daily", "daily_analytics", "analytics_report"):
        page.get_by_text(node, exact=True).first.wait_for()
    page.wait_for_timeout(1000)  # the graph's layout settles
    page.screenshot(path=shots / "asset-graph.png")

    # partitions: the demo's campaign and site, materialized (the status filter counts them)
    _open(page, url + "/assets/articles?view=partitions", "Partitions")
    page.get_by_text(CAMPAIGN, exact=True).first.wait_for(state="attached")
    page.get_by_text("Materialized (1)").wait_for()
    _open(page, url + f"/assets/site_build?view=partitions&partition={SITE}", "Partitions")
    page.get_by_text("Materialized (1)").wait_for()
    page.get_by_text("home_page", exact=True).wait_for()  # the selected partition's metadata: the build's paths
    page.screenshot(path=shots / "site-partitions.png")

    # the quality gate's report: counts, the issues table, lineage to the build
    _open(page, url + "/assets/article_quality", "Latest materialization")
    for key in ("articles", "near_duplicate_rate", "articles_blocked", "publishable", "auto_published"):
        page.get_by_role("row").filter(has=page.get_by_text(key, exact=True)).first.wait_for()
    assert "288" in page.get_by_role("row").filter(has=page.get_by_text("auto_published", exact=True)).inner_text()
    page.get_by_text("similar_content", exact=True).wait_for()  # the issues table: the demo's one warning
    page.get_by_text("Key", exact=True).first.evaluate("header => header.scrollIntoView({block: 'start'})")
    page.screenshot(path=shots / "quality-report.png")

    # the build and the release: where the site is, and its live link
    _open(page, url + "/assets/site_build", "Latest materialization")
    for key in ("articles", "hubs", "manifest", "home_page"):
        page.get_by_text(key, exact=True).first.wait_for()
    assert "/builds/demo-roofing.example/site/index.html" in page.inner_text("body")
    _open(page, url + "/assets/site_release", "Latest materialization")
    page.get_by_text("live_url", exact=True).wait_for()

    # the analytics report's traffic chart, inline in its metadata
    _open(page, url + "/assets/analytics_report", "Latest materialization")
    for key in ("visits_28d", "clicks_28d", "chart_traffic"):
        page.get_by_text(key, exact=True).first.wait_for()
    page.get_by_role("row").filter(has=page.get_by_text("traffic_chart", exact=True)).get_by_text("Show Markdown").click()
    chart = page.get_by_role("dialog").locator("img[src^='data:image/png;base64,']")
    chart.wait_for()
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 500
    page.screenshot(path=shots / "analytics-report.png")
    page.get_by_role("button", name="Close").click()

    # from the UI: Materialize one partition of a site asset, launch it, see it succeed
    _open(page, url + "/assets/site_matomo", "Latest materialization")
    page.get_by_role("button", name="Materialize…").click()
    page.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill(SITE)
    page.get_by_role("menuitem", name=SITE).click()
    page.get_by_text("Launch runs to materialize site_matomo").click()  # closes the partition list
    page.get_by_role("button", name="Launch 1 run").click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    run_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group()  # the toast names the new run
    _wait_for_run(page, url, run_id, f"partition: {SITE}", "site_matomo", "Success", timeout=120)

    # the site added from the CLI at the start: the sensor's run, in the Runs page, succeeded
    _wait_for_run(page, url, "partition: second.example", "new_sites_sensor", "Success", timeout=180)
    row = _spark(home, "site", "list")
    assert re.search(r"^second\.example\s+Second\s+Roofing\s+active\s+active", row, re.MULTILINE), row
    assert time.monotonic() - started < 360, "the browser part took more than 6 minutes"
