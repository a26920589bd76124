"""What every provider client shares: typed errors, retries on transient faults only, and client-side rate limiting.

Retries come from tenacity: bounded attempts, exponential back-off with jitter, and the provider's `retry-after` honoured
when it sends one. Only transient faults are retried (429, the provider's own throttling codes, 5xx, timeouts, resets);
authentication and permission errors fail at once. Error messages carry the provider's code and message and never a
credential: clients build them from the response body, not from the request.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

T = TypeVar("T")


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
