"""The Cloudflare client against the local simulator, over real HTTP on loopback: the contract's answers, faults
and limits."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from spark_resources.providers.cloudflare import CloudflareClient, CloudflareResource
from spark_resources.providers.http import (
    AuthenticationError,
    ProviderError,
    RateLimiter,
    RetryLaterError,
    TransientProviderError,
)
from spark_resources.simulators.base import SimulatedClock
from spark_resources.simulators.cloudflare import CloudflareSimulator

TOKEN = "sandbox-token-123"


@pytest.fixture
def cloudflare():
    with CloudflareSimulator(token=TOKEN, timeout_seconds=1.5) as simulator:
        yield simulator


def _client(simulator, **kwargs) -> CloudflareClient:
    kwargs.setdefault("limiter", RateLimiter(1200, 300))
    kwargs.setdefault("max_wait", 0.05)
    return CloudflareClient(simulator.base_url, kwargs.pop("token", TOKEN), read_timeout=kwargs.pop("read_timeout", 1.0), **kwargs)


def test_zones_are_created_once_and_found_by_name(cloudflare):
    client = _client(cloudflare)
    zone, created = client.ensure_zone("demo-roofing.example", "acct")
    again, created_again = client.ensure_zone("demo-roofing.example", "acct")
    assert created and not created_again
    assert again == zone and zone.status == "pending" and len(zone.name_servers) == 2
    assert len(cloudflare.zones) == 1
    with pytest.raises(ProviderError) as exists:
        client.create_zone("demo-roofing.example", "acct")
    assert exists.value.code == 1061 and "already exists" in str(exists.value)
    cloudflare.activate_zone("demo-roofing.example")
    assert client.get_zone(zone.id).status == "active"


def test_dns_records_converge_and_list_across_pages(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone("demo-roofing.example", "acct")
    record, outcome, _ = client.ensure_dns_record(zone.id, type="CNAME", name="www.demo-roofing.example",
                                                  content="a.example")
    assert outcome == "created"
    assert client.ensure_dns_record(zone.id, type="CNAME", name="www.demo-roofing.example",
                                    content="a.example").outcome == "unchanged"
    updated, outcome, _ = client.ensure_dns_record(zone.id, type="CNAME", name="www.demo-roofing.example",
                                                   content="b.example")
    assert outcome == "updated" and updated.id == record.id and updated.content == "b.example"
    for i in range(230):
        client.create_dns_record(zone.id, type="TXT", name=f"t{i}.demo-roofing.example", content=f"v{i}")
    calls_before = len(cloudflare.calls)
    records = client.list_dns_records(zone.id)
    assert len(records) == 231
    assert len(cloudflare.calls) - calls_before == 3  # 100 per page


@pytest.mark.parametrize("kind", ["429", "500", "malformed"])
def test_transient_faults_are_retried_and_succeed(cloudflare, kind):
    client = _client(cloudflare)
    cloudflare.inject(kind, times=2)
    assert client.find_zone("nothing.example") is None
    assert len(cloudflare.calls) == 3


def test_a_timeout_is_retried(cloudflare):
    client = _client(cloudflare, read_timeout=0.5)
    cloudflare.inject("timeout", times=1)
    assert client.find_zone("nothing.example") is None
    assert len(cloudflare.calls) == 2


def test_persistent_faults_give_up_with_a_typed_error(cloudflare):
    client = _client(cloudflare, attempts=3)
    cloudflare.inject("500", times=10)
    with pytest.raises(TransientProviderError) as failure:
        client.find_zone("nothing.example")
    assert failure.value.status == 500 and failure.value.code == 10001
    assert len(cloudflare.calls) == 3


def test_authentication_errors_are_not_retried_and_keep_the_token_out(cloudflare):
    client = _client(cloudflare, token="wrong-secret-token")
    with pytest.raises(AuthenticationError) as failure:
        client.find_zone("demo.example")
    assert failure.value.code == 10000 and "Authentication error" in str(failure.value)
    assert "wrong-secret-token" not in str(failure.value)
    assert len(cloudflare.calls) == 1


def test_the_rate_limiter_holds_a_burst_under_the_providers_budget():
    with CloudflareSimulator(token=TOKEN, requests_per_window=5, window_seconds=1.0, lockout_seconds=30) as simulator:
        client = _client(simulator, limiter=RateLimiter(5, 1.0), attempts=1)
        started = time.monotonic()
        for _ in range(12):
            client.find_zone("nothing.example")  # would be a 429 (no retries allowed) past the budget
        elapsed = time.monotonic() - started
    assert elapsed >= 2.0  # 12 calls at 5 per second need two full waits
    assert len(simulator.calls) == 12


def test_past_the_budget_the_simulator_locks_out_like_cloudflare():
    with CloudflareSimulator(token=TOKEN, requests_per_window=3, window_seconds=60, lockout_seconds=30) as simulator:
        client = _client(simulator, limiter=RateLimiter(100, 1.0), attempts=1)
        for _ in range(3):
            client.find_zone("nothing.example")
        with pytest.raises(TransientProviderError) as limited:
            client.find_zone("nothing.example")
    assert limited.value.status == 429 and limited.value.code == 971 and limited.value.retry_after >= 1


def test_the_resource_builds_a_client_for_the_sandbox(cloudflare):
    resource = CloudflareResource(api_token=TOKEN, base_url=cloudflare.base_url)
    client = resource.get_client()
    assert client.find_zone("nothing.example") is None
    assert resource.get_client()._limiter is client._limiter  # one budget per token, whichever client uses it


# --- throttling on a simulated clock: a 5-minute lockout passes in no time --------------------------------------------


def _locked_out(clock: SimulatedClock, **simulator) -> CloudflareSimulator:
    """A Cloudflare that allows 3 calls per 5 minutes, then locks the token out for 5 minutes, on `clock`."""
    return CloudflareSimulator(token=TOKEN, requests_per_window=3, window_seconds=300, lockout_seconds=300,
                               clock=clock.time, **simulator)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_a_five_minute_lockout_is_waited_out_then_the_call_succeeds(form):
    clock = SimulatedClock()
    with _locked_out(clock, retry_after_format=form) as simulator:
        client = _client(simulator, limiter=RateLimiter(100, 1.0), sleep=clock.sleep, clock=clock.time)
        for _ in range(3):
            client.find_zone("nothing.example")
        assert client.find_zone("nothing.example") is None  # answered 429 with retry-after: 300, then this
    assert clock.slept == [300] and len(simulator.calls) == 5


def test_a_lockout_longer_than_the_resource_waits_fails_at_once_saying_when_to_retry():
    clock = SimulatedClock()
    with _locked_out(clock) as simulator:
        client = _client(simulator, limiter=RateLimiter(100, 1.0), sleep=clock.sleep, clock=clock.time,
                         max_retry_after=120)
        for _ in range(3):
            client.find_zone("nothing.example")
        with pytest.raises(RetryLaterError) as later:
            client.find_zone("nothing.example")
    assert later.value.status == 429 and later.value.code == 971 and clock.slept == [] and len(simulator.calls) == 4
    assert later.value.retry_at == datetime.fromtimestamp(clock.time() + 300, timezone.utc)
    assert "try again after 2027-01-15 08:05:00 UTC" in str(later.value)


def test_the_resource_waits_ten_minutes_at_most_by_default():
    assert CloudflareResource(api_token=TOKEN).max_retry_after_seconds == 600
    assert CloudflareResource(api_token=TOKEN, max_retry_after_seconds=30).get_client()._max_retry_after == 30


# --- the API's record rules, and reconciling the records Cloudflare imported with the zone ----------------------------


def test_records_imported_with_the_zone_are_replaced_by_our_cnames_and_reported(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone("demo-roofing.example", "acct")
    cloudflare.import_records("demo-roofing.example", [
        ("A", "demo-roofing.example", "192.0.2.1"), ("A", "demo-roofing.example", "192.0.2.2"),
        ("TXT", "demo-roofing.example", "v=spf1 -all"),  # may stay beside the flattened apex CNAME
        ("AAAA", "www.demo-roofing.example", "2001:db8::1"), ("TXT", "www", "old-host-check"),
    ])
    apex = client.ensure_dns_record(zone.id, type="CNAME", name="demo-roofing.example", content="sites.example",
                                    proxied=True)
    www = client.ensure_dns_record(zone.id, type="CNAME", name="www.demo-roofing.example", content="sites.example",
                                   proxied=True)
    assert apex.outcome == www.outcome == "replaced"
    assert [r.describe() for r in apex.replaced] == ["A demo-roofing.example 192.0.2.1",
                                                     "A demo-roofing.example 192.0.2.2"]
    # below the apex a CNAME stands alone: the address record goes (81053), then the TXT too (81054)
    assert [r.describe() for r in www.replaced] == ["AAAA www.demo-roofing.example 2001:db8::1",
                                                    "TXT www.demo-roofing.example old-host-check"]
    assert sorted((r.type, r.name, r.content) for r in client.list_dns_records(zone.id)) == [
        ("CNAME", "demo-roofing.example", "sites.example"), ("CNAME", "www.demo-roofing.example", "sites.example"),
        ("TXT", "demo-roofing.example", "v=spf1 -all")]
    again = client.ensure_dns_record(zone.id, type="CNAME", name="demo-roofing.example", content="sites.example",
                                     proxied=True)
    assert (again.outcome, again.replaced) == ("unchanged", ())


def _refusal(call) -> int:
    with pytest.raises(ProviderError) as refused:
        call()
    return refused.value.code


def test_the_simulator_holds_records_to_cloudflares_rules(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone("demo-roofing.example", "acct")
    create = client.create_dns_record
    apex = create(zone.id, type="CNAME", name="Demo-Roofing.Example.", content="sites.example", proxied=True)
    assert apex.name == "demo-roofing.example"  # case-insensitive, stored fully qualified
    www = create(zone.id, type="A", name="WWW", content="192.0.2.1")
    assert www.name == "www.demo-roofing.example"
    assert create(zone.id, type="A", name="www.other.test", content="192.0.2.9").name == (
        "www.other.test.demo-roofing.example")  # a name outside the zone is relative to it
    assert _refusal(lambda: create(zone.id, type="A", name="demo-roofing.example", content="192.0.2.1")) == 81053
    assert _refusal(lambda: create(zone.id, type="CNAME", name="www", content="sites.example")) == 81053
    assert _refusal(lambda: create(zone.id, type="TXT", name="x", content="v", proxied=True)) == 9004
    assert _refusal(lambda: create(zone.id, type="A", name="www", content="192.0.2.1")) == 81058
    txt = create(zone.id, type="TXT", name="demo-roofing.example", content="google-site-verification=x")
    create(zone.id, type="CNAME", name="shop", content="shops.example")
    assert _refusal(lambda: create(zone.id, type="TXT", name="shop", content="v")) == 81054
    assert client.get_dns_record(zone.id, txt.id) == txt
    assert [r.id for r in client.list_dns_records(zone.id, type="TXT", name="DEMO-ROOFING.EXAMPLE")] == [txt.id]
    client.delete_dns_record(zone.id, www.id)
    assert _refusal(lambda: client.get_dns_record(zone.id, www.id)) == 81044
    assert apex.proxied and client.get_dns_record(zone.id, apex.id).proxied


def test_zone_lists_filter_by_status_and_account(cloudflare):
    client = _client(cloudflare)
    client.ensure_zone("one.example", "acct-1")
    client.ensure_zone("two.example", "acct-2")
    cloudflare.activate_zone("two.example")
    pages = client._pages
    assert [z["name"] for z in pages("/zones", {"status": "active"}, per_page=50)] == ["two.example"]
    assert [z["name"] for z in pages("/zones", {"account.id": "acct-1"}, per_page=50)] == ["one.example"]
    assert [z["name"] for z in pages("/zones", {"name": "ONE.example"}, per_page=50)] == ["one.example"]


def test_a_token_echoed_in_an_error_is_redacted(cloudflare):
    cloudflare.inject("echo")
    with pytest.raises(AuthenticationError) as failure:  # 6111: Invalid format for Authorization header
        _client(cloudflare).find_zone("demo.example")
    assert failure.value.code == 6111 and TOKEN not in str(failure.value)
    assert "Authorization header: Bearer [redacted]" in str(failure.value)
