"""Bulk writes for the content stages: PostgreSQL COPY from a stream of rows, and staging tables for atomic merges.

COPY is what keeps a 50,000-article campaign close to the speed of PostgreSQL itself (see BENCHMARKS.md); rows arrive as
an iterator and are sent in batches, so nothing holds the whole campaign in memory.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from sqlalchemy.engine import Connection


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY `rows` into `table` inside the connection's current transaction; returns how many were written."""
    count = 0
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    finally:
        cursor.close()
    return count


def create_staging_table(conn: Connection, name: str, like: str, columns: Sequence[str] | None = None) -> None:
    """A temporary table shaped like `like` (all columns, or only `columns`), dropped when the transaction ends."""
    if columns:
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {', '.join(columns)} FROM {like} WITH NO DATA"
        )
    else:
        conn.exec_driver_sql(f"CREATE TEMP TABLE {name} (LIKE {like} INCLUDING DEFAULTS) ON COMMIT DROP")
