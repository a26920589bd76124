"""Daily analytics through real Dagster runs, real PostgreSQL and the Matomo and Search Console simulators over HTTP:
exact rows, empty days, idempotent re-runs, provisional numbers settling as final, one failing site among others, the
schedule's run, the freshness check, history from a site's first publishing day, backfills in bounded runs, the report.

"Today" is pinned: the simulators' `today`, and the assets' clock (`utc_now`) moved with it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, build_schedule_context, instance_for_test, materialize
from PIL import Image

from spark_assets.assets import analytics as analytics_assets
from spark_assets.automation.schedules import analytics_range_tags, analytics_schedule
from spark_assets.definitions import all_assets, defs
from spark_assets.ops import analytics_ops
from spark_assets.ops.sandbox import GOOGLE_ACCOUNT, MATOMO_TOKEN, Sandbox
from spark_assets.records.accounts import assign_accounts
from spark_assets.records.registry import add_site
from spark_resources.providers.matomo import MatomoClient
from spark_resources.simulators.google import provisional_traffic, traffic

FERNET_KEY = "ZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmQ="
TODAY = date(2026, 11, 20)
SOURCES = ["matomo_daily", "search_console_daily", "daily_analytics"]


class Clock:
    """The day the simulators and the assets agree is today; the assets' clock reads 07:00 UTC of it."""

    def __init__(self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, today: date):
        self.sandbox, self.today = sandbox, today
        sandbox.matomo.today = lambda: self.today
        sandbox.google.today = lambda: self.today
        monkeypatch.setattr(analytics_assets, "utc_now", lambda: datetime.combine(self.today, time(7), timezone.utc))

    def set(self, today: date) -> None:
        self.today = today


@pytest.fixture
def world(engine, database, monkeypatch):
    monkeypatch.setenv("SPARK_FERNET_KEY", FERNET_KEY)
    with Sandbox() as sandbox:
        sandbox.register_accounts(engine)
        clock = Clock(sandbox, monkeypatch, TODAY)
        with instance_for_test() as instance:
            yield World(sandbox, engine, database, instance, clock)


