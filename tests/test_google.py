"""The Google client (OAuth refresh, Site Verification, Search Console) against the local simulator, over real HTTP on
loopback: the contract's state machine, quirks, faults and auth rules."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from spark_resources.providers.google import (
    GoogleClient,
    QuotaExceededError,
    SearchConsoleResource,
    VerificationPendingError,
    domain_property,
)
from spark_resources.providers.http import AuthenticationError, ProviderError, RateLimiter, TransientProviderError
from spark_resources.secrets import Secret
from spark_resources.simulators.base import SimulatedClock
from spark_resources.simulators.google import GoogleSimulator, traffic

REFRESH = "1//refresh-secret-value"
CLIENT_SECRET = "client-secret-value"
TODAY = date(2026, 11, 22)


@pytest.fixture
def google():
    with GoogleSimulator(client_secret=CLIENT_SECRET, timeout_seconds=1.0, today=lambda: TODAY) as simulator:
        simulator.add_account("seo@example.com", REFRESH)
        yield simulator


def _client(simulator, refresh: str = REFRESH, **kwargs) -> GoogleClient:
    return GoogleClient(
        client_id=simulator.client_id, client_secret=Secret(CLIENT_SECRET), refresh_token=Secret(refresh),
        limiter=RateLimiter(1200, 60), token_url=simulator.token_url, search_console_url=simulator.search_console_url,
        site_verification_url=simulator.site_verification_url, read_timeout=kwargs.pop("read_timeout", 0.5),
        max_wait=0.05, sleep=kwargs.pop("sleep", SimulatedClock().sleep), **kwargs,  # throttling waits up to a minute
    )


def _verified_property(simulator, client, domain: str) -> str:
    published: list[str] = []
    simulator.txt_lookup = lambda name: published if name == domain else []
    published.append(client.verification_token(domain))
    client.verify_domain(domain)
    client.ensure_site(domain_property(domain))
    return domain_property(domain)


def test_verification_needs_the_txt_record_then_the_property_can_be_added(google):
    client = _client(google)
    published: list[str] = []
    google.txt_lookup = lambda name: published if name == "one.example" else []
    token = client.verification_token("one.example")
    assert token.startswith("google-site-verification=")
    assert client.verification_token("one.example") == token  # stable per account and domain
    with pytest.raises(ProviderError) as missing:
        client.verify_domain("one.example")
    assert missing.value.status == 400 and "verification token could not be found" in str(missing.value)
    with pytest.raises(AuthenticationError) as forbidden:  # not an owner yet
        client.add_site("sc-domain:one.example")
    assert forbidden.value.code == "forbidden"

    published.append(token)
    assert client.verify_domain("one.example") == ["seo@example.com"]
    assert client.ensure_site("sc-domain:one.example") is True
    assert client.ensure_site("sc-domain:one.example") is False  # converges
    assert [s.site_url for s in client.list_sites()] == ["sc-domain:one.example"]
    # the site URL travelled percent-encoded
    assert ("PUT", "/webmasters/v3/sites/sc-domain%3Aone.example") in google.calls


def test_an_account_without_properties_lists_none(google):
    # Google leaves `siteEntry` out entirely when there are none
    assert _client(google).list_sites() == []


def test_search_analytics_pages_through_days_and_skips_empty_ones(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    start, end = date(2026, 8, 1), date(2026, 11, 22)
    rows = list(client.search_analytics(site, start, end, row_limit=25))
    final = TODAY - timedelta(days=3)
    expected = {
        day.isoformat(): traffic(site, day)
        for day in (start + timedelta(days=i) for i in range((final - start).days + 1))
        if traffic(site, day) is not None
    }
    assert 0 < len(expected) < (final - start).days + 1  # some days have no data
    assert {r.keys[0]: (r.clicks, r.impressions, r.position) for r in rows} == expected
    query_calls = [c for c in google.calls if c[1].endswith("/searchAnalytics/query")]
    assert len(query_calls) == len(expected) // 25 + 1
    fresh = list(client.search_analytics(site, start, end, data_state="all"))
    assert max(r.keys[0] for r in fresh) > final.isoformat()  # fresh, not yet final, data included


def test_no_data_means_no_rows_key_and_no_rows(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    assert list(client.search_analytics(site, TODAY - timedelta(days=1), TODAY)) == []  # inside the data delay


def test_a_401_refreshes_once_then_succeeds(google):
    client = _client(google)
    client.list_sites()
    google.inject("auth", times=1)
    assert client.list_sites() == []
    assert sum(1 for c in google.calls if c[1] == "/token") == 2


def test_a_401_whose_refresh_is_refused_fails_without_more_retries(google):
    client = _client(google)
    client.list_sites()
    before = len(google.calls)
    google.inject("auth", times=2)  # the call answers 401; the refresh that follows answers invalid_grant
    with pytest.raises(AuthenticationError) as failure:
        client.list_sites()
    assert failure.value.code == "invalid_grant"
    assert google.calls[before:] == [("GET", "/webmasters/v3/sites"), ("POST", "/token")]


def test_a_revoked_refresh_token_fails_at_once_without_the_secret(google):
    google.revoke(REFRESH)
    client = _client(google)
    with pytest.raises(AuthenticationError) as failure:
        client.list_sites()
    assert failure.value.code == "invalid_grant" and "expired or revoked" in str(failure.value)
    assert google.calls == [("POST", "/token")]  # not retried
    assert REFRESH not in str(failure.value) and CLIENT_SECRET not in str(failure.value)


def test_a_bad_client_secret_is_an_authentication_error(google):
    client = GoogleClient(
        client_id=google.client_id, client_secret=Secret("wrong"), refresh_token=Secret(REFRESH),
        limiter=RateLimiter(10, 1), token_url=google.token_url, search_console_url=google.search_console_url,
        site_verification_url=google.site_verification_url, max_wait=0.05,
    )
    with pytest.raises(AuthenticationError) as failure:
        client.list_sites()
    assert failure.value.code == "invalid_client"


@pytest.mark.parametrize("kind", ["429", "500", "malformed", "timeout"])
def test_transient_faults_are_retried_and_succeed(google, kind):
    client = _client(google)
    client.list_sites()
    before = len(google.calls)
    google.inject(kind, times=2)
    assert client.list_sites() == []
    assert len(google.calls) - before == 3


def test_persistent_rate_limiting_gives_up_with_a_typed_error(google):
    client = _client(google, attempts=3)
    client.list_sites()
    google.inject("429", times=10)
    with pytest.raises(TransientProviderError) as failure:
        client.list_sites()
    assert failure.value.status == 429 and failure.value.code == "rateLimitExceeded"


def test_quota_exceeded_is_not_retried_in_call(google):
    client = _client(google)
    client.list_sites()
    before = len(google.calls)
    google.inject("quota", times=1)
    with pytest.raises(QuotaExceededError) as failure:
        client.list_sites()
    assert "15 minutes" in str(failure.value) and len(google.calls) - before == 1


def test_the_resource_needs_the_oauth_client_from_the_environment(monkeypatch):
    monkeypatch.delenv("GOOGLE_CLIENT_ID", raising=False)
    monkeypatch.delenv("GOOGLE_CLIENT_SECRET", raising=False)
    with pytest.raises(ProviderError, match="GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET not set"):
        SearchConsoleResource().get_client(Secret(REFRESH))
    monkeypatch.setenv("GOOGLE_CLIENT_ID", "id")
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET", "secret")
    SearchConsoleResource().get_client(Secret(REFRESH)).close()


def test_a_token_expiring_mid_run_is_renewed(google):
    google.token_lifetime_seconds = 60.5  # the client renews 60 s early: this token is good for half a second
    client = _client(google)
    client.list_sites()
    client.list_sites()
    time.sleep(0.6)  # past the client's margin: the next call refreshes first
    client.list_sites()
    assert sum(1 for c in google.calls if c[1] == "/token") == 2


def test_rate_limiting_without_retry_after_backs_off_up_to_the_quota_minute(google):
    clock = SimulatedClock()
    client = _client(google, sleep=clock.sleep, clock=clock.time)
    client.list_sites()
    google.inject("429", times=3)  # rateLimitExceeded, no retry-after
    assert client.list_sites() == []
    assert clock.slept == [15, 30, 60]  # a quarter, a half, then the whole per-minute quota window


def test_only_a_missing_verification_token_is_worth_verifying_again(google):
    client = _client(google)
    google.txt_lookup = lambda name: []
    client.verification_token("one.example")
    with pytest.raises(VerificationPendingError) as pending:  # the TXT record has not propagated yet
        client.verify_domain("one.example")
    assert pending.value.status == 400 and "could not be found" in str(pending.value)
    google.revoke(REFRESH)  # the refresh token is revoked (and with it the access token) mid-way
    with pytest.raises(AuthenticationError) as revoked:
        client.verify_domain("one.example")
    assert not isinstance(revoked.value, VerificationPendingError)
    assert revoked.value.code == "invalid_grant" and revoked.value.status == 400


def test_search_analytics_reads_enums_in_any_case_and_by_search_appearance(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    url = f"{google.search_console_url}/sites/sc-domain%3Aone.example/searchAnalytics/query"
    body = {"startDate": "2026-11-01", "endDate": "2026-11-22", "rowLimit": 1000}
    lower = client._request("POST", url, json={**body, "dimensions": ["date"], "dataState": "all", "type": "web"})
    upper = client._request("POST", url, json={**body, "dimensions": ["DATE"], "dataState": "ALL", "type": "WEB",
                                               "aggregationType": "AUTO"})
    assert upper == lower and lower["rows"]
    appearance = client._request("POST", url, json={**body, "dimensions": ["SEARCH_APPEARANCE"]})
    assert {tuple(r["keys"]) for r in appearance["rows"]} == {("REVIEW_SNIPPET",)}
    assert "rows" not in client._request("POST", url, json={**body, "type": "IMAGE"})  # no image traffic
    with pytest.raises(ProviderError) as invalid:
        client._request("POST", url, json={**body, "dimensions": ["weather"]})
    assert invalid.value.status == 400 and invalid.value.code == "badRequest"
    assert site == "sc-domain:one.example"


def test_sites_get_answers_for_a_property_the_account_owns(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    assert client._request("GET", f"{google.search_console_url}/sites/sc-domain%3Aone.example") == {
        "siteUrl": site, "permissionLevel": "siteOwner"}
    with pytest.raises(AuthenticationError) as other:
        client._request("GET", f"{google.search_console_url}/sites/sc-domain%3Aother.example")
    assert other.value.code == "forbidden"
