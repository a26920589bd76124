"""Which days an analytics run asks for, and which of the answers are final.

The rules, in one place for the assets, the schedule and the freshness check:

* The daily schedule asks for the trailing `SCHEDULE_WINDOW_DAYS` days (yesterday back), both sources. Matomo's day is
  final `MATOMO_FINAL_AFTER` after it ends in the site's time zone, so a day is only ever fetched final when the window
  reaches back three days or more (four for Hawaii at 07:00 UTC); five covers every US zone with a day to spare, and
  gives Search Console the same window (its final data lags two to three days).
* A day older than `FRESHNESS_DAYS` must be final in every source the site is provisioned with, from the site's first
  publishing day on: before it the site had no pages, so nobody asks for its traffic.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: the schedule's window: yesterday and the four days before it
SCHEDULE_WINDOW_DAYS = 5
#: a Matomo day is final this long after it ends in the site's time zone (its archives are complete by then)
MATOMO_FINAL_AFTER = timedelta(days=2)
#: a day older than this (in days before today, UTC) must be final in every source
FRESHNESS_DAYS = 4


class InvalidTimeZone(ValueError):
    """A time zone name that is not in the IANA database."""


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimeZone(f"unknown time zone {name!r}: use an IANA name such as America/New_York") from None


def schedule_window(tick: date) -> tuple[date, date]:
    """The first and last day (inclusive) a daily tick on `tick` asks for: the trailing window ending yesterday."""
    return tick - timedelta(days=SCHEDULE_WINDOW_DAYS), tick - timedelta(days=1)


def matomo_is_final(day: date, zone: str, now: datetime) -> bool:
    """Whether Matomo's numbers for `day` in the site's time zone `zone` are final at `now` (aware)."""
    ends = datetime.combine(day + timedelta(days=1), time(0), tzinfo=time_zone(zone))
    return now >= ends + MATOMO_FINAL_AFTER


def search_console_is_final(day: date, first_incomplete: date | None) -> bool:
    """Whether Google's numbers for `day` are final, given the answer's metadata.firstIncompleteDate (None: the
    requested range held no incomplete data, so every day in it is final)."""
    return first_incomplete is None or day < first_incomplete


def site_days(first_published: date | None, start: date, end: date) -> tuple[date, date] | None:
    """The part of `start`..`end` a site is asked about: from its first publishing day on; None when it had no page
    before `end` (nothing to ask)."""
    if first_published is None or first_published > end:
        return None
    return max(start, first_published), end


def freshness_cutoff(today: date) -> date:
    """The newest day that must be final by `today`."""
    return today - timedelta(days=FRESHNESS_DAYS + 1)


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def aligned_chunks(days: list[date], origin: date, size: int) -> dict[tuple[date, date], list[date]]:
    """`days` grouped into the fixed runs of `size` days counted from `origin` ((first, last) of each run that holds
    one of them), so runs asked for on different days, or for different sites, line up and can be shared."""
    chunks: dict[tuple[date, date], list[date]] = {}
    for day in days:
        start = origin + timedelta(days=(day - origin).days // size * size)
        chunks.setdefault((start, start + timedelta(days=size - 1)), []).append(day)
    return chunks
