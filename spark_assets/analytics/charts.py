"""The analytics report's charts: PNGs an operator opens beside the markdown (`spark analytics report` prints where they
are; the Dagster asset links them).

Drawn on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot: pyplot keeps global state (the current
figure, the backend) that a Dagster process or a test would share with whoever else draws. Each PNG is written to a
temporary file beside it and renamed over it, so a reader sees the old chart or the new one, never half of one; and
the same rows give the same bytes (no "Software" stamp), so an unchanged chart is an unchanged file.
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import date, timedelta
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: how many sites `sites.png` draws: the ones with the most clicks in the last 28 days
SMALL_MULTIPLES = 12
ROLLING_DAYS = 7
DPI = 100
VISITS_COLOR, CLICKS_COLOR, IMPRESSIONS_COLOR, POSITION_COLOR = "#1f77b4", "#d62728", "#2ca02c", "#9467bd"
THOUSANDS = mticker.StrMethodFormatter("{x:,.0f}")
PROVISIONAL_STYLE = {"facecolor": "#f2c14e", "alpha": 0.25, "hatch": "//", "edgecolor": "#b8860b", "linewidth": 0}


def write_charts(daily: pd.DataFrame, as_of: date, directory: Path, *, site: str | None = None,
                 days: int = 90) -> list[Path]:
    """`traffic.png`, `sites.png` (not for one `site`) and `position.png` in `directory` (created if missing), over
    the `days` days through `as_of`, for every site in `daily` or only `site`. Returns the paths written.

    Without rows (no site fetched yet, or `site` has none) each chart says "no data yet" rather than failing.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = _prepare(daily, site)
    first = as_of - timedelta(days=days - 1)
    if len(rows):  # a young factory: the charts start where its data does, not on an empty stretch
        first = max(first, rows["date"].min().date())
    scope = site or "all sites"
    period = f"{first.isoformat()} to {as_of.isoformat()}"

    written = [_save(_traffic_figure(rows, first, as_of, scope, period), directory / "traffic.png")]
    if site is None:
        written.append(_save(_sites_figure(rows, first, as_of, period), directory / "sites.png"))
    written.append(_save(_position_figure(rows, first, as_of, scope, period), directory / "position.png"))
    return written


# --- the numbers drawn ---------------------------------------------------------------------------------------------


def _prepare(daily: pd.DataFrame, site: str | None) -> pd.DataFrame:
    """Dates as Timestamps, numbers as floats (NA kept), final as bool; only `site`'s rows when given."""
    columns = ["domain", "date", "visits", "clicks", "impressions", "position", "final"]
    missing = [column for column in columns if column not in daily.columns]
    if missing:
        raise ValueError(f"daily lacks the column(s) {', '.join(missing)}")
    rows = daily[columns].copy()
    rows["domain"] = rows["domain"].astype(str)
    if site is not None:
        rows = rows[rows["domain"] == site]
    rows["date"] = pd.to_datetime(rows["date"]).dt.normalize()
    for column in ("visits", "clicks", "impressions", "position"):
        rows[column] = pd.to_numeric(rows[column], errors="coerce").astype("float64")
    rows["final"] = rows["final"].fillna(False).astype(bool)
    return rows


