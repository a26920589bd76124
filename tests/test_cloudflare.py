"""The Cloudflare client against the local simulator, over real HTTP on loopback: the contract's answers, faults
and limits."""

from __future__ import annotations

import time

import pytest

from spark_resources.providers.cloudflare import CloudflareClient, CloudflareResource
from spark_resources.providers.http import AuthenticationError, ProviderError, RateLimiter, TransientProviderError
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