class World:
    def __init__(self, sandbox, engine, database, instance, clock):
        self.sandbox, self.engine, self.database, self.instance, self.clock = sandbox, engine, database, instance, clock
        self.matomo_ids: dict[str, int] = {}

    def add(self, domain: str, launched: date, *, tz: str = "UTC", matomo: bool = True, gsc: bool = True) -> None:
        """A provisioned site that went live on `launched`."""
        with self.engine.begin() as conn:
            site, _ = add_site(conn, domain, timezone=tz, launched_on=launched)
            if gsc:
                assign_accounts(conn, site, gsc=GOOGLE_ACCOUNT)
                conn.execute(sa.text("UPDATE sites SET gsc_verification_status = 'verified' WHERE id = :s"),
                             {"s": site.id})
                self.sandbox.google.properties[GOOGLE_ACCOUNT].add(f"sc-domain:{domain}")
            if matomo:
                client = MatomoClient(self.sandbox.matomo.base_url, MATOMO_TOKEN)
                matomo_id, _ = client.ensure_site(domain, f"https://{domain}")
                client.close()
                self.matomo_ids[domain] = matomo_id
                conn.execute(sa.text("UPDATE sites SET matomo_site_id = :m WHERE id = :s"),
                             {"m": matomo_id, "s": site.id})

    def run(self, first: date, last: date, *, site: str | None = None, selection=SOURCES, raise_on_error=True):
        tags = analytics_range_tags(first, last) | ({analytics_assets.SITES_TAG: site} if site else {})
        return materialize([*all_assets, analytics_assets.analytics_fresh], selection=selection,
                           instance=self.instance, resources=self.resources(), tags=tags,
                           raise_on_error=raise_on_error)

    def resources(self) -> dict:
        return {**defs.resources, **self.sandbox.resources(max_wait_seconds=0.05), "database": self.database}

    def rows(self, table: str, columns: str) -> dict:
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(
                f"SELECT s.domain, t.day, {columns} FROM {table} t JOIN sites s ON s.id = t.site_id ORDER BY 1, 2"))
            return {(r[0], r[1]): tuple(r[2:]) for r in result}

    def site(self, domain: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT * FROM sites WHERE domain = :d"), {"d": domain}).one()


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _metadata(result, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {key: entry.value for key, entry in events[0].materialization.metadata.items()}


def _checks(result) -> dict:
    return {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}


def _expected_matomo(world: World, domain: str, day: date) -> tuple:
    report = world.sandbox.matomo.day_report(world.matomo_ids[domain], day) or {}
    visits = report.get("nb_visits", 0)
    return (visits, report.get("nb_uniq_visitors", 0), report.get("nb_actions", 0))


def test_exact_rows_for_two_sites_and_five_days(world):
    world.add("one.example", date(2026, 10, 1))
    world.add("two.example", date(2026, 10, 1), tz="Pacific/Honolulu")
    first, last = TODAY - timedelta(days=5), TODAY - timedelta(days=1)

    result = world.run(first, last)

    matomo = world.rows("matomo_daily", "visits, unique_visitors, actions, data_state")
    gsc = world.rows("search_console_daily", "clicks, impressions, position, data_state")
    assert len(matomo) == len(gsc) == 10
    for domain in ("one.example", "two.example"):
        for day in _days(first, last):
            # Matomo: what the simulator reports for the day, settled only two days after the day ends in the site's
            # zone (the clock reads 07:00 UTC, still the day before in Honolulu: TODAY-3 is final in UTC, not there)
            final_since = TODAY - timedelta(days=3 if domain == "one.example" else 4)
            assert matomo[(domain, day)] == (*_expected_matomo(world, domain, day),
                                             "final" if day <= final_since else "provisional")
            # Search Console: Google's numbers, final before its firstIncompleteDate (TODAY - 2)
            numbers = provisional_traffic(f"sc-domain:{domain}", day, TODAY)
            clicks, impressions, position = numbers or (0, 0, None)
            assert gsc[(domain, day)] == (clicks, impressions, position,
                                          "final" if day < TODAY - timedelta(days=2) else "provisional")
    with world.engine.connect() as conn:
        merged = {(r.domain, r.date): (r.matomo_visits, r.gsc_clicks, r.gsc_impressions) for r in conn.execute(sa.text(
            "SELECT s.domain, a.date, a.matomo_visits, a.gsc_clicks, a.gsc_impressions FROM daily_analytics a "
            "JOIN sites s ON s.id = a.site_id"))}
    assert merged == {key: (matomo[key][0], gsc[key][0], gsc[key][1]) for key in matomo}
    # one Matomo call for both sites and five days; three Search Console calls a site (days, queries, pages)
    assert world.sandbox.matomo.calls.count("VisitsSummary.get") == 1
    queries = [c for c in world.sandbox.google.calls if c[1].endswith("/searchAnalytics/query")]
    assert len(queries) == 6
    assert _metadata(result, "matomo_daily")["sites"] == 2
    assert all(check.passed for check in _checks(result).values() if check.check_name == "every_site_fetched")


def test_empty_days_are_rows_of_zeros_never_errors(world):
    world.add("one.example", date(2026, 6, 1))
    quiet = TODAY - timedelta(days=6)
    world.sandbox.matomo.set_day(world.matomo_ids["one.example"], quiet, [])
    empty_gsc = next(d for d in _days(TODAY - timedelta(days=60), TODAY - timedelta(days=4))
                     if traffic("sc-domain:one.example", d) is None)

    world.run(empty_gsc, TODAY - timedelta(days=4))
    world.run(quiet, quiet)

    matomo = world.rows("matomo_daily", "visits, unique_visitors, actions, bounce_rate, avg_time_on_site")
    gsc = world.rows("search_console_daily", "clicks, impressions, ctr, position, pages_with_impressions")
    assert matomo[("one.example", quiet)] == (0, 0, 0, 0, 0)
    assert gsc[("one.example", empty_gsc)] == (0, 0, 0.0, None, 0)
    with world.engine.connect() as conn:
        detail = conn.execute(sa.text("SELECT count(*) FROM search_console_queries WHERE day = :d"),
                              {"d": empty_gsc}).scalar_one()
    assert detail == 0


def test_a_rerun_is_idempotent(world):
    world.add("one.example", date(2026, 10, 1))
    first, last = TODAY - timedelta(days=5), TODAY - timedelta(days=1)
    world.run(first, last)
    tables = ("matomo_daily", "search_console_daily", "search_console_queries", "daily_analytics")

    def snapshot():
        with world.engine.connect() as conn:
            return {t: conn.execute(sa.text(
                f"SELECT count(*), md5(string_agg(r::text, '|' ORDER BY r::text)) FROM "
                f"(SELECT * FROM {t}) r")).one() for t in ("search_console_queries",)} | {
                t: conn.execute(sa.text(
                    f"SELECT count(*), md5(string_agg(x, '|' ORDER BY x)) FROM (SELECT (site_id, {cols})::text AS x "
                    f"FROM {t}) r")).one()
                for t, cols in (("matomo_daily", "day, visits, actions, bounce_rate, data_state"),
                                ("search_console_daily", "day, clicks, impressions, position, data_state"),
                                ("daily_analytics", "date, matomo_visits, gsc_clicks, matomo_final, gsc_final"))}

    before = snapshot()
    again = world.run(first, last)
    assert snapshot() == before and set(before) == set(tables)
    assert _metadata(again, "matomo_daily")["rows_new"] == 0
    assert _metadata(again, "daily_analytics")["rows_changed"] == 0


def test_provisional_numbers_are_replaced_by_final_ones_and_never_the_reverse(world):
    world.add("one.example", date(2026, 10, 1))
    first, last = TODAY - timedelta(days=5), TODAY - timedelta(days=1)
    world.run(first, last)
    recent = TODAY - timedelta(days=1)
    assert world.rows("search_console_daily", "data_state")[("one.example", recent)] == ("provisional",)
    assert world.rows("matomo_daily", "data_state")[("one.example", recent)] == ("provisional",)

    world.clock.set(TODAY + timedelta(days=4))  # Google and Matomo have settled those days since
    later = world.run(first, last)

    gsc = world.rows("search_console_daily", "clicks, impressions, data_state")
    matomo = world.rows("matomo_daily", "visits, data_state")
    for day in _days(first, last):
        clicks, impressions, _ = traffic("sc-domain:one.example", day) or (0, 0, None)
        assert gsc[("one.example", day)] == (clicks, impressions, "final")
        full = world.sandbox.matomo.full_report(world.matomo_ids["one.example"], day) or {}
        assert matomo[("one.example", day)] == (full.get("nb_visits", 0), "final")
    # Google's firstIncompleteDate was TODAY-2: two days of the window were provisional
    assert _metadata(later, "search_console_daily")["provisional_settled"] == 2
    with world.engine.connect() as conn:
        flags = conn.execute(sa.text("SELECT bool_and(matomo_final AND gsc_final) FROM daily_analytics")).scalar_one()
    assert flags is True

    world.clock.set(TODAY)  # an answer from before (a stale replica, a clock gone back): final numbers stay
    stale = world.run(first, last)
    assert world.rows("search_console_daily", "clicks, impressions, data_state") == gsc
    assert _metadata(stale, "search_console_daily")["final_kept"] == 2


def test_a_failing_site_is_named_and_the_others_are_written(world):
    world.add("one.example", date(2026, 10, 1))
    world.add("two.example", date(2026, 10, 1))
    world.add("three.example", date(2026, 10, 1))
    with world.engine.begin() as conn:  # Matomo does not know this id; Google does not know this property
        conn.execute(sa.text("UPDATE sites SET matomo_site_id = 99 WHERE domain = 'two.example'"))
    world.sandbox.google.properties[GOOGLE_ACCOUNT].discard("sc-domain:three.example")
    first, last = TODAY - timedelta(days=5), TODAY - timedelta(days=1)

    result = world.run(first, last)

    assert result.success
    matomo_domains = {domain for domain, _ in world.rows("matomo_daily", "visits")}
    gsc_domains = {domain for domain, _ in world.rows("search_console_daily", "clicks")}
    assert matomo_domains == {"one.example", "three.example"}
    assert gsc_domains == {"one.example", "two.example"}
    checks = _checks(result)
    matomo_check = checks[("matomo_daily", "every_site_fetched")]
    assert not matomo_check.passed and "two.example" in matomo_check.description
    gsc_check = checks[("search_console_daily", "every_site_fetched")]
    assert not gsc_check.passed and "three.example" in gsc_check.description
    assert world.site("two.example").error_message.startswith("Matomo analytics for two.example: ")
    assert "99" in world.site("two.example").error_message
    assert world.site("three.example").error_message.startswith("Search Console analytics for three.example: ")
    assert world.site("one.example").error_message is None
    assert MATOMO_TOKEN not in world.site("two.example").error_message

    # fixed: the next run clears the site's analytics error
    with world.engine.begin() as conn:
        conn.execute(sa.text("UPDATE sites SET matomo_site_id = :m WHERE domain = 'two.example'"),
                     {"m": world.matomo_ids["two.example"]})
    world.run(first, last)
    assert world.site("two.example").error_message is None


def test_history_starts_on_the_sites_first_publishing_day(world):
    world.add("old.example", date(2026, 10, 1))
    world.add("new.example", TODAY - timedelta(days=3))
    world.run(TODAY - timedelta(days=10), TODAY - timedelta(days=1))
    days = world.rows("matomo_daily", "visits")
    assert min(day for domain, day in days if domain == "new.example") == TODAY - timedelta(days=3)
    assert min(day for domain, day in days if domain == "old.example") == TODAY - timedelta(days=10)
    gsc_days = world.rows("search_console_daily", "clicks")
    assert min(day for domain, day in gsc_days if domain == "new.example") == TODAY - timedelta(days=3)


def test_a_site_tag_limits_the_run_to_that_site(world):
    world.add("one.example", date(2026, 10, 1))
    world.add("two.example", date(2026, 10, 1))
    world.run(TODAY - timedelta(days=3), TODAY - timedelta(days=1), site="two.example")
    assert {domain for domain, _ in world.rows("matomo_daily", "visits")} == {"two.example"}
    assert {domain for domain, _ in world.rows("search_console_daily", "clicks")} == {"two.example"}


def test_the_schedule_asks_for_the_trailing_five_days_in_one_run():
    tick = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
    with instance_for_test() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick)
        request = analytics_schedule.evaluate_tick(context).run_requests[0]
    assert request.run_key == "analytics/2026-11-20"
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-15"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-19"
    assert request.tags["spark/kind"] == "analytics"  # held to the instance's limit for analytics runs
    assert analytics_schedule.job_name == "daily_analytics_job"
    job = defs.resolve_job_def("daily_analytics_job")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "matomo_daily", "search_console_daily", "daily_analytics", "analytics_report"}


