"""The Matomo client against the local simulator, over real HTTP on loopback: sites created once, daily reports with
their quirks (`[]` days, "68%"), errors under HTTP 200 and 401, faults, and a token kept out of URLs and errors."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from spark_resources.providers.http import AuthenticationError, ProviderError, TransientProviderError
from spark_resources.providers.matomo import DailyVisits, MatomoClient, MatomoResource, parse_bounce_rate
from spark_resources.simulators.matomo import MatomoSimulator

TOKEN = "matomo-secret-token-123"
START, END = date(2026, 10, 1), date(2026, 11, 30)


@pytest.fixture
def matomo():
    with MatomoSimulator(token=TOKEN, timeout_seconds=1.5) as simulator:
        yield simulator


def _client(simulator, **kwargs) -> MatomoClient:
    kwargs.setdefault("max_wait", 0.05)
    kwargs.setdefault("read_timeout", 1.0)
    return MatomoClient(simulator.base_url, kwargs.pop("token", TOKEN), **kwargs)


def test_sites_are_created_once_and_found_by_url(matomo):
    client = _client(matomo)
    assert client.ensure_site("Demo Roofing", "https://demo-roofing.example") == (1, True)
    assert client.ensure_site("Demo Roofing", "https://demo-roofing.example") == (1, False)
    assert client.find_site_id("http://www.demo-roofing.example/") == 1  # idsite comes back as a string
    assert client.find_site_id("https://elsewhere.example") is None
    assert client.add_site("Other", ["https://other.example", "https://www.other.example"]) == 2
    assert matomo.sites[1]["name"] == "Demo Roofing" and len(matomo.sites) == 2
    assert matomo.sites[2]["urls"] == ["https://other.example", "https://www.other.example"]  # urls[] repeated


def test_the_token_travels_in_the_post_body_only(matomo):
    _client(matomo).ensure_site("Demo Roofing", "https://demo-roofing.example")
    assert matomo.requests
    for request in matomo.requests:
        form = parse_qs(request.body.decode())
        assert request.method == "POST" and TOKEN not in request.query and "token_auth" not in request.query
        assert form["token_auth"] == [TOKEN] and form["module"] == ["API"] and form["format"] == ["JSON"]
    assert matomo.calls == ["SitesManager.getSitesIdFromSiteUrl", "SitesManager.addSite"]


def test_a_token_in_the_query_string_is_refused(matomo):
    response = httpx.get(matomo.base_url, params={"module": "API", "method": "SitesManager.getSitesIdFromSiteUrl",
                                                  "url": "https://demo.example", "format": "JSON", "token_auth": TOKEN})
    assert response.status_code == 401 and response.json()["result"] == "error"
    assert TOKEN not in response.text


def test_daily_visits_cover_every_day_with_zeros_for_empty_days(matomo):
    client = _client(matomo)
    site_id, _ = client.ensure_site("Demo Roofing", "https://demo-roofing.example")
    rows = client.daily_visits(site_id, START, END)
    assert [r.date for r in rows] == [START + timedelta(days=i) for i in range(61)]
    assert matomo.calls.count("VisitsSummary.get") == 1  # one call for the whole range
    empty = [r for r in rows if matomo.day_report(site_id, r.date) == []]
    assert empty and all(r == DailyVisits(r.date, 0, 0, 0, 0.0, 0) for r in empty)
    full = [r for r in rows if r not in empty]
    assert full and all(r.visits > 0 and 0 < r.unique_visitors <= r.visits and r.actions >= r.visits for r in full)
    for row in full:
        raw = matomo.day_report(site_id, row.date)
        assert row.visits == raw["nb_visits"] and row.avg_time_on_site == raw["avg_time_on_site"]
        assert row.bounce_rate == pytest.approx(int(raw["bounce_rate"].rstrip("%")) / 100)
        assert 0.0 <= row.bounce_rate <= 1.0


def test_daily_visits_are_deterministic(matomo):
    with MatomoSimulator(token=TOKEN) as other:
        rows = [_client(s).daily_visits(_client(s).ensure_site("Demo", "https://demo.example")[0], START, END)
                for s in (matomo, other)]
    assert rows[0] == rows[1]
    client = _client(matomo)
    second, _ = client.ensure_site("Second", "https://second.example")
    assert client.daily_visits(second, START, END) != rows[0]  # another site gets other numbers


def test_the_contracts_sample_day_parses(matomo):
    client = _client(matomo)
    site_id = client.add_site("Demo", ["https://demo.example"])
    matomo.set_day(site_id, "2024-01-01", [])
    matomo.set_day(site_id, "2024-01-02", {
        "nb_uniq_visitors": 105, "nb_users": 0, "nb_visits": 111, "nb_actions": 213, "nb_visits_converted": 0,
        "bounce_count": 76, "sum_visit_length": 9307, "max_actions": 18, "bounce_rate": "68%",
        "nb_actions_per_visit": 1.9, "avg_time_on_site": 84})
    assert client.daily_visits(site_id, date(2024, 1, 1), date(2024, 1, 2)) == [
        DailyVisits(date(2024, 1, 1), 0, 0, 0, 0.0, 0),
        DailyVisits(date(2024, 1, 2), 111, 105, 213, 0.68, 84),
    ]
    assert client.daily_visits(site_id, date(2024, 1, 2), date(2024, 1, 2))[0].visits == 111
    assert parse_bounce_rate("68%") == 0.68 and parse_bounce_rate("0%") == 0.0 and parse_bounce_rate(0.5) == 0.5
    with pytest.raises(ValueError):
        client.daily_visits(site_id, date(2024, 1, 2), date(2024, 1, 1))


def test_a_site_without_access_is_an_authentication_error(matomo):
    with pytest.raises(AuthenticationError) as failure:
        _client(matomo).daily_visits(42, START, START)
    assert "requires 'view' access for the website id = 42" in str(failure.value)
    assert failure.value.status == 200 and matomo.calls == ["VisitsSummary.get"]


def test_other_errors_under_http_200_are_typed_and_not_retried(matomo):
    client = _client(matomo)
    with pytest.raises(ProviderError) as failure:
        client._call("VisitsSummary.getNothing", idSite=1)
    assert not isinstance(failure.value, (AuthenticationError, TransientProviderError))
    assert "does not exist" in str(failure.value) and failure.value.status == 200
    assert len(matomo.calls) == 1


@pytest.mark.parametrize("kind", ["429", "500", "malformed"])
def test_transient_faults_are_retried_and_succeed(matomo, kind):
    matomo.inject(kind, times=2)
    assert _client(matomo).find_site_id("https://demo.example") is None
    assert len(matomo.calls) == 3


def test_a_timeout_is_retried(matomo):
    matomo.inject("timeout", times=1)
    assert _client(matomo, read_timeout=0.5).find_site_id("https://demo.example") is None
    assert len(matomo.calls) == 2


def test_persistent_faults_give_up_with_a_typed_error(matomo):
    matomo.inject("500", times=10)
    with pytest.raises(TransientProviderError) as failure:
        _client(matomo, attempts=3).find_site_id("https://demo.example")
    assert failure.value.status == 500 and len(matomo.calls) == 3


def test_an_auth_fault_is_not_retried(matomo):
    matomo.inject("auth", times=5)
    with pytest.raises(AuthenticationError):
        _client(matomo).find_site_id("https://demo.example")
    assert len(matomo.calls) == 1


@pytest.mark.parametrize("version, status", [(4, 200), (5, 401)])
def test_a_wrong_token_is_an_authentication_error_without_the_token(version, status):
    with MatomoSimulator(token=TOKEN, version=version) as simulator:
        with pytest.raises(AuthenticationError) as failure:
            _client(simulator, token="wrong-secret-token").ensure_site("Demo", "https://demo.example")
        assert simulator.calls == ["SitesManager.getSitesIdFromSiteUrl"]
    assert failure.value.status == status and "Unable to authenticate" in str(failure.value)
    assert "wrong-secret-token" not in str(failure.value) and TOKEN not in str(failure.value)


def test_the_resource_builds_a_client_for_the_sandbox(matomo, monkeypatch):
    monkeypatch.setenv("MATOMO_TOKEN_AUTH", TOKEN)
    resource = MatomoResource(base_url=matomo.base_url, max_wait_seconds=0.05)
    client = resource.get_client()
    assert client.ensure_site("Demo", "https://demo.example") == (1, True)
    client.close()
    explicit = MatomoResource(base_url=matomo.base_url, token_auth=TOKEN).get_client()
    assert explicit.find_site_id("demo.example") == 1


def test_the_resource_without_a_token_is_a_provider_error(matomo, monkeypatch):
    monkeypatch.delenv("MATOMO_TOKEN_AUTH", raising=False)
    with pytest.raises(ProviderError) as failure:
        MatomoResource(base_url=matomo.base_url).get_client()
    assert failure.value.provider == "matomo" and "MATOMO_TOKEN_AUTH" in str(failure.value)
    assert matomo.calls == []


def test_whole_actions_per_visit_are_written_as_integers_as_matomo_does(matomo):
    site_id, _ = _client(matomo).ensure_site("Demo", "https://demo.example")
    answer = httpx.post(matomo.base_url, data={"module": "API", "method": "VisitsSummary.get", "idSite": site_id,
                                               "period": "day", "date": "2024-01-01,2024-12-31", "format": "JSON",
                                               "token_auth": TOKEN})
    values = [day["nb_actions_per_visit"] for day in answer.json().values() if day]
    whole = [v for v in values if float(v).is_integer()]
    assert whole and all(isinstance(v, int) for v in whole)  # `2`, never `2.0`
    assert any(isinstance(v, float) for v in values)  # and `1.9` stays a decimal
    assert '"nb_actions_per_visit": 2.0' not in answer.text and '"nb_actions_per_visit": 1.0' not in answer.text
