"""The analytics report's numbers: per site and across sites, the last 7 and 28 days against the 7 and 28 before, the
movers, the sites nobody finds, and which days may still move. Plain pandas: the Dagster asset `analytics_report` and
`spark analytics report` read the rows from PostgreSQL and hand them here, so the numbers are tested without a database.

Conventions the frames keep (and `markdown()` relies on):

- a missing number (Matomo or Search Console had nothing for that site and day) counts as 0 in the sums;
- CTR is clicks / impressions and the average position is weighted by impressions; both are <NA> (never NaN, never
  inf) when the window had no impressions;
- a change is in percent, <NA> when it has no meaning (the window before was 0 or undefined); `markdown()` shows those
  as "new" (from 0 to something) or "–" (nothing before, nothing now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable, Sequence

import pandas as pd

#: the windows the report compares, as (name, length in days, how many days before `as_of`'s window it ends)
WINDOWS: tuple[tuple[str, int, int], ...] = (("7d", 7, 0), ("prev_7d", 7, 7), ("28d", 28, 0), ("prev_28d", 28, 28))
#: what each window is compared with: the change column is f"{metric}_change_{window}"
COMPARISONS: tuple[tuple[str, str], ...] = (("7d", "prev_7d"), ("28d", "prev_28d"))
METRICS: tuple[str, ...] = ("visits", "clicks", "impressions", "ctr", "position")
COUNTS: tuple[str, ...] = ("visits", "clicks", "impressions")

DAILY_COLUMNS = ("domain", "date", "visits", "clicks", "impressions", "position", "final")
SITES_COLUMNS = ("domain", "first_published", "pages_published", "pages_with_impressions")

#: rows a table shows before it says "and N more": hundreds of sites would drown the Dagster UI and the terminal
TABLE_ROWS = 25
MOVERS = 5
TOTAL_LABEL = "all sites"


@dataclass(frozen=True)
class AnalyticsReport:
    """The report as frames (for whoever wants the numbers) and as markdown (for Dagster's metadata and the terminal).

    `per_site` is indexed by domain, sorted by clicks in the last 28 days (descending, then domain), with the columns
    `first_published`, `pages_published`, `pages_with_impressions`, `impression_share` (of published pages, <NA>
    without pages), then f"{metric}_{window}" for every metric in METRICS and window in WINDOWS, and
    f"{metric}_change_7d" / f"{metric}_change_28d" in percent. `totals` has the same columns, one row (TOTAL_LABEL)
    summing every site in the report (`first_published` the earliest).
    """

    as_of: date
    site: str | None
    per_site: pd.DataFrame
    totals: pd.DataFrame
    #: the top MOVERS sites whose clicks (then visits) rose / fell most, last 7 days against the 7 before
    movers_up: pd.DataFrame
    movers_down: pd.DataFrame
    #: live for the whole 28-day window, yet no visit and no impression in it
    no_traffic: pd.DataFrame
    #: not yet live for the whole 28-day window (or not published at all): too young to judge
    new_sites: pd.DataFrame
    #: the days of the last 28 with numbers that may still move: `date`, `sites_provisional` (rows not final),
    #: `sites_missing` (published sites with no row for that day: nobody fetched it yet)
    days_not_final: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """A few plain numbers (JSON-safe: ints, floats, str) for the Dagster asset's metadata."""
        total = self.totals.iloc[0]
        return {
            "as_of": self.as_of.isoformat(),
            "sites": len(self.per_site),
            **{f"{metric}_{window}": int(total[f"{metric}_{window}"]) for metric in COUNTS for window in ("7d", "28d")},
            "sites_without_traffic": len(self.no_traffic),
            "new_sites": len(self.new_sites),
            "days_not_final": len(self.days_not_final),
        }

    def markdown(self) -> str:
        """The report for humans: short tables, numbers with thousands separators, CTR in %, positions to 1 decimal."""
        count = len(self.per_site)
        scope = f" for {self.site}" if self.site else f" across {count:,} site{'' if count == 1 else 's'}"
        parts = [f"# Analytics{scope}, through {self.as_of.isoformat()}"]
        if len(self.days_not_final):
            days = self.days_not_final["date"]
            parts.append(
                f"**{len(days)} day(s) not final yet** ({_day(days.min())} to {_day(days.max())}): "
                "their numbers may still move."
            )
        parts += ["## Totals", _totals_table(self.totals.iloc[0])]
        if self.site is None:
            parts += ["## Top movers (clicks, last 7 days against the 7 before)"]
            parts += ["### Up", _movers_table(self.movers_up), "### Down", _movers_table(self.movers_down)]
        for window, previous in COMPARISONS:
            days = window.removesuffix("d")
            parts += [f"## Per site: last {days} days against the {days} before", _sites_table(self.per_site, window)]
        parts += ["## No traffic in the last 28 days", _no_traffic_table(self.no_traffic)]
        parts += ["## New sites (not live for the whole 28 days yet)", _new_sites_table(self.new_sites, self.as_of)]
        parts += ["## Days not final", _days_not_final_table(self.days_not_final)]
        return "\n\n".join(parts) + "\n"


def build_report(daily: pd.DataFrame, sites: pd.DataFrame, as_of: date, *, site: str | None = None) -> AnalyticsReport:
    """The report through `as_of` (inclusive) for the active sites in `sites`, or only `site`.

    `daily` rows of domains not in `sites` (sites no longer active) are left out, as are rows after `as_of`.
    """
    _require_columns(daily, DAILY_COLUMNS, "daily")
    _require_columns(sites, SITES_COLUMNS, "sites")
    sites = _prepare_sites(sites)
    if site is not None:
        if site not in set(sites["domain"]):
            raise ValueError(f"unknown site {site!r}: it is not among the {len(sites)} active sites")
        sites = sites[sites["domain"] == site]
    rows = _prepare_daily(daily)
    rows = rows[rows["domain"].isin(set(sites["domain"]))]
    domains = pd.Index(sites["domain"], name="domain")

    sums = pd.concat([_window_sums(rows, domains, as_of, name, length, end) for name, length, end in WINDOWS], axis=1)
    site_facts = sites.set_index("domain")[["first_published", "pages_published", "pages_with_impressions"]]
    per_site = _derive(site_facts, sums)
    per_site = per_site.loc[sorted(per_site.index, key=lambda d: (-per_site.at[d, "clicks_28d"], d))]

    total_facts = pd.DataFrame(
        {
            "first_published": [min((d for d in sites["first_published"] if isinstance(d, date)), default=None)],
            "pages_published": [int(site_facts["pages_published"].sum())],
            "pages_with_impressions": [int(site_facts["pages_with_impressions"].sum())],
        },
        index=pd.Index([TOTAL_LABEL], name="domain"),
    )
    totals = _derive(total_facts, sums.sum().to_frame(TOTAL_LABEL).T.rename_axis("domain"))

    window_start = as_of - timedelta(days=27)
    live_whole_window = per_site["first_published"].map(lambda first: isinstance(first, date) and first <= window_start)
    live_whole_window = live_whole_window.astype(bool)
    silent = (per_site["visits_28d"] == 0) & (per_site["impressions_28d"] == 0)
    no_traffic = per_site.loc[live_whole_window & silent, ["first_published", "pages_published"]]
    new_sites = per_site.loc[~live_whole_window, ["first_published", "pages_published", "visits_28d", "clicks_28d",
                                                 "impressions_28d"]]
    youngest_first = sorted(new_sites.index)
    youngest_first.sort(key=lambda d: _sort_date(new_sites.at[d, "first_published"]), reverse=True)  # stable: by name
    new_sites = new_sites.loc[youngest_first]

    movers_up, movers_down = _movers(per_site)
    return AnalyticsReport(
        as_of=as_of,
        site=site,
        per_site=per_site,
        totals=totals,
        movers_up=movers_up,
        movers_down=movers_down,
        no_traffic=no_traffic,
        new_sites=new_sites,
        days_not_final=_days_not_final(rows, sites, as_of),
    )


# --- reading the input -------------------------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {', '.join(missing)}")


def _as_date(value: Any) -> date | None:
    """A date from a date, a datetime, a Timestamp or a string; None for NA (a site never published)."""
    if value is None or (not isinstance(value, date) and pd.isna(value)):
        return None
    return pd.Timestamp(value).date()


def _sort_date(value: date | None) -> date:
    """Never-published sites sort as the newest: they are the youngest of all."""
    return date.max if value is None or pd.isna(value) else value


def _prepare_sites(sites: pd.DataFrame) -> pd.DataFrame:
    sites = sites[list(SITES_COLUMNS)].copy()
    sites["domain"] = sites["domain"].astype(str)
    sites["first_published"] = [_as_date(value) for value in sites["first_published"]]
    for column in ("pages_published", "pages_with_impressions"):
        sites[column] = pd.to_numeric(sites[column]).fillna(0).astype("int64")
    return sites.drop_duplicates("domain").reset_index(drop=True)


def _prepare_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """Dates as plain dates, numbers as floats (NA kept: a missing position is not a position of 0), final as bool."""
    rows = daily[list(DAILY_COLUMNS)].copy()
    rows["domain"] = rows["domain"].astype(str)
    rows["date"] = pd.to_datetime(rows["date"]).dt.date
    for column in ("visits", "clicks", "impressions", "position"):
        rows[column] = pd.to_numeric(rows[column], errors="coerce").astype("float64")
    rows["final"] = rows["final"].fillna(False).astype(bool)
    return rows


# --- the numbers -------------------------------------------------------------------------------------------------


def _window_sums(rows: pd.DataFrame, domains: pd.Index, as_of: date, name: str, length: int, end: int) -> pd.DataFrame:
    """Per domain, the window's visits, clicks, impressions and what the weighted position needs: the sum of
    position x impressions, and the impressions that came with a position."""
    last = as_of - timedelta(days=end)
    first = last - timedelta(days=length - 1)
    window = rows[(rows["date"] >= first) & (rows["date"] <= last)]
    weighted = window["impressions"].notna() & window["position"].notna() & (window["impressions"] > 0)
    frame = pd.DataFrame(
        {
            "visits": window["visits"].fillna(0),
            "clicks": window["clicks"].fillna(0),
            "impressions": window["impressions"].fillna(0),
            "position_weight": (window["position"] * window["impressions"]).where(weighted, 0.0),
            "position_impressions": window["impressions"].where(weighted, 0.0),
        }
    )
    sums = frame.groupby(window["domain"]).sum().reindex(domains, fill_value=0.0)
    return sums.add_suffix(f"_{name}")


def _derive(facts: pd.DataFrame, sums: pd.DataFrame) -> pd.DataFrame:
    """From the raw sums: counts as ints, CTR and position as ratios, the changes, the pages' share."""
    out = facts.copy()
    out["impression_share"] = _ratio(out["pages_with_impressions"], out["pages_published"])
    for name, _, _ in WINDOWS:
        for metric in COUNTS:
            out[f"{metric}_{name}"] = sums[f"{metric}_{name}"].round().astype("int64")
        out[f"ctr_{name}"] = _ratio(sums[f"clicks_{name}"], sums[f"impressions_{name}"])
        out[f"position_{name}"] = _ratio(sums[f"position_weight_{name}"], sums[f"position_impressions_{name}"])
    for window, previous in COMPARISONS:
        for metric in METRICS:
            out[f"{metric}_change_{window}"] = _percent_change(out[f"{metric}_{previous}"], out[f"{metric}_{window}"])
    return out


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, <NA> where the denominator is 0: no impressions, no CTR (not 0 %, not inf)."""
    numerator, denominator = numerator.astype("Float64"), denominator.astype("Float64")
    return (numerator / denominator.mask(denominator == 0)).astype("Float64")


def _percent_change(previous: pd.Series, current: pd.Series) -> pd.Series:
    """(current - previous) / previous in %, <NA> where previous is 0 or undefined (shown as "new" or "–")."""
    previous, current = previous.astype("Float64"), current.astype("Float64")
    meaningful = previous.notna() & current.notna() & (previous != 0)
    change = (current - previous) / previous.mask(~meaningful) * 100
    return change.mask(~meaningful).astype("Float64")


def _movers(per_site: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sites that moved most in absolute clicks (visits break ties): a site going from 1 click to 3 is +200 %
    but moves nothing an operator should look at first."""
    moves = pd.DataFrame(
        {
            "clicks_prev_7d": per_site["clicks_prev_7d"],
            "clicks_7d": per_site["clicks_7d"],
            "clicks_delta": per_site["clicks_7d"] - per_site["clicks_prev_7d"],
            "clicks_change_7d": per_site["clicks_change_7d"],
            "visits_prev_7d": per_site["visits_prev_7d"],
            "visits_7d": per_site["visits_7d"],
            "visits_delta": per_site["visits_7d"] - per_site["visits_prev_7d"],
            "visits_change_7d": per_site["visits_change_7d"],
        }
    )
    key = list(zip(moves["clicks_delta"], moves["visits_delta"]))
    up = [domain for domain, move in zip(moves.index, key) if move > (0, 0)]
    down = [domain for domain, move in zip(moves.index, key) if move < (0, 0)]
    up.sort(key=lambda d: (-moves.at[d, "clicks_delta"], -moves.at[d, "visits_delta"], d))
    down.sort(key=lambda d: (moves.at[d, "clicks_delta"], moves.at[d, "visits_delta"], d))
    return moves.loc[up[:MOVERS]], moves.loc[down[:MOVERS]]


def _days_not_final(rows: pd.DataFrame, sites: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Days of the last 28 with a provisional row, or a published site without a row (not fetched yet)."""
    found = []
    for offset in range(27, -1, -1):
        day = as_of - timedelta(days=offset)
        that_day = rows[rows["date"] == day]
        provisional = int((~that_day["final"]).sum())
        published = {d for d, first in zip(sites["domain"], sites["first_published"]) if isinstance(first, date) and first <= day}
        missing = len(published - set(that_day["domain"]))
        if provisional or missing:
            found.append({"date": day, "sites_provisional": provisional, "sites_missing": missing})
    return pd.DataFrame(found, columns=["date", "sites_provisional", "sites_missing"])


# --- markdown ------------------------------------------------------------------------------------------------------


def _day(value: date) -> str:
    return value.isoformat()


def _count(value: Any) -> str:
    return "–" if pd.isna(value) else f"{int(value):,}"


def _percent(value: Any) -> str:
    return "–" if pd.isna(value) else f"{float(value):.1%}"


def _ctr(value: Any) -> str:
    """Two decimals: local sites' CTRs are often below 1 %, where one decimal would round 0.15 % and 0.24 % together."""
    return "–" if pd.isna(value) else f"{float(value):.2%}"


def _position(value: Any) -> str:
    return "–" if pd.isna(value) else f"{float(value):.1f}"


def _change(change: Any, current: Any) -> str:
    """A change in % with its sign; where there is none, "new" if something came from nothing, else "–"."""
    if pd.isna(change):
        return "–" if pd.isna(current) or current == 0 else "new"
    return f"{float(change):+,.1f}%"


FORMATS: dict[str, Callable[[Any], str]] = {
    "visits": _count, "clicks": _count, "impressions": _count, "ctr": _ctr, "position": _position,
}
LABELS = {"visits": "Visits", "clicks": "Clicks", "impressions": "Impressions", "ctr": "CTR", "position": "Avg. position"}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, limit: int = TABLE_ROWS,
                   right: Sequence[bool] | None = None) -> str:
    """A pipe table padded to line up in a terminal too, at most `limit` rows then "… and N more". Written here rather
    than pandas' `to_markdown`, which needs tabulate: only dagster pulls that in, and this core must not need dagster."""
    if not rows:
        return "_none_"
    shown = [list(row) for row in rows[:limit]]
    right = list(right) if right is not None else [index > 0 for index in range(len(headers))]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *shown)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.rjust(width) if flush else cell.ljust(width) for cell, width, flush in zip(cells, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (width + 1) + ":") if flush else ("-" * (width + 2)) for width, flush in
                          zip(widths, right)) + "|"
    lines = [line(headers), rule, *(line(row) for row in shown)]
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit:,} more")
    return "\n".join(lines)