def test_the_range_tags_are_dagsters_own():
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    assert set(analytics_range_tags(TODAY, TODAY)) == {ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG}


def test_the_freshness_check_fails_for_a_stale_site_and_passes_once_filled(world):
    world.add("fresh.example", TODAY - timedelta(days=12))
    world.add("stale.example", TODAY - timedelta(days=12))
    world.run(TODAY - timedelta(days=12), TODAY - timedelta(days=1), site="fresh.example")

    check = _checks(world.run(TODAY - timedelta(days=5), TODAY - timedelta(days=1), site="fresh.example",
                              selection=["daily_analytics"]))[("daily_analytics", "analytics_fresh")]
    assert not check.passed
    assert "stale.example" in check.description and "fresh.example" not in check.description

    world.run(TODAY - timedelta(days=12), TODAY - timedelta(days=1), site="stale.example")
    check = _checks(world.run(TODAY - timedelta(days=5), TODAY - timedelta(days=1),
                              selection=["daily_analytics"]))[("daily_analytics", "analytics_fresh")]
    assert check.passed, check.description


def test_a_backfill_runs_in_bounded_runs_and_writes_the_report(world, monkeypatch):
    world.add("one.example", TODAY - timedelta(days=70))
    world.add("two.example", TODAY - timedelta(days=20))
    monkeypatch.setattr(analytics_ops, "utc_now", lambda: datetime.combine(TODAY, time(7), timezone.utc))
    monkeypatch.setenv("DATABASE_URL", world.database.url)
    first, last = analytics_ops.backfill_days(70, None, today=TODAY)
    assert (first, last) == (TODAY - timedelta(days=70), TODAY - timedelta(days=1))

    result = analytics_ops.run_backfill(first, last, resources=world.resources(), instance=world.instance,
                                        echo=lambda line: None)

    assert [run[:2] for run in result.runs] == [
        (first, first + timedelta(days=30)), (first + timedelta(days=31), first + timedelta(days=61)),
        (first + timedelta(days=62), last)]
    assert world.sandbox.matomo.calls.count("VisitsSummary.get") == 3
    days = world.rows("matomo_daily", "visits")
    assert len(days) == 70 + 20
    event = world.instance.get_latest_materialization_event(AssetKey("analytics_report"))
    metadata = event.asset_materialization.metadata
    assert "one.example" in metadata["report"].value
    chart = metadata["chart_traffic"].value
    with Image.open(chart) as image:
        image.verify()
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size[0] >= 600
    assert metadata["traffic_chart"].value.startswith("![traffic](data:image/png;base64,")


