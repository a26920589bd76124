"""Daily analytics in SQL: which sites a run asks about, the source tables written with the ledger's rule, the
`daily_analytics` merge, the freshness check's query, the report's frames, and each site's last analytics error.

The ledger's rule (`analytics_ledger`, a view over `matomo_daily` and `search_console_daily`): final numbers are never
replaced by provisional ones; provisional ones are replaced by whatever comes next. So a re-run converges, a backfill
over final days rewrites the same numbers, and late data replaces early data until Google or Matomo call it final.
Every statement is scoped to the site ids the run was given; another site's rows are never touched.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import date, datetime
from typing import Iterable, Sequence
from uuid import UUID

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spark_assets.analytics.rows import MatomoDay, SearchDay, SearchDetail
from spark_resources.bulk import copy_rows, create_staging_table

MATOMO, SEARCH_CONSOLE = "matomo", "search_console"
#: how each source names itself in `sites.error_message`; a successful fetch clears its own message only
ERROR_LABELS = {MATOMO: "Matomo analytics", SEARCH_CONSOLE: "Search Console analytics"}


@dataclass(frozen=True)
class AnalyticsSite:
    id: UUID
    domain: str
    timezone: str
    matomo_site_id: int | None
    gsc_account_id: UUID | None
    first_published: date | None


#: an active site's first publishing day: the day it went live (`launched_on`, for a site live before it came to
#: the factory), otherwise its first published article's (UTC)
_FIRST_PUBLISHED = ("coalesce(s.launched_on, (SELECT min(g.published_at)::date FROM generated_articles g "
                    "WHERE g.site_id = s.id AND g.published_at IS NOT NULL))")
#: which sites each source asks about: provisioned for it
_PROVISIONED = {
    MATOMO: "s.matomo_site_id IS NOT NULL",
    SEARCH_CONSOLE: "s.gsc_verification_status = 'verified' AND s.gsc_account_id IS NOT NULL",
}


def first_publishing_day(conn: Connection, site_id: UUID) -> date | None:
    """The day a site's analytics start (`_FIRST_PUBLISHED`), or None when it has published nothing yet."""
    return conn.execute(sa.text(f"SELECT {_FIRST_PUBLISHED} FROM sites s WHERE s.id = :s"), {"s": site_id}).scalar_one()


def analytics_sites(conn: Connection, source: str, end: date, domains: Sequence[str] | None = None) -> list[AnalyticsSite]:
    """The active sites provisioned for `source` that had published a page by `end` (only `domains`, if given),
    in domain order."""
    rows = conn.execute(
        sa.text(
            f"""SELECT * FROM (
                    SELECT s.id, s.domain, s.timezone, s.matomo_site_id, s.gsc_account_id,
                           {_FIRST_PUBLISHED} AS first_published
                    FROM sites s
                    WHERE s.status = 'active' AND {_PROVISIONED[source]}
                      AND (CAST(:domains AS text[]) IS NULL OR s.domain = ANY(CAST(:domains AS text[])))
                ) t WHERE first_published <= :end ORDER BY domain"""
        ),
        {"domains": list(domains) if domains else None, "end": end},
    )
    return [AnalyticsSite(**row._mapping) for row in rows]


@dataclass(frozen=True)
class Written:
    """What one write did: rows written (new or replaced), of them new, provisional rows settled as final, and the
    provisional answers not written because the day was already final."""

    written: int = 0
    new: int = 0
    settled: int = 0
    kept_final: int = 0


_MATOMO_COLUMNS = ("site_id", "day", "visits", "unique_visitors", "actions", "bounce_rate", "avg_time_on_site",
                   "data_state")
_SEARCH_COLUMNS = ("site_id", "day", "clicks", "impressions", "ctr", "position", "pages_with_impressions", "data_state")
_DETAIL_COLUMNS = ("site_id", "day", "dimension", "key", "clicks", "impressions", "ctr", "position")


def write_matomo(conn: Connection, rows: Iterable[MatomoDay], fetched_at: datetime) -> Written:
    return _write_days(conn, "matomo_daily", _MATOMO_COLUMNS, rows, fetched_at)


