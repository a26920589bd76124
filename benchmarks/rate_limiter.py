"""What the shared rate limiter costs per provider call: `SharedRateLimiter.acquire` against the database, with a
budget far from its limit (so nothing waits), from one or several threads (standing for parallel runs).

    .venv/bin/python benchmarks/rate_limiter.py                   # 2,000 acquires, one thread, embedded PostgreSQL
    .venv/bin/python benchmarks/rate_limiter.py --threads 4 --calls 4000

Uses DATABASE_URL when set, else the embedded server under $SPARK_HOME (migrated on first use). The rows it adds are
deleted at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from spark_resources.database import get_engine  # noqa: E402
from spark_resources.providers.http import SharedRateLimiter  # noqa: E402

BUDGET = "benchmark:rate-limiter"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="acquires in all")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    engine = get_engine()
    limiter = SharedRateLimiter(engine, BUDGET, calls=10**9, period=300)
    limiter.acquire()  # connect and warm up
    latencies: list[float] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        mine = []
        for _ in range(n):
            started = time.perf_counter()
            limiter.acquire()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    per_thread = args.calls // args.threads
    threads = [threading.Thread(target=work, args=(per_thread,)) for _ in range(args.threads)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM provider_calls WHERE budget = :b"), {"b": BUDGET})
    latencies.sort()
    print(f"{len(latencies)} acquires, {args.threads} thread(s): {elapsed:.2f} s, {len(latencies) / elapsed:.0f}/s; "
          f"latency median {statistics.median(latencies) * 1000:.2f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms")


if __name__ == "__main__":
    main()