def _totals_table(total: pd.Series) -> str:
    headers = ["Metric", "Last 7 d", "7 d before", "Change", "Last 28 d", "28 d before", "Change"]
    rows = []
    for metric in METRICS:
        show = FORMATS[metric]
        row = [LABELS[metric]]
        for window, previous in COMPARISONS:
            current = total[f"{metric}_{window}"]
            row += [show(current), show(total[f"{metric}_{previous}"]), _change(total[f"{metric}_change_{window}"], current)]
        rows.append(row)
    pages = (f"Pages with at least one impression in the last 28 days: {_count(total['pages_with_impressions'])} of "
             f"{_count(total['pages_published'])} published ({_percent(total['impression_share'])}). "
             "A falling position is good news: 1 is the top of Google's results.")
    return markdown_table(headers, rows) + "\n\n" + pages


def _sites_table(per_site: pd.DataFrame, window: str) -> str:
    headers = ["Site"]
    for metric in METRICS:
        headers += [LABELS[metric], "Change"]
    if window == "28d":
        headers += ["Pages", "With impr.", "Share"]
    rows = []
    for domain, site in per_site.iterrows():
        row = [str(domain)]
        for metric in METRICS:
            current = site[f"{metric}_{window}"]
            row += [FORMATS[metric](current), _change(site[f"{metric}_change_{window}"], current)]
        if window == "28d":
            row += [_count(site["pages_published"]), _count(site["pages_with_impressions"]),
                    _percent(site["impression_share"])]
        rows.append(row)
    return markdown_table(headers, rows)