def write_search_console(conn: Connection, days: Iterable[SearchDay], details: Iterable[SearchDetail],
                         fetched_at: datetime) -> Written:
    """The days, and the detail rows of each day written (a day kept final keeps its detail too)."""
    written = _write_days(conn, "search_console_daily", _SEARCH_COLUMNS, days, fetched_at)
    create_staging_table(conn, "staged_detail", "search_console_queries")
    copy_rows(conn, "staged_detail", _DETAIL_COLUMNS, (astuple(d) for d in details))
    conn.exec_driver_sql(
        """DELETE FROM search_console_queries q USING written_days w WHERE q.site_id = w.site_id AND q.day = w.day"""
    )
    conn.exec_driver_sql(
        f"""INSERT INTO search_console_queries ({', '.join(_DETAIL_COLUMNS)})
            SELECT {', '.join('d.' + c for c in _DETAIL_COLUMNS)} FROM staged_detail d
            JOIN written_days w ON w.site_id = d.site_id AND w.day = d.day"""
    )
    return written


def _write_days(conn: Connection, table: str, columns: Sequence[str], rows: Iterable, fetched_at: datetime) -> Written:
    """Upsert `rows` into `table` (keyed by site and day) by the ledger's rule, in the caller's transaction; the
    (site, day) pairs written are left in the temporary table `written_days` for the caller's detail rows."""
    create_staging_table(conn, "staged_days", table, list(columns))
    copy_rows(conn, "staged_days", columns, (astuple(row) for row in rows))
    counts = conn.execute(
        sa.text(
            f"""SELECT count(*) FILTER (WHERE t.site_id IS NULL) AS new,
                       count(*) FILTER (WHERE t.data_state = 'provisional' AND s.data_state = 'final') AS settled,
                       count(*) FILTER (WHERE t.data_state = 'final' AND s.data_state = 'provisional') AS kept_final
                FROM staged_days s LEFT JOIN {table} t ON t.site_id = s.site_id AND t.day = s.day"""
        )
    ).one()
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns[2:], "fetched_at"))
    conn.exec_driver_sql("CREATE TEMP TABLE written_days (site_id uuid, day date) ON COMMIT DROP")
    written = conn.execute(
        sa.text(
            f"""WITH upserted AS (
                    INSERT INTO {table} ({', '.join(columns)}, fetched_at)
                    SELECT {', '.join(columns)}, :fetched_at FROM staged_days
                    ON CONFLICT (site_id, day) DO UPDATE SET {updates}
                    WHERE {table}.data_state = 'provisional' OR EXCLUDED.data_state = 'final'
                    RETURNING site_id, day)
                INSERT INTO written_days SELECT site_id, day FROM upserted"""
        ),
        {"fetched_at": fetched_at},
    ).rowcount
    return Written(written=written, new=counts.new, settled=counts.settled, kept_final=counts.kept_final)


