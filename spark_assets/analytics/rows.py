"""Provider answers turned into the rows the analytics tables hold, each labelled final or provisional.

Pure: the assets hand in what the clients returned (objects with the clients' attribute names) and write what comes
back. Empty days are explicit: a day Matomo answered `[]` for, or Google had no rows for, is a row of zeros (it was
asked and answered), so "no traffic" and "never fetched" stay different things in the tables and in the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable
from uuid import UUID

from spark_assets.analytics.days import days_between, matomo_is_final, search_console_is_final

FINAL, PROVISIONAL = "final", "provisional"
#: the detail rows kept per site, day and dimension (the most clicked, then the most seen): enough for "top queries"
#: and "top pages" on sites this size; `pages_with_impressions` counts every page Google named, before this cap
DETAIL_ROWS_PER_DAY = 250


@dataclass(frozen=True)
class MatomoDay:
    site_id: UUID
    day: date
    visits: int
    unique_visitors: int
    actions: int
    bounce_rate: float
    avg_time_on_site: int
    data_state: str


@dataclass(frozen=True)
class SearchDay:
    site_id: UUID
    day: date
    clicks: int
    impressions: int
    ctr: float
    position: float | None
    pages_with_impressions: int
    data_state: str


@dataclass(frozen=True)
class SearchDetail:
    site_id: UUID
    day: date
    dimension: str  # "query" or "page"
    key: str
    clicks: int
    impressions: int
    ctr: float
    position: float | None


def matomo_days(site_id: UUID, zone: str, visits: Iterable[Any], start: date, end: date, now: datetime) -> list[MatomoDay]:
    """One row per day from `start` to `end` of a site's `DailyVisits` (days outside are dropped: a site is not asked
    about days before its first publishing day, even when one call covered them for other sites)."""
    rows = []
    for v in visits:
        if start <= v.date <= end:
            state = FINAL if matomo_is_final(v.date, zone, now) else PROVISIONAL
            rows.append(MatomoDay(site_id, v.date, v.visits, v.unique_visitors, v.actions,
                                  min(max(v.bounce_rate, 0.0), 1.0), v.avg_time_on_site, state))
    return rows


def search_days(site_id: UUID, daily: Any, start: date, end: date, pages_per_day: dict[date, int]) -> list[SearchDay]:
    """One row per day from `start` to `end` of a site's `DailySearch` (days Google had no rows for are zeros);
    `pages_per_day` counts the pages with impressions each day (from the page detail)."""
    rows = []
    for day in days_between(start, end):
        state = FINAL if search_console_is_final(day, daily.first_incomplete_date) else PROVISIONAL
        row = daily.days.get(day)
        if row is None or row.impressions <= 0:
            rows.append(SearchDay(site_id, day, 0, 0, 0.0, None, 0, state))
            continue
        clicks, impressions = int(row.clicks), int(row.impressions)
        rows.append(SearchDay(site_id, day, clicks, impressions, _ctr(clicks, impressions), _position(row.position),
                              pages_per_day.get(day, 0), state))
    return rows


def search_details(site_id: UUID, dimension: str, rows: Iterable[Any], start: date, end: date,
                   limit: int = DETAIL_ROWS_PER_DAY) -> tuple[list[SearchDetail], dict[date, int]]:
    """The top `limit` rows per day of a (date, query) or (date, page) answer, and how many distinct keys had
    impressions each day (all of them, not only the kept ones)."""
    by_day: dict[date, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        day, key = date.fromisoformat(row.keys[0]), row.keys[1]
        if start <= day <= end and row.impressions > 0:
            by_day[day][key] = row  # Google names a key once a day; a repeat would be the same row
    details, counts = [], {}
    for day, keyed in sorted(by_day.items()):
        counts[day] = len(keyed)
        top = sorted(keyed.values(), key=lambda r: (-r.clicks, -r.impressions, r.keys[1]))[:limit]
        for row in top:
            clicks, impressions = int(row.clicks), int(row.impressions)
            details.append(SearchDetail(site_id, day, dimension, row.keys[1], clicks, impressions,
                                        _ctr(clicks, impressions), _position(row.position)))
    return details, counts


def _ctr(clicks: int, impressions: int) -> float:
    return round(min(clicks / impressions, 1.0), 6) if impressions else 0.0


def _position(position: float) -> float | None:
    """Google's average position, 1 at best; an answer below 1 (none should be) is stored as 1."""
    return round(max(float(position), 1.0), 2) if position else None
