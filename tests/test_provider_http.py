"""What every provider client shares (providers/http.py): reading `retry-after` in both forms, waiting it out on a
simulated clock or refusing past the limit, backing off throttling up to the window, and redacting credentials."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import formatdate

import pytest

from spark_resources.providers.http import (
    REDACTED,
    ProviderError,
    RateLimiter,
    RetryLaterError,
    TransientProviderError,
    parse_retry_after,
    redact,
    remember_credentials,
    with_retries,
)
from spark_resources.simulators.base import SimulatedClock


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = 1_800_000_000.0
    assert parse_retry_after("300", now) == 300
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after(formatdate(now + 120, usegmt=True), now) == 120
    assert parse_retry_after(formatdate(now - 10, usegmt=True), now) == 0  # already past: no wait
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def _failing(times: int, error: TransientProviderError):
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return call, calls


def test_a_retry_after_within_the_limit_is_waited_out_in_full():
    clock = SimulatedClock()
    call, calls = _failing(1, TransientProviderError("cloudflare", "Please wait", status=429, retry_after="300"))
    assert with_retries("cloudflare", call, attempts=4, max_wait=60, max_retry_after=600, sleep=clock.sleep,
                        clock=clock.time) == "done"
    assert clock.slept == [300] and len(calls) == 2


def test_a_retry_after_past_the_limit_fails_at_once_saying_when():
    clock = SimulatedClock()
    when = formatdate(clock.time() + 900, usegmt=True)
    call, calls = _failing(5, TransientProviderError("cloudflare", "Please wait", code=971, status=429,
                                                     retry_after=when))
    with pytest.raises(RetryLaterError) as later:
        with_retries("cloudflare", call, attempts=4, max_wait=60, max_retry_after=600, sleep=clock.sleep,
                     clock=clock.time)
    assert later.value.retry_at == datetime.fromtimestamp(clock.time() + 900, timezone.utc)
    assert f"try again after {later.value.retry_at:%Y-%m-%d %H:%M:%S} UTC" in str(later.value)
    assert later.value.code == 971 and clock.slept == [] and len(calls) == 1


def test_throttling_without_retry_after_backs_off_up_to_the_window():
    clock = SimulatedClock()
    call, _ = _failing(3, TransientProviderError("namecheap", "too many requests", status=405, throttled=True))
    assert with_retries("namecheap", call, attempts=4, max_wait=0.05, throttle_window=60, sleep=clock.sleep,
                        clock=clock.time) == "done"
    assert clock.slept == [15, 30, 60]  # a quarter, a half, then the whole per-minute window


def test_a_local_limiter_keeps_every_window():
    clock = SimulatedClock()
    limiter = RateLimiter(windows=[(2, 60), (3, 3600)], clock=clock.time, sleep=clock.sleep)
    start = clock.time()
    for _ in range(4):
        limiter.acquire()
    # the third call waits out the minute, the fourth the hour (each window kept 2% + 50 ms longer than the provider's)
    assert clock.time() - start == pytest.approx(3600 * 1.02 + 0.05)


def test_credentials_are_redacted_from_provider_messages():
    remember_credentials("plain-known-credential-42")
    echoed = ProviderError("cloudflare", "Invalid format for Authorization header: Bearer s3cr3t-token-value; "
                           "sent token=abcdef0123456789 api_key: 'ZXhhbXBsZS1rZXk=' and plain-known-credential-42",
                           code=6111, status=400)
    for secret in ("s3cr3t-token-value", "abcdef0123456789", "ZXhhbXBsZS1rZXk=", "plain-known-credential-42"):
        assert secret not in str(echoed) and secret not in echoed.provider_message
    assert str(echoed).count(REDACTED) == 4 and "(code 6111) [HTTP 400]" in str(echoed)
    # Google's token shapes, and words that only look like keys, are told apart
    assert redact("access ya29.a0AfH6SM-x_y and refresh 1//0gLxyz-abcdefghijk") == (
        f"access {REDACTED} and refresh {REDACTED}")
    assert redact("API Key is invalid or API access has not been enabled") == (
        "API Key is invalid or API access has not been enabled")
    assert redact("The necessary verification token could not be found on your site.").endswith("on your site.")