def _per_day(rows: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """One row per day from `first` to `last`: summed visits, clicks and impressions (NaN on a day without any row:
    a gap in the line, not a drop to 0), the impression-weighted position, and whether any row of it is provisional."""
    days = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D")
    window = rows[(rows["date"] >= days[0]) & (rows["date"] <= days[-1])]
    weighted = window["impressions"].notna() & window["position"].notna() & (window["impressions"] > 0)
    parts = pd.DataFrame(
        {
            "visits": window["visits"],
            "clicks": window["clicks"],
            "impressions": window["impressions"],
            "position_weight": (window["position"] * window["impressions"]).where(weighted, 0.0),
            "position_impressions": window["impressions"].where(weighted, 0.0),
            "provisional": ~window["final"],
        }
    )
    grouped = parts.groupby(window["date"])
    sums = grouped[["visits", "clicks", "impressions", "position_weight", "position_impressions"]].sum(min_count=1)
    sums["provisional"] = grouped["provisional"].any()
    sums = sums.reindex(days)
    out = sums[["visits", "clicks", "impressions"]].astype("float64")
    weight = sums["position_impressions"].astype("float64")
    out["position"] = (sums["position_weight"] / weight.where(weight > 0)).astype("float64")
    out["position_weight"], out["position_impressions"] = sums["position_weight"].fillna(0.0), weight.fillna(0.0)
    out["provisional"] = sums["provisional"].fillna(False).astype(bool)
    return out


def _rolling(series: pd.Series) -> pd.Series:
    return series.rolling(ROLLING_DAYS, min_periods=1).mean()


def _with_lead_in(rows: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """The days, plus the 6 before `first`: the rolling mean of the first day needs them."""
    return _per_day(rows, first - timedelta(days=ROLLING_DAYS - 1), last)


# --- the figures ---------------------------------------------------------------------------------------------------


def _traffic_figure(rows: pd.DataFrame, first: date, last: date, scope: str, period: str) -> Figure:
    figure = Figure(figsize=(11, 7), dpi=DPI, layout="constrained")
    if rows.empty:
        return _no_data(figure, f"Traffic, {scope}")
    per_day = _with_lead_in(rows, first, last)
    shown = per_day.loc[pd.Timestamp(first):]
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    figure.suptitle(f"Traffic, {scope}: {period}", fontsize=13)
    for axes, metric, color in ((top, "visits", VISITS_COLOR), (top, "clicks", CLICKS_COLOR),
                                (bottom, "impressions", IMPRESSIONS_COLOR)):
        _daily_and_rolling(axes, shown.index, shown[metric], _rolling(per_day[metric]).loc[shown.index], metric, color)
    top.set_ylabel("visits, clicks per day")
    top.set_title("Matomo visits and Search Console clicks", fontsize=10, loc="left")
    bottom.set_ylabel("impressions per day")
    bottom.set_title("Search Console impressions", fontsize=10, loc="left")
    for axes in (top, bottom):
        _mark_provisional(axes, shown["provisional"])
        axes.set_ylim(bottom=0)
        axes.yaxis.set_major_formatter(THOUSANDS)
        axes.legend(loc="upper left", fontsize=8)
    _date_axis(bottom)
    return figure


def _sites_figure(rows: pd.DataFrame, first: date, last: date, period: str) -> Figure:
    ranking = _top_sites(rows, last)
    if not ranking:
        return _no_data(Figure(figsize=(11, 5), dpi=DPI, layout="constrained"), "Top sites by clicks")
    columns = 4
    lines = math.ceil(len(ranking) / columns)
    figure = Figure(figsize=(16, 2.8 * lines + 0.8), dpi=DPI, layout="constrained")
    figure.suptitle(f"Top {len(ranking)} sites by clicks in the last 28 days: clicks and visits per day, {period}",
                    fontsize=13)
    grid = figure.subplots(lines, columns, sharex=True, squeeze=False)
    for axes, (domain, clicks) in zip(grid.flat, ranking):
        per_day = _per_day(rows[rows["domain"] == domain], first, last)
        axes.plot(per_day.index, per_day["visits"], color=VISITS_COLOR, linewidth=1.2, label="visits")
        axes.plot(per_day.index, per_day["clicks"], color=CLICKS_COLOR, linewidth=1.2, label="clicks")
        _mark_provisional(axes, per_day["provisional"], label=False)
        axes.set_title(f"{domain}\n{clicks:,} clicks in 28 d", fontsize=9)
        axes.set_ylim(bottom=0)
        axes.yaxis.set_major_formatter(THOUSANDS)
        axes.tick_params(labelsize=8)
        _date_axis(axes)
    for axes in list(grid.flat)[len(ranking):]:
        axes.set_visible(False)
    grid.flat[0].legend(loc="upper left", fontsize=7)
    return figure


def _position_figure(rows: pd.DataFrame, first: date, last: date, scope: str, period: str) -> Figure:
    figure = Figure(figsize=(11, 5), dpi=DPI, layout="constrained")
    per_day = _with_lead_in(rows, first, last)
    if rows.empty or not (per_day["position_impressions"] > 0).any():
        return _no_data(figure, f"Average position in Google, {scope}")
    shown = per_day.loc[pd.Timestamp(first):]
    # the rolling position is weighted too: a day with 10 impressions must not count as much as one with 10,000
    weight = per_day["position_impressions"].rolling(ROLLING_DAYS, min_periods=1).sum()
    rolling = (per_day["position_weight"].rolling(ROLLING_DAYS, min_periods=1).sum() / weight.where(weight > 0))
    axes = figure.subplots()
    figure.suptitle(f"Average position in Google (weighted by impressions), {scope}: {period}", fontsize=13)
    _daily_and_rolling(axes, shown.index, shown["position"], rolling.loc[shown.index], "position", POSITION_COLOR)
    _mark_provisional(axes, shown["provisional"])
    axes.invert_yaxis()  # position 1 is the top of the results page: it belongs at the top
    axes.set_ylabel("average position (1 = top)")
    axes.legend(loc="lower left", fontsize=8)
    _date_axis(axes)
    return figure


def _top_sites(rows: pd.DataFrame, last: date) -> list[tuple[str, int]]:
    """The SMALL_MULTIPLES domains with the most clicks in the 28 days through `last` (domain breaks ties)."""
    start = pd.Timestamp(last - timedelta(days=27))
    window = rows[(rows["date"] >= start) & (rows["date"] <= pd.Timestamp(last))]
    clicks = window.groupby("domain")["clicks"].sum().reindex(rows["domain"].unique(), fill_value=0.0).fillna(0.0)
    ranked = sorted(clicks.items(), key=lambda item: (-item[1], item[0]))
    return [(domain, int(round(total))) for domain, total in ranked[:SMALL_MULTIPLES]]


# --- drawing helpers -----------------------------------------------------------------------------------------------


def _daily_and_rolling(axes: Axes, days: pd.DatetimeIndex, values: pd.Series, rolling: pd.Series, name: str,
                       color: str) -> None:
    axes.plot(days, values, color=color, linewidth=0.8, alpha=0.45, marker=".", markersize=3, label=f"{name} per day")
    axes.plot(days, rolling, color=color, linewidth=2.0, label=f"{name}, {ROLLING_DAYS}-day mean")
    axes.grid(True, axis="y", alpha=0.3)


def _mark_provisional(axes: Axes, provisional: pd.Series, *, label: bool = True) -> None:
    """Hatch the runs of days whose numbers may still move, each day a full day wide."""
    half_day = pd.Timedelta(hours=12)
    runs: list[list[pd.Timestamp]] = []
    for day, flagged in provisional.items():
        if not flagged:
            continue
        if runs and day - runs[-1][1] == pd.Timedelta(days=1):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    for index, (start, end) in enumerate(runs):
        axes.axvspan(start - half_day, end + half_day, label="not final yet" if label and index == 0 else None,
                     **PROVISIONAL_STYLE)


def _date_axis(axes: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _no_data(figure: Figure, title: str) -> Figure:
    axes = figure.subplots()
    axes.set_axis_off()
    figure.suptitle(title, fontsize=13)
    axes.text(0.5, 0.5, "no data yet", ha="center", va="center", fontsize=22, color="#777777",
              transform=axes.transAxes)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    """Render to a temporary file in the same directory, then rename it over `path` (atomic on one filesystem)."""
    FigureCanvasAgg(figure)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the chart from a web server reading the directory
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
