"""What every provider client shares: typed errors, retries on transient faults only, and client-side rate limiting.

Retries come from tenacity: bounded attempts, exponential back-off with jitter, and the provider's `retry-after` honoured
when it sends one. Only transient faults are retried (429, the provider's own throttling codes, 5xx, timeouts, resets);
authentication and permission errors fail at once. Error messages carry the provider's code and message and never a
credential: clients build them from the response body, not from the request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Callable, Protocol, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

T = TypeVar("T")
#: the limiter's advisory locks live in their own namespace (the first key of the two-key form)
_LOCK_NAMESPACE = 0x5350  # "SP"


class ProviderError(RuntimeError):
    """A provider refused a request. `code` and `message` are the provider's own; `status` the HTTP status."""

    def __init__(self, provider: str, message: str, *, code: int | str | None = None, status: int | None = None):
        self.provider = provider
        self.code = code
        self.status = status
        self.provider_message = message
        detail = f" (code {code})" if code is not None else ""
        super().__init__(f"{provider}: {message}{detail}" + (f" [HTTP {status}]" if status else ""))


class TransientProviderError(ProviderError):
    """A fault worth retrying: throttling, a server error, a timeout. `retry_after` in seconds when the provider said."""

    def __init__(self, *args, retry_after: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class AuthenticationError(ProviderError):
    """Bad or insufficient credentials: never retried."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (TransientProviderError, httpx.TimeoutException, httpx.TransportError))


def _wait(max_wait: float) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential(multiplier=0.2, max=max_wait) + wait_random(0, 0.2)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientProviderError) and exc.retry_after is not None:
            return min(exc.retry_after, max_wait)
        return backoff(state)

    return wait


def with_retries(provider: str, call: Callable[[], T], *, attempts: int, max_wait: float) -> T:
    """Run `call`, retrying transient faults up to `attempts` times in all; then raise a ProviderError."""
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=_wait(max_wait),
        reraise=True,
    )
    try:
        return retrying(call)
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise TransientProviderError(
            provider, f"gave up after {attempts} attempts: {type(exc).__name__}", code="network"
        ) from None


class RateLimiter:
    """At most `calls` per `period` seconds from this process (a sliding window); `acquire` sleeps until allowed.

    The window is kept 2% (at least 50 ms) longer than the provider's: the provider counts arrivals, which lag and
    jitter behind our sends, and a burst timed exactly to its window would tip over it."""

    def __init__(self, calls: int, period: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.calls = calls
        self.period = period * 1.02 + 0.05
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.period:
                    self._sent.popleft()
                if len(self._sent) < self.calls:
                    self._sent.append(now)
                    return
                wait = self.period - (now - self._sent[0])
            self._sleep(max(wait, 0.001))


class Limiter(Protocol):
    def acquire(self) -> None: ...


class SharedRateLimiter:
    """RateLimiter's sliding window, counted in PostgreSQL (`provider_calls`) so that every process calling with the
    same budget (runs in parallel or back to back, sensors) shares it: what the provider counts is all of them.

    `budget` names what the provider limits, e.g. one Cloudflare token; `budget_key` derives a name that does not
    reveal the credential. Each acquire is one short transaction under an advisory lock on the budget."""

    def __init__(self, engine: "Engine", budget: str, calls: int, period: float, sleep=time.sleep):
        self.engine = engine
        self.budget = budget
        self.calls = calls
        self.period = period * 1.02 + 0.05  # the same margin as RateLimiter
        self._sleep = sleep

    def acquire(self) -> None:
        from sqlalchemy import text

        params = {"budget": self.budget, "period": self.period, "calls": self.calls, "ns": _LOCK_NAMESPACE}
        while True:
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:budget))"), params)
                conn.execute(
                    text("""DELETE FROM provider_calls WHERE budget = :budget
                            AND called_at < clock_timestamp() - make_interval(secs => :period)"""),
                    params,
                )
                used, wait = conn.execute(
                    text("""SELECT count(*), extract(epoch FROM min(called_at) + make_interval(secs => :period)
                                                          - clock_timestamp())
                            FROM provider_calls WHERE budget = :budget"""),
                    params,
                ).one()
                if used < self.calls:
                    conn.execute(text("INSERT INTO provider_calls (budget) VALUES (:budget)"), params)
                    return
            self._sleep(max(float(wait or 0), 0.01))


_local_limiters: dict[tuple[str, int, float], RateLimiter] = {}
_local_limiters_lock = threading.Lock()


def limiter_for(budget: str, calls: int, period: float, engine: "Engine | None" = None) -> Limiter:
    """The limiter of a provider budget (`budget_key`): counted in the database when `engine` is given, so every
    process shares it; else one per budget in this process."""
    if engine is not None:
        return SharedRateLimiter(engine, budget, calls, period)
    with _local_limiters_lock:
        return _local_limiters.setdefault((budget, calls, period), RateLimiter(calls, period))


def budget_key(provider: str, credential: str) -> str:
    """A budget name for `credential` that does not reveal it: 'cloudflare:3f2a…' (a truncated SHA-256)."""
    return f"{provider}:{hashlib.sha256(credential.encode()).hexdigest()[:16]}"