def _movers_table(movers: pd.DataFrame) -> str:
    headers = ["Site", "Clicks before", "Clicks", "Change", "Visits before", "Visits", "Change"]
    rows = [
        [str(domain), _count(m["clicks_prev_7d"]), _count(m["clicks_7d"]), _change(m["clicks_change_7d"], m["clicks_7d"]),
         _count(m["visits_prev_7d"]), _count(m["visits_7d"]), _change(m["visits_change_7d"], m["visits_7d"])]
        for domain, m in movers.iterrows()
    ]
    return markdown_table(headers, rows)


def _no_traffic_table(no_traffic: pd.DataFrame) -> str:
    rows = [[str(domain), _day(s["first_published"]), _count(s["pages_published"])] for domain, s in no_traffic.iterrows()]
    return markdown_table(["Site", "First published", "Pages"], rows)


def _new_sites_table(new_sites: pd.DataFrame, as_of: date) -> str:
    rows = []
    for domain, s in new_sites.iterrows():
        first = s["first_published"]
        live = "not published" if not isinstance(first, date) else f"{_day(first)} ({(as_of - first).days} d ago)"
        rows.append([str(domain), live, _count(s["pages_published"]), _count(s["visits_28d"]), _count(s["clicks_28d"]),
                     _count(s["impressions_28d"])])
    return markdown_table(["Site", "First published", "Pages", "Visits", "Clicks", "Impressions"], rows)


def _days_not_final_table(days: pd.DataFrame) -> str:
    rows = [[_day(d["date"]), _count(d["sites_provisional"]), _count(d["sites_missing"])] for _, d in days.iterrows()]
    return markdown_table(["Day", "Sites provisional", "Sites not fetched"], rows)