def merge_daily_analytics(conn: Connection, start: date, end: date, site_ids: Sequence[UUID] | None = None) -> int:
    """Upsert `daily_analytics` from the two source tables for `start`..`end` (only `site_ids`, if given); the rows
    inserted or changed. A row whose numbers did not change is left alone."""
    columns = {
        "matomo_visits": "m.visits", "matomo_unique_visitors": "m.unique_visitors", "matomo_actions": "m.actions",
        "matomo_bounce_rate": "m.bounce_rate", "matomo_avg_time_on_site": "m.avg_time_on_site",
        "gsc_clicks": "g.clicks", "gsc_impressions": "g.impressions", "gsc_ctr": "g.ctr", "gsc_position": "g.position",
        "gsc_pages_with_impressions": "g.pages_with_impressions",
        "matomo_final": "m.data_state = 'final'", "gsc_final": "g.data_state = 'final'",
    }
    scope = "day BETWEEN :start AND :end AND (CAST(:sites AS uuid[]) IS NULL OR site_id = ANY(CAST(:sites AS uuid[])))"
    changed = " OR ".join(f"daily_analytics.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in columns)
    return conn.execute(
        sa.text(
            f"""INSERT INTO daily_analytics (date, site_id, {', '.join(columns)})
                SELECT coalesce(m.day, g.day), coalesce(m.site_id, g.site_id), {', '.join(columns.values())}
                FROM (SELECT * FROM matomo_daily WHERE {scope}) m
                FULL JOIN (SELECT * FROM search_console_daily WHERE {scope}) g
                  ON g.site_id = m.site_id AND g.day = m.day
                ON CONFLICT (date, site_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in columns)}
                WHERE {changed}"""
        ),
        {"start": start, "end": end, "sites": [str(s) for s in site_ids] if site_ids is not None else None},
    ).rowcount


@dataclass(frozen=True)
class StaleSite:
    domain: str
    source: str
    missing: int  # days never fetched
    provisional: int  # days fetched, not final yet
    oldest: date


#: every (site, source, day) from the site's first publishing day (not before :earliest) up to :cutoff that is missing
#: or not final, for the sources the site is provisioned with (active sites only)
_UNSETTLED_DAYS = f"""
    WITH s AS (
        SELECT s.id, s.domain, {_PROVISIONED[MATOMO]} AS matomo, {_PROVISIONED[SEARCH_CONSOLE]} AS search_console,
               {_FIRST_PUBLISHED} AS first_published
        FROM sites s WHERE s.status = 'active'),
    expected AS (
        SELECT s.id, s.domain, v.source, d::date AS day
        FROM s CROSS JOIN LATERAL (VALUES ('{MATOMO}', s.matomo), ('{SEARCH_CONSOLE}', s.search_console))
             AS v(source, provisioned)
        CROSS JOIN LATERAL generate_series(greatest(s.first_published, :earliest), :cutoff, interval '1 day') AS d
        WHERE v.provisioned AND s.first_published IS NOT NULL)
    SELECT e.domain, e.source, e.day, l.data_state
    FROM expected e
    LEFT JOIN analytics_ledger l ON l.source = e.source AND l.site_id = e.id AND l.day = e.day
    WHERE l.data_state IS DISTINCT FROM 'final'"""


def stale_sites(conn: Connection, cutoff: date, earliest: date) -> list[StaleSite]:
    """Every active site and source with a day from its first publishing day (not before `earliest`) up to `cutoff`
    that is missing or not final, for the sources the site is provisioned with."""
    rows = conn.execute(
        sa.text(
            f"""SELECT domain, source, count(*) FILTER (WHERE data_state IS NULL) AS missing,
                       count(*) FILTER (WHERE data_state = 'provisional') AS provisional, min(day) AS oldest
                FROM ({_UNSETTLED_DAYS}) u GROUP BY domain, source ORDER BY domain, source"""
        ),
        {"cutoff": cutoff, "earliest": earliest},
    )
    return [StaleSite(**row._mapping) for row in rows]


def unsettled_days(conn: Connection, cutoff: date, earliest: date) -> dict[str, list[date]]:
    """Each active site's days up to `cutoff` missing or not final in any source it is provisioned with, in order."""
    rows = conn.execute(
        sa.text(f"SELECT DISTINCT domain, day FROM ({_UNSETTLED_DAYS}) u ORDER BY domain, day"),
        {"cutoff": cutoff, "earliest": earliest},
    )
    days: dict[str, list[date]] = {}
    for row in rows:
        days.setdefault(row.domain, []).append(row.day)
    return days


def record_errors(conn: Connection, source: str, errors: dict[UUID, str]) -> None:
    """Each failed site's `error_message`, prefixed with the source's label and the domain."""
    label = ERROR_LABELS[source]
    for site_id, message in errors.items():
        conn.execute(
            sa.text("UPDATE sites SET error_message = :label || ' for ' || domain || ': ' || :m WHERE id = :s"),
            {"label": label, "m": message, "s": site_id},
        )


def clear_errors(conn: Connection, source: str, site_ids: Sequence[UUID]) -> None:
    """Clear the error message of these sites when it is this source's own (another step's stays)."""
    if site_ids:
        conn.execute(
            sa.text(
                """UPDATE sites SET error_message = NULL
                   WHERE id = ANY(CAST(:sites AS uuid[])) AND error_message LIKE :label || ' for %'"""
            ),
            {"sites": [str(s) for s in site_ids], "label": ERROR_LABELS[source]},
        )


def report_frames(conn: Connection, start: date, end: date, domain: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What `analytics.report.build_report` reads: the daily rows from `start` to `end` and one row per active
    site (first publishing day, pages published, distinct pages with impressions in the last 28 days to `end`)."""
    params = {"start": start, "end": end, "domain": domain}
    daily = pd.DataFrame(
        conn.execute(
            sa.text(
                """SELECT s.domain, a.date, a.matomo_visits AS visits, a.matomo_unique_visitors AS unique_visitors,
                          a.matomo_actions AS actions, a.gsc_clicks AS clicks, a.gsc_impressions AS impressions,
                          a.gsc_position AS position,
                          coalesce(a.matomo_final, true) AND coalesce(a.gsc_final, true) AS final
                   FROM daily_analytics a JOIN sites s ON s.id = a.site_id
                   WHERE s.status = 'active' AND a.date BETWEEN :start AND :end
                     AND (CAST(:domain AS text) IS NULL OR s.domain = :domain)
                   ORDER BY s.domain, a.date"""
            ),
            params,
        ).mappings().all(),
        columns=["domain", "date", "visits", "unique_visitors", "actions", "clicks", "impressions", "position", "final"],
    )
    for column in ("visits", "unique_visitors", "actions", "clicks", "impressions"):
        daily[column] = daily[column].astype("Int64")
    daily["position"] = daily["position"].astype("Float64")
    sites = pd.DataFrame(
        conn.execute(
            sa.text(
                f"""SELECT s.domain, {_FIRST_PUBLISHED} AS first_published,
                           (SELECT count(*) FROM generated_articles g WHERE g.site_id = s.id AND g.is_published)
                               AS pages_published,
                           (SELECT count(DISTINCT q.key) FROM search_console_queries q
                             WHERE q.site_id = s.id AND q.dimension = 'page' AND q.impressions > 0
                               AND q.day BETWEEN CAST(:end AS date) - 27 AND :end) AS pages_with_impressions
                    FROM sites s WHERE s.status = 'active' AND (CAST(:domain AS text) IS NULL OR s.domain = :domain)
                    ORDER BY s.domain"""
            ),
            params,
        ).mappings().all(),
        columns=["domain", "first_published", "pages_published", "pages_with_impressions"],
    )
    return daily, sites


def site_ids(conn: Connection, domains: Sequence[str]) -> list[UUID]:
    """The ids of these registered sites (unknown domains are left out)."""
    rows = conn.execute(sa.text("SELECT id FROM sites WHERE domain = ANY(CAST(:d AS text[]))"), {"d": list(domains)})
    return [row.id for row in rows]


def daily_totals(conn: Connection, start: date, end: date, site_ids: Sequence[UUID] | None = None) -> dict[str, int]:
    """Sites, visits, clicks and impressions in `daily_analytics` from `start` to `end`, and its rows not final."""
    row = conn.execute(
        sa.text(
            """SELECT count(DISTINCT site_id) AS sites, coalesce(sum(matomo_visits), 0) AS visits,
                      coalesce(sum(gsc_clicks), 0) AS clicks, coalesce(sum(gsc_impressions), 0) AS impressions,
                      count(*) FILTER (WHERE matomo_final IS FALSE OR gsc_final IS FALSE) AS not_final
               FROM daily_analytics
               WHERE date BETWEEN :start AND :end
                 AND (CAST(:sites AS uuid[]) IS NULL OR site_id = ANY(CAST(:sites AS uuid[])))"""
        ),
        {"start": start, "end": end, "sites": [str(s) for s in site_ids] if site_ids is not None else None},
    ).one()
    return {key: int(value) for key, value in row._mapping.items()}
