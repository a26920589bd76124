"""What every provider client shares: typed errors, retries on transient faults only, and client-side rate limiting.

Retries come from tenacity: bounded attempts, exponential back-off with jitter, and the provider's `retry-after` honoured
when it sends one, in full, up to a per-resource limit (`max_retry_after`, 10 minutes by default): Cloudflare locks a
token out for 5 minutes, and retrying inside the lockout only burns attempts. A longer `retry-after` fails at once with
`RetryLaterError`, whose message says when to try again. Throttling answers without a `retry-after` (Namecheap's 405,
Google's `rateLimitExceeded`) back off for up to the provider's window, since nothing shorter can outlast it.
Authentication and permission errors fail at once.

Error messages carry the provider's code and message and never a credential: every ProviderError message goes through
`redact`, which masks the credentials the clients hold (`remember_credentials`) and anything shaped like one, since a
provider or a proxy in front of it may echo the request's `Authorization` header or a token from its body.

Sleeping and the clock are injectable everywhere (`sleep=`, `clock=`), so tests wait out a 5-minute lockout or a
per-minute window on a simulated clock, in milliseconds.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, Sequence, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from spark_resources.secrets import Secret

T = TypeVar("T")
#: the limiter's advisory locks live in their own namespace (the first key of the two-key form)
_LOCK_NAMESPACE = 0x5350  # "SP"
#: how long a client waits out a provider's `retry-after` before failing with RetryLaterError (resources override it)
DEFAULT_MAX_RETRY_AFTER = 600.0
#: a budget: at most `calls` per `seconds` (Namecheap has three: per minute, per hour, per day)
Window = tuple[int, float]

# --- redaction --------------------------------------------------------------------------------------------------------

REDACTED = "[redacted]"
#: shorter values are not masked on sight: they would blank out ordinary words (sandbox credentials are longer)
_MIN_CREDENTIAL_LENGTH = 8
_known_credentials: set[str] = set()
_credentials_lock = threading.Lock()
_CREDENTIAL_SHAPES = (
    # an Authorization header's value: `Bearer <token>`, `Basic <base64>`
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\1\2{REDACTED}"),
    # `token=…`, `api_key: "…"`, `client_secret=…`, `X-Auth-Key: …`, `token_auth=…`, `password=…`
    (re.compile(r"(?i)\b([\w-]*(?:token|key|secret|password|passwd|auth|signature|credential)s?[\"']?\s*[=:]\s*[\"']?)"
                r"([^\s\"'&,;<>]{6,})"), rf"\1{REDACTED}"),
    # Google's access and refresh tokens, wherever they stand
    (re.compile(r"\bya29\.[\w.-]+"), REDACTED),
    (re.compile(r"(?<![\w/])1//[\w.-]{10,}"), REDACTED),
)


def remember_credentials(*values: "str | Secret | None") -> None:
    """Make `redact` mask these values wherever they appear (clients call it with the credentials they hold)."""
    from spark_resources.secrets import Secret

    revealed = [v.reveal() if isinstance(v, Secret) else v for v in values]
    with _credentials_lock:
        _known_credentials.update(v for v in revealed if v and len(v) >= _MIN_CREDENTIAL_LENGTH)


def redact(text: str, credentials: Iterable[str] = ()) -> str:
    """`text` with every known credential and anything shaped like one replaced by `[redacted]`."""
    with _credentials_lock:
        known = set(_known_credentials)
    known.update(c for c in credentials if c and len(c) >= _MIN_CREDENTIAL_LENGTH)
    for credential in sorted(known, key=len, reverse=True):  # longest first: a token containing another is whole
        text = text.replace(credential, REDACTED)
    for shape, replacement in _CREDENTIAL_SHAPES:
        text = shape.sub(replacement, text)
    return text


# --- errors -----------------------------------------------------------------------------------------------------------


class ProviderError(RuntimeError):
    """A provider refused a request. `code` and `message` are the provider's own (credentials redacted); `status` the
    HTTP status."""

    def __init__(self, provider: str, message: str, *, code: int | str | None = None, status: int | None = None):
        self.provider = provider
        self.code = code
        self.status = status
        self.provider_message = redact(str(message))
        detail = f" (code {code})" if code is not None else ""
        super().__init__(f"{provider}: {self.provider_message}{detail}" + (f" [HTTP {status}]" if status else ""))


class TransientProviderError(ProviderError):
    """A fault worth retrying: throttling, a server error, a timeout. `retry_after` is the provider's header as sent
    (seconds or an HTTP date); `throttled` marks a throttling answer, backed off for up to the provider's window."""

    def __init__(self, *args, retry_after: float | str | None = None, throttled: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.retry_after_header = None if retry_after is None else str(retry_after).strip()
        self.throttled = throttled or retry_after is not None

    @property
    def retry_after(self) -> float | None:
        """Seconds the provider asked us to wait, from now (None: it did not say, or said it unreadably)."""
        return parse_retry_after(self.retry_after_header, time.time())


class RetryLaterError(ProviderError):
    """The provider asked for a longer wait than this resource waits out (`max_retry_after`): not retried in the call.
    `retry_at` (UTC) is when the provider will answer again."""

    def __init__(self, cause: TransientProviderError, *, wait: float, retry_at: datetime, limit: float):
        self.retry_at = retry_at
        self.retry_after = wait
        super().__init__(
            cause.provider,
            f"{cause.provider_message}; asked to wait {wait:.0f} s, longer than this resource waits out "
            f"({limit:.0f} s): try again after {retry_at:%Y-%m-%d %H:%M:%S} UTC",
            code=cause.code, status=cause.status,
        )


class AuthenticationError(ProviderError):
    """Bad or insufficient credentials: never retried."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (TransientProviderError, httpx.TimeoutException, httpx.TransportError))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A `Retry-After` header as seconds from `now` (epoch seconds): either form RFC 9110 allows, delay-seconds or an
    HTTP date. None when absent or unreadable (the caller backs off on its own)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


# --- retries ----------------------------------------------------------------------------------------------------------


def _wait(
    max_wait: float, throttle_window: float | None, clock: Callable[[], float]
) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential(multiplier=0.2, max=max_wait) + wait_random(0, 0.2)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientProviderError):
            asked = parse_retry_after(exc.retry_after_header, clock())
            if asked is not None:
                return asked  # in full: with_retries has already refused waits past max_retry_after
            if exc.throttled and throttle_window:
                # a quarter, a half, then the whole window: a sliding per-window budget has room again by then
                return min(throttle_window, throttle_window * 2 ** (state.attempt_number - 1) / 4)
        return backoff(state)

    return wait


def with_retries(
    provider: str,
    call: Callable[[], T],
    *,
    attempts: int,
    max_wait: float,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    throttle_window: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> T:
    """Run `call`, retrying transient faults up to `attempts` times in all; then raise a ProviderError.

    `max_wait` caps the back-off after server errors and timeouts; a `retry-after` is waited out in full up to
    `max_retry_after` seconds, and past that fails at once with RetryLaterError; throttling without one (`throttled`)
    backs off up to `throttle_window`, the provider's budget window. `clock` (epoch seconds) reads HTTP-date
    `retry-after`s; `sleep` waits."""

    def attempt() -> T:
        try:
            return call()
        except TransientProviderError as exc:
            now = clock()
            asked = parse_retry_after(exc.retry_after_header, now)
            if asked is not None and asked > max_retry_after:
                retry_at = datetime.fromtimestamp(now + asked, timezone.utc)
                raise RetryLaterError(exc, wait=asked, retry_at=retry_at, limit=max_retry_after) from None
            raise

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=_wait(max_wait, throttle_window, clock),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise TransientProviderError(
            provider, f"gave up after {attempts} attempts: {type(exc).__name__}", code="network"
        ) from None


# --- rate limits ------------------------------------------------------------------------------------------------------


def _windows(calls: int | None, period: float | None, windows: Sequence[Window]) -> list[Window]:
    """The budgets, each window kept 2% (at least 50 ms) longer than the provider's: the provider counts arrivals,
    which lag and jitter behind our sends, and a burst timed exactly to its window would tip over it."""
    given = list(windows) + ([(calls, period)] if calls is not None and period is not None else [])
    if not given or any(int(n) < 1 or float(seconds) <= 0 for n, seconds in given):
        raise ValueError(f"a rate limiter needs (calls >= 1, seconds > 0) windows, not {given}")
    return [(int(n), float(seconds) * 1.02 + 0.05) for n, seconds in given]


def _wait_for_room(sent: Sequence[float], now: float, windows: Sequence[Window]) -> float:
    """Seconds until one more call fits every window, given the send times `sent` (ascending); 0 when it fits now."""
    wait = 0.0
    for calls, period in windows:
        first = bisect.bisect_right(sent, now - period)  # the calls still inside this window
        inside = len(sent) - first
        if inside >= calls:  # wait for enough of them to leave that one more fits
            wait = max(wait, sent[first + inside - calls] + period - now)
    return wait


class RateLimiter:
    """At most `calls` per `period` seconds from this process (a sliding window), or within every one of `windows`
    ((calls, seconds) pairs: Namecheap's per minute, hour and day); `acquire` sleeps until allowed."""

    def __init__(self, calls: int | None = None, period: float | None = None, *, windows: Sequence[Window] = (),
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.windows = _windows(calls, period, windows)
        self.calls, self.period = self.windows[0]
        self._clock = clock
        self._sleep = sleep
        self._sent: list[float] = []
        self._lock = threading.Lock()

    def acquire(self) -> None:
        longest = max(period for _, period in self.windows)
        while True:
            with self._lock:
                now = self._clock()
                del self._sent[: bisect.bisect_right(self._sent, now - longest)]
                wait = _wait_for_room(self._sent, now, self.windows)
                if wait <= 0:
                    self._sent.append(now)
                    return
            self._sleep(max(wait, 0.001))


class Limiter(Protocol):
    def acquire(self) -> None: ...


class SharedRateLimiter:
    """RateLimiter's sliding windows, counted in PostgreSQL (`provider_calls`) so that every process calling with the
    same budget (runs in parallel or back to back, sensors) shares it: what the provider counts is all of them.

    `budget` names what the provider limits, e.g. one Cloudflare token; `budget_key` derives a name that does not
    reveal the credential. Each acquire is one short transaction under an advisory lock on the budget: two statements
when there is room. Time is the
    database's (`clock_timestamp()`, one clock for every process) unless a `clock` (epoch seconds) is given."""

    def __init__(self, engine: "Engine", budget: str, calls: int | None = None, period: float | None = None, *,
                 windows: Sequence[Window] = (), sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] | None = None):
        self.engine = engine
        self.budget = budget
        self.windows = _windows(calls, period, windows)
        self.calls, self.period = self.windows[0]
        self._sleep = sleep
        self._clock = clock
        self._acquired = 0

    #: expired rows are deleted on the first call, then every this many (and whenever a window is full)
    PRUNE_EVERY = 50

    def acquire(self) -> None:
        """Wait until every window has room, then count this call. The common case is two statements under the
        budget's lock: the lock with the time, then an insert that happens only if every window has room. Only when
        one is full (then again after each wait) or every `PRUNE_EVERY` calls are expired rows deleted and the wait
        computed."""
        from sqlalchemy import text

        longest = max(period for _, period in self.windows)
        params = {"budget": self.budget, "longest": longest, "ns": _LOCK_NAMESPACE,
                  **{f"p{i}": period for i, (_, period) in enumerate(self.windows)},
                  **{f"c{i}": calls for i, (calls, _) in enumerate(self.windows)}}
        room = " AND ".join(
            f"(SELECT count(*) FROM provider_calls WHERE budget = :budget "
            f"AND called_at > :now - make_interval(secs => :p{i})) < :c{i}" for i in range(len(self.windows)))
        waited = False
        while True:
            with self.engine.begin() as conn:
                # the lock, then the time (the target list is evaluated in order): one round trip for both
                _, now = conn.execute(
                    text("SELECT pg_advisory_xact_lock(:ns, hashtext(:budget)), clock_timestamp()"), params
                ).one()
                if self._clock is not None:
                    now = datetime.fromtimestamp(self._clock(), timezone.utc)
                self._acquired += 1
                if not waited and self._acquired % self.PRUNE_EVERY != 1:
                    counted = conn.execute(
                        text(f"INSERT INTO provider_calls (budget, called_at) SELECT :budget, :now WHERE {room}"),
                        {**params, "now": now},
                    ).rowcount
                    if counted:
                        return
                conn.execute(
                    text("""DELETE FROM provider_calls WHERE budget = :budget
                            AND called_at <= :now - make_interval(secs => :longest)"""),
                    {**params, "now": now},
                )
                wait = self._wait_for_room(conn, now, params)
                if wait <= 0:
                    conn.execute(text("INSERT INTO provider_calls (budget, called_at) VALUES (:budget, :now)"),
                                 {**params, "now": now})
                    return
            self._sleep(max(wait, 0.01))
            waited = True

    def _wait_for_room(self, conn, now: datetime, params: dict) -> float:
        """`_wait_for_room` counted in SQL: the calls inside each window, and for a full one, when enough have left."""
        from sqlalchemy import text

        counts = conn.execute(
            text("SELECT " + ", ".join(
                f"count(*) FILTER (WHERE called_at > :now - make_interval(secs => :p{i}))"
                for i in range(len(self.windows))) + " FROM provider_calls WHERE budget = :budget"),
            {**params, "now": now, **{f"p{i}": period for i, (_, period) in enumerate(self.windows)}},
        ).one()
        wait = 0.0
        for (calls, period), inside in zip(self.windows, counts):
            if inside >= calls:
                leaves = conn.execute(
                    text("""SELECT called_at FROM provider_calls
                            WHERE budget = :budget AND called_at > :now - make_interval(secs => :period)
                            ORDER BY called_at OFFSET :skip LIMIT 1"""),
                    {**params, "now": now, "period": period, "skip": inside - calls},
                ).scalar_one()
                wait = max(wait, (leaves - now).total_seconds() + period)
        return wait


_local_limiters: dict[tuple[str, tuple[Window, ...]], RateLimiter] = {}
_local_limiters_lock = threading.Lock()


def limiter_for(budget: str, windows: Sequence[Window], engine: "Engine | None" = None) -> Limiter:
    """The limiter of a provider budget (`budget_key`) with its windows ((calls, seconds) pairs): counted in the
    database when `engine` is given, so every process shares it; else one per budget in this process."""
    if engine is not None:
        return SharedRateLimiter(engine, budget, windows=windows)
    with _local_limiters_lock:
        return _local_limiters.setdefault((budget, tuple(windows)), RateLimiter(windows=windows))


def budget_key(provider: str, credential: str) -> str:
    """A budget name for `credential` that does not reveal it: 'cloudflare:3f2a…' (a truncated SHA-256)."""
    return f"{provider}:{hashlib.sha256(credential.encode()).hexdigest()[:16]}"
