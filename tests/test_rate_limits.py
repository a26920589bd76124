"""The shared rate limiter: a provider budget counted in PostgreSQL holds for every process together (two limiters here
stand for two runs), keeps budgets apart, and names them without revealing the credential."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from spark_resources.providers.cloudflare import CloudflareClient
from spark_resources.providers.http import SharedRateLimiter, budget_key
from spark_resources.simulators.base import SimulatedClock
from spark_resources.simulators.cloudflare import CloudflareSimulator

TOKEN = "cf-token-for-limits"


def _burst(limiters: list[SharedRateLimiter], per_limiter: int) -> list[float]:
    """Each limiter in its own thread acquires `per_limiter` times; when each call was let through."""
    stamps: list[float] = []
    lock = threading.Lock()

    def run(limiter: SharedRateLimiter) -> None:
        for _ in range(per_limiter):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=run, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(stamps)


def test_two_processes_together_stay_within_one_budget(engine):
    limiters = [SharedRateLimiter(engine, "cloudflare:test", calls=5, period=1.0) for _ in range(2)]
    stamps = _burst(limiters, per_limiter=6)
    assert len(stamps) == 12
    # no one-second window holds more than five calls, whoever made them
    assert all(stamps[i + 5] - stamps[i] >= 1.0 for i in range(len(stamps) - 5))
    assert stamps[-1] - stamps[0] >= 2.0  # twelve calls at five a second need two full windows


def test_budgets_do_not_share_their_windows(engine):
    for _ in range(3):
        SharedRateLimiter(engine, "namecheap:a", calls=3, period=60).acquire()
    started = time.monotonic()
    SharedRateLimiter(engine, "namecheap:b", calls=3, period=60).acquire()  # another key: not held back
    assert time.monotonic() - started < 1.0
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT budget, count(*) FROM provider_calls GROUP BY budget")).all())
    assert rows == {"namecheap:a": 3, "namecheap:b": 1}


def test_budget_names_do_not_reveal_the_credential():
    key = budget_key("cloudflare", TOKEN)
    assert key.startswith("cloudflare:") and TOKEN not in key and len(key) == len("cloudflare:") + 16
    assert key == budget_key("cloudflare", TOKEN) != budget_key("cloudflare", TOKEN + "x")


def test_two_clients_on_one_token_never_meet_the_providers_limit(engine):
    with CloudflareSimulator(token=TOKEN, requests_per_window=5, window_seconds=1.0, lockout_seconds=60) as cloudflare:
        clients = [
            CloudflareClient(cloudflare.base_url, TOKEN, attempts=1,  # a 429 would fail the call at once
                             limiter=SharedRateLimiter(engine, budget_key("cloudflare", TOKEN), calls=5, period=1.0))
            for _ in range(2)
        ]
        failures: list[Exception] = []

        def call(client: CloudflareClient) -> None:
            for _ in range(6):
                try:
                    client.find_zone("nothing.example")
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    failures.append(exc)

        threads = [threading.Thread(target=call, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == [] and len(cloudflare.calls) == 12


def test_the_shared_limiter_keeps_every_window_of_a_budget(engine):
    # Namecheap's minute, hour and day, scaled down, on a simulated clock: an hour passes in no time
    clock = SimulatedClock()
    limiter = SharedRateLimiter(engine, "namecheap:windows", windows=[(2, 60), (3, 3600), (4, 86400)],
                                clock=clock.time, sleep=clock.sleep)
    start = clock.time()
    let_through = []
    for _ in range(5):
        limiter.acquire()
        let_through.append(clock.time() - start)
    margin = 1.02  # each window is kept 2% + 50 ms longer than the provider's
    assert let_through == pytest.approx([0, 0, 60 * margin + 0.05, 3600 * margin + 0.05, 86400 * margin + 0.05])
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM provider_calls WHERE budget = 'namecheap:windows'")
                              ).scalar()
    assert stored == 3  # the first two calls left the day's window and were deleted; the rest still count