def test_the_report_command_prints_and_writes_charts(world, monkeypatch):
    world.add("one.example", TODAY - timedelta(days=40))
    world.run(TODAY - timedelta(days=40), TODAY - timedelta(days=1))
    world.run(TODAY - timedelta(days=40), TODAY - timedelta(days=1), selection=["analytics_report"])
    monkeypatch.setenv("DATABASE_URL", world.database.url)
    lines: list[str] = []
    result = analytics_ops.print_report("one.example", echo=lines.append, as_of=TODAY - timedelta(days=1))
    assert "one.example" in "\n".join(lines)
    assert all(path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for path in result["charts"])
    assert all("one.example" in str(path) for path in result["charts"])


def test_the_backfill_refuses_an_unknown_site(world, monkeypatch):
    from spark_assets.records.registry import RegistryError

    monkeypatch.setenv("DATABASE_URL", world.database.url)
    with pytest.raises(RegistryError, match="nobody.example"):
        analytics_ops.run_backfill(TODAY - timedelta(days=2), TODAY - timedelta(days=1), site="nobody.example",
                                   resources=world.resources(), instance=world.instance)
    assert isinstance(world.instance, DagsterInstance)


def test_the_history_sensor_fills_a_site_that_went_live_before_it_came(world, monkeypatch):
    from dagster import build_sensor_context

    from spark_assets.automation import sensors

    monkeypatch.setattr(sensors, "utc_now", lambda: datetime.combine(TODAY, time(7), timezone.utc))
    world.add("old.example", TODAY - timedelta(days=40))  # came to the factory with 40 days of history
    world.add("new.example", TODAY - timedelta(days=2))  # the daily schedule's window covers it
    context = build_sensor_context(instance=world.instance, resources={"database": world.database})

    requests = sensors.analytics_history_sensor(context)

    # the days before the schedule's window (TODAY-5), in the backfill's fixed 31-day runs from ANALYTICS_START
    spans = [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
             for r in requests]
    assert spans == [("2026-10-09", "2026-11-08"), ("2026-11-09", "2026-11-14")]  # 2025-08-01 + 14 x 31 days
    assert all(r.tags[analytics_assets.SITES_TAG] == "old.example" for r in requests)
    assert all(r.tags["spark/kind"] == "analytics" for r in requests)
    assert len({r.run_key for r in requests}) == 2

    for first, last in spans:  # what the daemon would launch
        world.run(date.fromisoformat(first), date.fromisoformat(last), site="old.example")
    days = {day for domain, day in world.rows("matomo_daily", "visits") if domain == "old.example"}
    assert min(days) == TODAY - timedelta(days=40) and max(days) == TODAY - timedelta(days=6)
    again = sensors.analytics_history_sensor(build_sensor_context(instance=world.instance,
                                                                  resources={"database": world.database}))
    assert "final up to 2026-11-14" in again.skip_message


