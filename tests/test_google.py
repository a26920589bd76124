"""The Google client (OAuth refresh, Site Verification, Search Console) against the local simulator, over real HTTP on
loopback: the contract's state machine, quirks, faults and auth rules."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date, timedelta

import httpx
import pytest

from spark_resources.providers.google import (
    DailySearch,
    GoogleClient,
    QuotaExceededError,
    SearchConsoleResource,
    VerificationPendingError,
    domain_property,
)
from spark_resources.providers.http import AuthenticationError, ProviderError, RateLimiter, TransientProviderError
from spark_resources.secrets import Secret
from spark_resources.simulators.base import SimulatedClock
from spark_resources.simulators.google import DATA_DELAY_DAYS, GoogleSimulator, provisional_traffic, traffic

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


# --- fresh data: dataState all, by day ---------------------------------------------------------------------------------

FIRST_INCOMPLETE = TODAY - timedelta(days=DATA_DELAY_DAYS - 1)


def _span(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def test_daily_search_answers_final_and_provisional_days(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    start = TODAY - timedelta(days=40)
    result = client.daily_search(site, start, TODAY)
    assert isinstance(result, DailySearch) and result.first_incomplete_date == FIRST_INCOMPLETE == date(2026, 11, 20)
    expected = {d: provisional_traffic(site, d, TODAY) for d in _span(start, TODAY)}
    assert {d: (r.clicks, r.impressions, r.position) for d, r in result.days.items()} == {
        d: n for d, n in expected.items() if n is not None}
    assert list(result.days) == sorted(result.days) and all(r.keys == (d.isoformat(),) for d, r in result.days.items())
    assert any(n is None for n in expected.values())  # days without data are absent, not zeros
    for day, row in result.days.items():
        final_clicks, final_impressions, position = traffic(site, day)
        if day < FIRST_INCOMPLETE:
            assert (row.clicks, row.impressions) == (final_clicks, final_impressions)  # final
        else:
            assert row.impressions < final_impressions and row.clicks <= final_clicks  # still arriving
            assert row.position == position
    fractions = {TODAY - timedelta(days=2): 0.9, TODAY - timedelta(days=1): 0.7, TODAY: 0.35}
    for day, fraction in fractions.items():
        final = traffic(site, day)
        assert provisional_traffic(site, day, TODAY) == (
            None if final is None else (int(final[0] * fraction), int(final[1] * fraction), final[2]))
    assert google.calls[-1] == ("POST", "/webmasters/v3/sites/sc-domain%3Aone.example/searchAnalytics/query")


def test_daily_search_of_a_final_range_has_no_incomplete_date(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    end = FIRST_INCOMPLETE - timedelta(days=1)
    result = client.daily_search(site, end - timedelta(days=30), end)
    assert result.first_incomplete_date is None
    assert {d: (r.clicks, r.impressions, r.position) for d, r in result.days.items()} == {
        d: traffic(site, d) for d in _span(end - timedelta(days=30), end) if traffic(site, d) is not None}
    url = f"{google.search_console_url}/sites/sc-domain%3Aone.example/searchAnalytics/query"
    body = {"startDate": "2026-11-01", "endDate": end.isoformat(), "dimensions": ["date"], "dataState": "all"}
    assert "metadata" not in client._request("POST", url, json=body)


def test_metadata_only_for_fresh_data_by_date_reaching_the_first_incomplete_day(google):
    client = _client(google)
    _verified_property(google, client, "one.example")
    url = f"{google.search_console_url}/sites/sc-domain%3Aone.example/searchAnalytics/query"
    body = {"startDate": "2026-11-01", "endDate": TODAY.isoformat(), "dimensions": ["date"]}
    marked = {"firstIncompleteDate": FIRST_INCOMPLETE.isoformat()}
    assert client._request("POST", url, json={**body, "dataState": "all"})["metadata"] == marked
    assert client._request("POST", url, json={**body, "dataState": "HOURLY_ALL"})["metadata"] == marked
    assert client._request("POST", url, json={**body, "dataState": "all", "dimensions": ["date", "device"],
                                              "startRow": 5000})["metadata"] == marked  # on every page, rows or not
    assert "metadata" not in client._request("POST", url, json={**body, "dataState": "final"})
    assert "metadata" not in client._request("POST", url, json=body)  # final by default
    assert "metadata" not in client._request("POST", url, json={**body, "dataState": "all", "dimensions": ["device"]})
    in_future = client._request("POST", url, json={**body, "dataState": "all", "startDate": "2026-11-23",
                                                   "endDate": "2026-11-30"})
    assert in_future == {"responseAggregationType": "byProperty", "metadata": marked}  # no data after today


def test_daily_search_of_a_site_without_data_still_says_what_is_incomplete(google):
    client = _client(google)
    domain = next(f"quiet-{i}.example" for i in range(10_000)
                  if all(provisional_traffic(f"sc-domain:quiet-{i}.example", d, TODAY) is None
                         for d in _span(FIRST_INCOMPLETE, TODAY)))
    site = _verified_property(google, client, domain)
    assert client.daily_search(site, FIRST_INCOMPLETE, TODAY) == DailySearch({}, FIRST_INCOMPLETE)
    with pytest.raises(ValueError):
        client.daily_search(site, TODAY, FIRST_INCOMPLETE)


@pytest.mark.parametrize("answer", [
    {"rows": [{"keys": ["22/11/2026"], "clicks": 1, "impressions": 3, "ctr": 0.3, "position": 2}]},
    {"rows": [{"keys": ["2026-11-22", "MOBILE"], "clicks": 1, "impressions": 3, "ctr": 0.3, "position": 2}]},
    {"rows": [], "metadata": {"firstIncompleteDate": "2026-11-20T00:00:00-08:00"}},
    {"metadata": {"firstIncompleteDate": 20261120}},
    {"metadata": "2026-11-20"},
])
def test_daily_search_refuses_malformed_dates(answer):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "ya29.test", "expires_in": 3599})
        return httpx.Response(200, json=answer)

    client = GoogleClient(client_id="id", client_secret=Secret("s"), refresh_token=Secret("r"),
                          limiter=RateLimiter(100, 1), token_url="http://google.test/token",
                          search_console_url="http://google.test/webmasters/v3", max_wait=0.01)
    client._http = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(ProviderError) as failure:
        client.daily_search("sc-domain:one.example", TODAY - timedelta(days=5), TODAY)
    assert failure.value.code == "malformed"


# --- page and query values from the site's pages -----------------------------------------------------------------------

PAGES = {
    "https://one.example/": "one",
    "https://one.example/about/": "about",
    "https://one.example/nc/charlotte/roof-repair-charlotte-nc/": "roof repair charlotte nc",
    **{f"https://one.example/nc/city-{i}/gutter-cleaning-city-{i}-nc/": f"gutter cleaning city {i} nc"
       for i in range(20)},
}


def _by_day(rows) -> dict[str, list]:
    """Rows grouped by their first key (the date)."""
    grouped: dict[str, list] = defaultdict(list)
    for row in rows:
        grouped[row.keys[0]].append(row)
    return grouped


def test_page_and_query_values_come_from_the_sites_pages(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    google.site_pages = lambda url: list(PAGES) if url == site else []
    start, end = TODAY - timedelta(days=30), TODAY - timedelta(days=3)
    pages = _by_day(client.search_analytics(site, start, end, dimensions=("date", "page")))
    queries = _by_day(client.search_analytics(site, start, end, dimensions=("date", "query")))
    totals = {r.keys[0]: r for r in client.search_analytics(site, start, end)}
    assert set(pages) == set(queries) == set(totals) and len(totals) > 10
    chosen = {}
    for day, rows in pages.items():
        chosen[day] = frozenset(r.keys[1] for r in rows)
        assert chosen[day] <= set(PAGES) and 1 <= len(chosen[day]) <= 12 and len(rows) == len(chosen[day])
        assert {r.keys[1] for r in queries[day]} == {PAGES[page] for page in chosen[day]}
        for grouped in (rows, queries[day]):  # each dimension's rows add up to the day's totals
            assert sum(r.clicks for r in grouped) == totals[day].clicks
            assert sum(r.impressions for r in grouped) == totals[day].impressions
    assert len(set(chosen.values())) > len(chosen) // 2  # days pick different pages
    assert any("one" in {PAGES[p] for p in c} for c in chosen.values())  # the home page: the domain's first label
    again = _by_day(client.search_analytics(site, start, end, dimensions=("date", "page")))
    assert {d: frozenset(r.keys[1] for r in rows) for d, rows in again.items()} == chosen  # the same call, the same


def test_without_site_pages_generic_values_still_add_up(google):
    client = _client(google)
    site = _verified_property(google, client, "one.example")
    start, end = TODAY - timedelta(days=20), TODAY
    totals = {r.keys[0]: r for r in client.search_analytics(site, start, end, data_state="all")}
    for dimensions in (("date", "query"), ("date", "page"), ("date", "query", "device")):
        rows = list(client.search_analytics(site, start, end, dimensions=dimensions, data_state="all"))
        for day, grouped in _by_day(rows).items():
            assert sum(r.clicks for r in grouped) == totals[day].clicks
            assert sum(r.impressions for r in grouped) == totals[day].impressions
    queries = {r.keys[1] for r in client.search_analytics(site, start, end, dimensions=("date", "query"))}
    assert queries == {"roofing near me", "roofing repair", "roofing cost"}
    google.site_pages = lambda url: []  # a site without pages yet: generic values too
    assert {r.keys[1] for r in client.search_analytics(site, start, end, dimensions=("date", "query"))} == queries
