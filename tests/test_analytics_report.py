"""The analytics report and its charts on synthetic frames with numbers worked out by hand (no database, no dagster).

The report runs through 2026-03-31, so its windows are: last 7 days Mar 25-31, the 7 before Mar 18-24, last 28 days
Mar 4-31, the 28 before Feb 4 - Mar 3. `offset` below counts days back from that last day (0 = Mar 31).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spark_assets.analytics.charts import write_charts
from spark_assets.analytics.report import TABLE_ROWS, build_report

from .conftest import REPO_ROOT

AS_OF = date(2026, 3, 31)
LONG_AGO = date(2025, 1, 1)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NA = pd.NA


def day(offset: int) -> date:
    return AS_OF - timedelta(days=offset)


def value(spec: Any, offset: int) -> Any:
    return spec(offset) if callable(spec) else spec


def site_rows(domain: str, offsets: range = range(56), *, visits: Any = 0, clicks: Any = 0, impressions: Any = 0,
              position: Any = NA, final: Callable[[int], bool] | bool = True) -> list[dict]:
    """One row per day offset; every number may be a constant or a function of the offset."""
    return [
        {
            "domain": domain,
            "date": day(offset),
            "visits": value(visits, offset),
            "unique_visitors": value(visits, offset),
            "actions": value(visits, offset),
            "clicks": value(clicks, offset),
            "impressions": value(impressions, offset),
            "position": value(position, offset),
            "final": value(final, offset),
        }
        for offset in offsets
    ]


def daily_frame(*groups: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([row for group in groups for row in group])
    for column in ("visits", "unique_visitors", "actions", "clicks", "impressions"):
        frame[column] = frame[column].astype("Int64")  # what PostgreSQL's NULLs arrive as
    frame["position"] = frame["position"].astype("Float64")
    return frame


def sites_frame(*sites: tuple[str, date | None, int, int]) -> pd.DataFrame:
    return pd.DataFrame(sites, columns=["domain", "first_published", "pages_published", "pages_with_impressions"])


@pytest.fixture
def daily() -> pd.DataFrame:
    return daily_frame(
        # alpha: 10 visits and 1,000 impressions a day; 3 clicks a day at position 4 in the last 7 days, 1 at 8 before;
        # the last two days are provisional
        site_rows("alpha.com", visits=10, clicks=lambda i: 3 if i < 7 else 1, impressions=1000,
                  position=lambda i: 4.0 if i < 7 else 8.0, final=lambda i: i >= 2),
        # beta: nothing at all before the last 7 days (Matomo and Search Console had nothing: NA), then 5 visits on
        # four days and two days of impressions whose positions only make sense weighted: (300 x 2 + 100 x 10) / 400
        site_rows("beta.com", visits=lambda i: 5 if i < 4 else NA, clicks=lambda i: 5 if i == 0 else NA,
                  impressions=lambda i: {0: 300, 1: 100}.get(i, NA), position=lambda i: {0: 2.0, 1: 10.0}.get(i, NA)),
        # gamma: live for a year, rows every day, never a visit nor an impression
        site_rows("gamma.com", visits=0, clicks=NA, impressions=NA),
        # zeta: 10 clicks a day until a week ago, none since
        site_rows("zeta.com", visits=lambda i: 0 if i < 7 else 20, clicks=lambda i: 0 if i < 7 else 10, impressions=500,
                  position=12.0),
        # an inactive site: not in `sites`, so not in the report
        site_rows("retired.com", visits=1000, clicks=1000, impressions=1000, position=1.0),
    )


@pytest.fixture
def sites() -> pd.DataFrame:
    return sites_frame(
        ("alpha.com", LONG_AGO, 40, 30),
        ("beta.com", LONG_AGO, 10, 2),
        ("gamma.com", LONG_AGO, 20, 0),
        ("delta.com", day(3), 5, 0),  # published 3 days ago, no rows yet: new, not "no traffic"
        ("epsilon.com", None, 0, 0),  # not published at all
        ("zeta.com", LONG_AGO, 10, 10),
    )


def table_row(markdown: str, section: str, first_cell: str) -> list[str]:
    """The cells of the row starting with `first_cell` in the table under the heading `section`."""
    after = markdown.split(f"## {section}", 1)[1]
    for line in after.splitlines():
        if line.startswith("## "):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} under {section!r}")


# --- the numbers -------------------------------------------------------------------------------------------------


def test_sums_ratios_and_changes_per_site(daily, sites):
    report = build_report(daily, sites, AS_OF)
    alpha = report.per_site.loc["alpha.com"]
    assert (alpha["visits_7d"], alpha["visits_prev_7d"], alpha["visits_28d"], alpha["visits_prev_28d"]) == (70, 70, 280, 280)
    assert (alpha["clicks_7d"], alpha["clicks_prev_7d"], alpha["clicks_28d"], alpha["clicks_prev_28d"]) == (21, 7, 42, 28)
    assert (alpha["impressions_7d"], alpha["impressions_28d"]) == (7000, 28000)
    assert alpha["clicks_change_7d"] == pytest.approx(200.0)
    assert alpha["clicks_change_28d"] == pytest.approx(50.0)
    assert alpha["visits_change_7d"] == 0
    assert alpha["ctr_7d"] == pytest.approx(21 / 7000)
    assert alpha["ctr_prev_28d"] == pytest.approx(28 / 28000)
    assert alpha["position_7d"] == pytest.approx(4.0)
    assert alpha["position_28d"] == pytest.approx((7000 * 4 + 21000 * 8) / 28000)  # 7.0: weighted by impressions
    assert alpha["position_change_7d"] == pytest.approx(-50.0)
    assert alpha["impression_share"] == pytest.approx(0.75)

    beta = report.per_site.loc["beta.com"]
    assert (beta["visits_7d"], beta["visits_prev_7d"], beta["clicks_7d"], beta["impressions_7d"]) == (20, 0, 5, 400)
    assert beta["position_7d"] == pytest.approx(4.0)  # (300 x 2 + 100 x 10) / 400, not the plain mean 6
    assert pd.isna(beta["position_prev_7d"]) and pd.isna(beta["ctr_prev_7d"])
    assert pd.isna(beta["visits_change_7d"]) and pd.isna(beta["clicks_change_7d"]) and pd.isna(beta["position_change_7d"])

    zeta = report.per_site.loc["zeta.com"]
    assert (zeta["clicks_7d"], zeta["clicks_prev_7d"], zeta["clicks_change_7d"]) == (0, 70, -100.0)
    assert zeta["ctr_7d"] == 0  # impressions without clicks: 0 %, not undefined

    assert "retired.com" not in report.per_site.index
    numbers = report.per_site.select_dtypes("number")
    assert not np.isinf(numbers.astype("float64").to_numpy()).any()


def test_per_site_is_sorted_by_clicks_in_the_last_28_days(daily, sites):
    report = build_report(daily, sites, AS_OF)
    # zeta: 21 x 10 = 210 clicks (Mar 4-24); alpha 42; beta 5; then the clickless sites by name
    assert list(report.per_site.index) == ["zeta.com", "alpha.com", "beta.com", "delta.com", "epsilon.com", "gamma.com"]


def test_totals_across_sites(daily, sites):
    report = build_report(daily, sites, AS_OF)
    total = report.totals.loc["all sites"]
    assert total["visits_7d"] == 70 + 20
    assert total["clicks_7d"] == 21 + 5 and total["clicks_prev_7d"] == 7 + 70
    assert total["clicks_28d"] == 42 + 5 + 210 and total["clicks_prev_28d"] == 28 + 280
    assert total["impressions_7d"] == 7000 + 400 + 3500
    assert total["ctr_7d"] == pytest.approx(26 / 10900)
    assert total["position_7d"] == pytest.approx((7000 * 4 + 300 * 2 + 100 * 10 + 3500 * 12) / 10900)
    assert total["clicks_change_7d"] == pytest.approx((26 - 77) / 77 * 100)
    assert (total["pages_published"], total["pages_with_impressions"]) == (85, 42)
    assert report.summary()["clicks_28d"] == 257


def test_a_site_without_traffic_is_listed_but_a_new_one_is_not(daily, sites):
    report = build_report(daily, sites, AS_OF)
    assert list(report.no_traffic.index) == ["gamma.com"]
    assert list(report.new_sites.index) == ["epsilon.com", "delta.com"]  # the never-published first, then the youngest


def test_a_site_live_since_the_window_began_counts_but_one_live_a_day_less_is_new():
    sites = sites_frame(("whole.com", day(27), 1, 0), ("partial.com", day(26), 1, 0))
    report = build_report(daily_frame(site_rows("whole.com", range(28))), sites, AS_OF)
    assert list(report.no_traffic.index) == ["whole.com"]
    assert list(report.new_sites.index) == ["partial.com"]


def test_days_not_final(daily, sites):
    report = build_report(daily, sites, AS_OF)
    expected = pd.DataFrame(
        {"date": [day(3), day(2), day(1), day(0)], "sites_provisional": [0, 0, 1, 1], "sites_missing": [1, 1, 1, 1]}
    )
    pd.testing.assert_frame_equal(report.days_not_final.reset_index(drop=True), expected)


def test_movers_by_clicks_then_visits_top_five_each_way():
    def mover(domain: str, clicks: tuple[int, int], visits: tuple[int, int]) -> list[dict]:
        return site_rows(domain, range(14), clicks=lambda i: clicks[1] if i < 7 else clicks[0],
                         visits=lambda i: visits[1] if i < 7 else visits[0])

    moves = {  # per day: (the 7 days before, the last 7)
        "m1.com": ((0, 10), (0, 1)),
        "m2.com": ((0, 10), (0, 5)),  # as many clicks as m1, more visits: first
        "m3.com": ((5, 8), (0, 0)),
        "m4.com": ((2, 2), (0, 4)),  # clicks flat, visits up: up, but last
        "m5.com": ((20, 0), (0, 0)),
        "m6.com": ((3, 2), (9, 9)),
        "m7.com": ((1, 1), (1, 1)),  # did not move
        "m8.com": ((0, 1), (0, 0)),
        "m9.com": ((0, 2), (0, 0)),
        "m10.com": ((0, 4), (0, 0)),
    }
    daily = daily_frame(*(mover(domain, clicks, visits) for domain, (clicks, visits) in moves.items()))
    sites = sites_frame(*((domain, LONG_AGO, 1, 1) for domain in moves))
    report = build_report(daily, sites, AS_OF)
    assert list(report.movers_up.index) == ["m2.com", "m1.com", "m10.com", "m3.com", "m9.com"]
    assert list(report.movers_down.index) == ["m5.com", "m6.com"]
    assert report.movers_up.loc["m2.com", "clicks_delta"] == 70
    assert report.movers_down.loc["m5.com", "clicks_delta"] == -140


def test_dates_as_datetime64_give_the_same_report(daily, sites):
    as_dates = build_report(daily, sites, AS_OF)
    as_timestamps = build_report(daily.assign(date=pd.to_datetime(daily["date"])), sites, AS_OF)
    pd.testing.assert_frame_equal(as_dates.per_site, as_timestamps.per_site)


def test_one_site(daily, sites):
    report = build_report(daily, sites, AS_OF, site="beta.com")
    assert list(report.per_site.index) == ["beta.com"]
    assert report.totals.loc["all sites", "clicks_7d"] == 5
    assert report.no_traffic.empty and report.new_sites.empty
    markdown = report.markdown()
    assert "alpha.com" not in markdown and "Top movers" not in markdown and "for beta.com" in markdown


def test_an_unknown_site_is_named(daily, sites):
    with pytest.raises(ValueError, match="nosuch.example"):
        build_report(daily, sites, AS_OF, site="nosuch.example")


# --- markdown ------------------------------------------------------------------------------------------------------


def test_markdown_rows(daily, sites):
    markdown = build_report(daily, sites, AS_OF).markdown()
    week = "Per site: last 7 days against the 7 before"
    month = "Per site: last 28 days against the 28 before"
    # Site, Visits, Change, Clicks, Change, Impressions, Change, CTR, Change, Position, Change
    assert table_row(markdown, week, "alpha.com") == [
        "alpha.com", "70", "+0.0%", "21", "+200.0%", "7,000", "+0.0%", "0.30%", "+200.0%", "4.0", "-50.0%"]
    assert table_row(markdown, week, "beta.com") == [
        "beta.com", "20", "new", "5", "new", "400", "new", "1.25%", "new", "4.0", "new"]
    assert table_row(markdown, week, "gamma.com") == [
        "gamma.com", "0", "–", "0", "–", "0", "–", "–", "–", "–", "–"]
    assert table_row(markdown, month, "alpha.com")[-3:] == ["40", "30", "75.0%"]
    assert table_row(markdown, month, "alpha.com")[5:7] == ["28,000", "+0.0%"]
    assert table_row(markdown, "Totals", "Clicks")[1:4] == ["26", "77", "-66.2%"]
    assert table_row(markdown, "No traffic in the last 28 days", "gamma.com") == ["gamma.com", "2025-01-01", "20"]
    assert table_row(markdown, "New sites", "delta.com")[1] == "2026-03-28 (3 d ago)"
    assert table_row(markdown, "Days not final", "2026-03-31") == ["2026-03-31", "1", "1"]
    assert "4 day(s) not final yet" in markdown
    assert table_row(markdown, "Top movers", "alpha.com")[1:4] == ["7", "21", "+200.0%"]
    for unwanted in ("nan", "NaN", "inf", "<NA>", "None"):
        assert unwanted not in markdown


def test_markdown_cuts_long_tables_with_and_n_more():
    domains = [f"site{number:02}.com" for number in range(1, 41)]
    daily = daily_frame(*(site_rows(domain, range(28), visits=n, clicks=n, impressions=10 * n, position=5.0)
                          for n, domain in enumerate(domains, start=1)))
    report = build_report(daily, sites_frame(*((domain, LONG_AGO, 3, 1) for domain in domains)), AS_OF)
    markdown = report.markdown()
    assert markdown.count(f"… and {40 - TABLE_ROWS} more") == 2  # the two per-site tables
    week = "Per site: last 7 days against the 7 before"
    assert table_row(markdown, week, "site40.com")[3] == "280"  # most clicks first
    assert table_row(markdown, week, f"site{40 - TABLE_ROWS + 1:02}.com")
    assert f"| site{40 - TABLE_ROWS:02}.com " not in markdown
    assert table_row(markdown, "Totals", "Clicks")[4] == f"{28 * sum(range(1, 41)):,}"  # 22,960


# --- charts --------------------------------------------------------------------------------------------------------


def assert_png(path, min_width=600, min_height=300):
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert width >= min_width and height >= min_height


def test_charts_are_pngs(daily, tmp_path):
    directory = tmp_path / "reports" / "charts"  # created, parents too
    paths = write_charts(daily, AS_OF, directory)
    assert [path.name for path in paths] == ["traffic.png", "sites.png", "position.png"]
    for path in paths:
        assert path.parent == directory
        assert_png(path)
    assert sorted(p.name for p in directory.iterdir()) == ["position.png", "sites.png", "traffic.png"]  # no temp left


def test_charts_for_one_site_skip_the_small_multiples(daily, tmp_path):
    paths = write_charts(daily, AS_OF, tmp_path, site="alpha.com", days=30)
    assert [path.name for path in paths] == ["traffic.png", "position.png"]
    for path in paths:
        assert_png(path)


@pytest.mark.parametrize("empty", ["no rows", "no columns typed"])
def test_charts_without_data_say_so(daily, tmp_path, empty):
    frame = daily.iloc[:0] if empty == "no rows" else pd.DataFrame(columns=list(daily.columns))
    paths = write_charts(frame, AS_OF, tmp_path)
    assert [path.name for path in paths] == ["traffic.png", "sites.png", "position.png"]
    for path in paths:
        assert_png(path)


def test_charts_are_the_same_bytes_twice(daily, tmp_path):
    first = [path.read_bytes() for path in write_charts(daily, AS_OF, tmp_path / "one", days=30)]
    second = [path.read_bytes() for path in write_charts(daily, AS_OF, tmp_path / "two", days=30)]
    again = [path.read_bytes() for path in write_charts(daily, AS_OF, tmp_path / "one", days=30)]
    assert first == second == again


def test_charts_leave_pyplot_alone(tmp_path):
    """Drawing must not import pyplot (and with it a global current figure and backend) into the process."""
    code = (
        "import sys, datetime, pandas as pd\n"
        "from spark_assets.analytics.charts import write_charts\n"
        "rows = pd.DataFrame([{'domain': 'a.com', 'date': datetime.date(2026, 3, 31), 'visits': 1, 'clicks': 1,"
        " 'impressions': 10, 'position': 3.0, 'final': False}])\n"
        f"write_charts(rows, datetime.date(2026, 3, 31), {str(tmp_path)!r})\n"
        "sys.exit(1 if 'matplotlib.pyplot' in sys.modules else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