def test_the_cli_backfills_and_prints_the_report(world, monkeypatch):
    from click.testing import CliRunner

    from spark_assets.ops.cli import main

    world.add("one.example", date(2026, 1, 1))
    monkeypatch.setenv("DATABASE_URL", world.database.url)
    monkeypatch.setattr(analytics_ops, "utc_now", lambda: datetime.combine(TODAY, time(7), timezone.utc))
    monkeypatch.setattr(analytics_assets, "utc_now", lambda: datetime.combine(TODAY, time(7), timezone.utc))
    monkeypatch.setattr(analytics_ops, "defs", type("D", (), {"resources": world.resources()})())
    monkeypatch.setattr(analytics_ops.DagsterInstance, "get", staticmethod(lambda: world.instance))
    runner = CliRunner()

    world.add("today.example", TODAY)
    too_new = runner.invoke(main, ["analytics", "backfill", "--site", "today.example"])
    assert too_new.exit_code == 1 and "today.example went live on 2026-11-20: it has no finished day" in too_new.output
    refused = runner.invoke(main, ["analytics", "backfill", "--days", "0"])
    assert refused.exit_code == 1 and "--days must be 1 or more" in refused.output
    unknown = runner.invoke(main, ["analytics", "backfill", "--days", "3", "--site", "nobody.example"])
    assert unknown.exit_code == 1 and "nobody.example" in unknown.output

    filled = runner.invoke(main, ["analytics", "backfill", "--days", "35", "--site", "one.example"])
    assert filled.exit_code == 0, filled.output
    assert "analytics backfill 2026-10-16 to 2026-11-19 for one.example" in filled.output
    assert "2 run(s)" in filled.output
    assert len(world.rows("search_console_daily", "clicks")) == 35

    report = runner.invoke(main, ["analytics", "report", "--site", "one.example"])
    assert report.exit_code == 0, report.output
    assert "# Analytics for one.example, through 2026-11-19" in report.output
    assert "traffic.png" in report.output


def test_a_site_time_zone_must_be_a_real_one(engine):
    from spark_assets.records.registry import RegistryError

    with engine.begin() as conn, pytest.raises(RegistryError, match="unknown time zone 'Mars/Olympus_Mons'"):
        add_site(conn, "one.example", timezone="Mars/Olympus_Mons")
    with engine.begin() as conn:
        add_site(conn, "one.example", timezone="America/Chicago", launched_on=date(2026, 5, 1))
        add_site(conn, "one.example")  # registering again keeps both
        row = conn.execute(sa.text("SELECT timezone, launched_on FROM sites WHERE domain = 'one.example'")).one()
    assert (row.timezone, row.launched_on) == ("America/Chicago", date(2026, 5, 1))
