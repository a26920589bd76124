"""The Matomo client against the local simulator, over real HTTP on loopback: sites created once, daily reports with
their quirks (`[]` days, "68%"), errors under HTTP 200 and 401, faults, and a token kept out of URLs and errors."""

from __future__ import annotations

import json
from datetime import date, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from spark_resources.providers.http import AuthenticationError, ProviderError, TransientProviderError
from spark_resources.providers.matomo import (
    MAX_SITES_PER_CALL,
    DailyVisits,
    MatomoClient,
    MatomoResource,
    parse_bounce_rate,
    site_id_in_error,
)
from spark_resources.simulators.matomo import BAD_TOKEN, EMPTY_DAY, PARTIAL_DAY_FRACTIONS, MatomoSimulator

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


# --- several sites in one call ----------------------------------------------------------------------------------------

TODAY = date(2026, 11, 22)


def _sites(simulator, count: int) -> list[int]:
    client = _client(simulator)
    return [client.add_site(f"Site {i}", [f"https://site-{i}.example"]) for i in range(1, count + 1)]


def _raw(simulator, **params) -> httpx.Response:
    return httpx.post(simulator.base_url, data={"module": "API", "method": "VisitsSummary.get", "period": "day",
                                                "format": "JSON", "token_auth": TOKEN, **params})


def _sent(simulator) -> list[str]:
    """The idSite of every VisitsSummary.get the simulator received."""
    forms = [parse_qs(r.body.decode()) for r in simulator.requests]
    return [f["idSite"][0] for f in forms if f["method"] == ["VisitsSummary.get"]]


def test_a_list_of_sites_is_one_call_answering_each_site_as_alone(matomo):
    _sites(matomo, 3)
    client = _client(matomo)
    before = len(matomo.calls)
    by_site = client.daily_visits_by_site([3, 1, 3], START, END)
    assert _sent(matomo) == ["1,3"] and len(matomo.calls) - before == 1  # sorted, de-duplicated, one call
    assert sorted(by_site) == [1, 3]
    for site_id in (1, 3):
        assert by_site[site_id] == client.daily_visits(site_id, START, END)
        assert [r.date for r in by_site[site_id]] == [START + timedelta(days=i) for i in range(61)]
    assert by_site[1] != by_site[3]
    assert client.daily_visits_by_site([2], START, START) == {2: client.daily_visits(2, START, START)}  # unkeyed
    answer = _raw(matomo, idSite="1,3", date="2026-10-01,2026-10-02").json()
    assert set(answer) == {"1", "3"} and set(answer["1"]) == {"2026-10-01", "2026-10-02"}  # keyed by site, then day


def test_all_sites_answers_every_site_the_token_can_view(matomo):
    _sites(matomo, 3)
    client = _client(matomo)
    by_site = client.daily_visits_by_site(None, START, END)
    assert _sent(matomo) == ["all"]
    assert by_site == {site_id: client.daily_visits(site_id, START, END) for site_id in (1, 2, 3)}


def test_all_sites_on_an_instance_without_sites_is_empty(matomo):
    assert _raw(matomo, idSite="all", date="2026-10-01,2026-10-02").json() == []  # PHP's empty array
    assert _client(matomo).daily_visits_by_site(None, START, END) == {}


def test_an_empty_list_asks_nothing(matomo):
    assert _client(matomo).daily_visits_by_site([], START, END) == {}
    assert matomo.calls == []


def test_one_day_for_several_sites(matomo):
    _sites(matomo, 2)
    client = _client(matomo)
    matomo.set_day(1, START, [])
    by_site = client.daily_visits_by_site([1, 2], START, START)
    assert by_site[1] == [DailyVisits(START, 0, 0, 0, 0.0, 0)]
    assert by_site[2] == client.daily_visits(2, START, START) and by_site[2][0].visits > 0
    # `date=D` without a range: one period per site, no date label (zeros for a day without data)
    single = _raw(matomo, idSite="1,2", date=START.isoformat()).json()
    assert single["1"] == EMPTY_DAY and single["2"]["nb_visits"] == by_site[2][0].visits


def test_one_day_for_several_sites_answered_without_date_labels():
    """Matomo answers a single period per site unlabelled; the client reads that shape too (and `[]` as zeros)."""
    answers = {"1,2": {"1": {"nb_visits": 7, "nb_uniq_visitors": 5, "nb_actions": 9, "bounce_rate": "43%",
                             "avg_time_on_site": 61}, "2": []},
               "3": {"nb_visits": 4, "nb_uniq_visitors": 4, "nb_actions": 4, "bounce_rate": "100%",
                     "avg_time_on_site": 0}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers[parse_qs(request.content.decode())["idSite"][0]])

    client = MatomoClient("http://matomo.test/index.php", TOKEN, transport=httpx.MockTransport(handler))
    assert client.daily_visits_by_site([1, 2], START, START) == {
        1: [DailyVisits(START, 7, 5, 9, 0.43, 61)], 2: [DailyVisits(START, 0, 0, 0, 0.0, 0)]}
    assert client.daily_visits(3, START, START) == [DailyVisits(START, 4, 4, 4, 1.0, 0)]


def test_a_list_naming_a_site_without_access_says_which(matomo):
    _sites(matomo, 2)
    client = _client(matomo)
    with pytest.raises(AuthenticationError) as failure:
        client.daily_visits_by_site([9, 1, 7, 2], START, END)
    assert site_id_in_error(failure.value) == 7  # the first such id, in sorted order
    assert "requires 'view' access for the website id = 7" in str(failure.value)
    assert matomo.calls.count("VisitsSummary.get") == 1  # not retried
    with pytest.raises(AuthenticationError) as alone:
        client.daily_visits(42, START, START)
    assert site_id_in_error(alone.value) == 42
    assert site_id_in_error(ProviderError("matomo", BAD_TOKEN)) is None


def test_site_lists_are_read_as_matomo_reads_them(matomo):
    _sites(matomo, 2)
    assert set(_raw(matomo, idSite=" 1 , 2 ,", date="2026-10-01,2026-10-01").json()) == {"1", "2"}
    assert set(_raw(matomo, idSite="2,", date="2026-10-01,2026-10-01").json()) == {"2026-10-01"}  # one site: unkeyed
    refused = _raw(matomo, idSite="1,abc", date="2026-10-01,2026-10-01").json()
    assert refused["result"] == "error" and refused["message"].endswith("website id = abc.")


def test_long_lists_go_in_several_calls(matomo):
    count = 2 * MAX_SITES_PER_CALL + 1
    matomo.sites.update({i: {"name": f"Site {i}", "urls": [f"https://site-{i}.example"], "timezone": "UTC",
                             "currency": "USD"} for i in range(1, count + 1)})
    by_site = _client(matomo).daily_visits_by_site(list(range(count, 0, -1)), START, START + timedelta(days=1))
    sent = _sent(matomo)
    assert [len(ids.split(",")) for ids in sent] == [MAX_SITES_PER_CALL, MAX_SITES_PER_CALL, 1]
    assert sent[0].split(",")[:2] == ["1", "2"] and sent[2] == str(count)  # the last, lone id is answered unkeyed
    assert sorted(by_site) == list(range(1, count + 1))
    assert by_site[count] == _client(matomo).daily_visits(count, START, START + timedelta(days=1))


@pytest.mark.parametrize("answer", [
    {"1": {"2026-10-01": []}},  # site 2 missing
    {"1": {"2026-10-01": []}, "2": "nope"},
    {"1": {"2026-10-01": []}, "2": {"2026-10-01": 3}},
    {"1": {"2026-10-01": []}, "2": {"sometime": {}}},
    ["not", "keyed"],
    {"site-1": {}, "site-2": {}},
])
def test_an_answer_not_shaped_as_matomos_is_malformed(answer):
    client = MatomoClient("http://matomo.test/index.php", TOKEN,
                          transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer)))
    with pytest.raises(ProviderError) as failure:
        client.daily_visits_by_site([1, 2], START, START + timedelta(days=1))
    assert failure.value.code == "malformed" and not isinstance(failure.value, TransientProviderError)


# --- late data --------------------------------------------------------------------------------------------------------


@pytest.fixture
def late_matomo():
    with MatomoSimulator(token=TOKEN, today=lambda: TODAY) as simulator:
        yield simulator


def _partial(full: dict, fraction) -> dict:
    return {key: int(full[key] * fraction) for key in
            ("nb_visits", "nb_actions", "bounce_count", "sum_visit_length")}


def test_today_and_yesterday_are_partial_and_later_days_empty(late_matomo):
    site_ids = _sites(late_matomo, 8)
    client = _client(late_matomo)
    start, end = TODAY - timedelta(days=4), TODAY + timedelta(days=2)
    by_site = client.daily_visits_by_site(site_ids, start, end)
    checked = set()
    for site_id, rows in by_site.items():
        assert [r.date for r in rows] == [start + timedelta(days=i) for i in range(7)]
        for row in rows:
            full = late_matomo.full_report(site_id, row.date)
            age = (TODAY - row.date).days
            if age < 0:
                assert row == DailyVisits(row.date, 0, 0, 0, 0.0, 0)  # no data from the future
            elif age >= 2:
                assert row == client.daily_visits(site_id, row.date, row.date)[0]
                assert row.visits == (full["nb_visits"] if full else 0)  # settled
            elif full and int(full["nb_visits"] * PARTIAL_DAY_FRACTIONS[age]):
                expected = _partial(full, PARTIAL_DAY_FRACTIONS[age])
                assert row.visits == expected["nb_visits"] < full["nb_visits"]
                assert row.actions == expected["nb_actions"]
                assert row.avg_time_on_site == round(expected["sum_visit_length"] / expected["nb_visits"])
                assert row.bounce_rate == pytest.approx(round(expected["bounce_count"] / expected["nb_visits"], 2))
                assert 1 <= row.unique_visitors <= row.visits <= row.actions
                checked.add(age)
    assert checked == {0, 1}  # both partial days were seen with data


def test_a_partial_day_without_visits_left_is_empty():
    today = [TODAY]
    with MatomoSimulator(token=TOKEN, today=lambda: today[0]) as simulator:
        day = next(TODAY - timedelta(days=i) for i in range(1, 400)
                   if simulator.full_report(1, TODAY - timedelta(days=i)) != []
                   and simulator.full_report(1, TODAY - timedelta(days=i))["nb_visits"] <= 2)
        today[0] = day
        assert simulator.day_report(1, day) == []  # 40 % of one or two visits rounds down to none
        today[0] = day + timedelta(days=2)
        assert simulator.day_report(1, day) == simulator.full_report(1, day)  # settled two days later


def test_set_day_answers_as_set_even_for_recent_days(late_matomo):
    report = {**EMPTY_DAY, "nb_visits": 10, "nb_uniq_visitors": 9, "nb_actions": 12, "bounce_rate": "50%"}
    late_matomo.set_day(1, TODAY, report)
    late_matomo.set_day(1, TODAY + timedelta(days=1), report)
    assert late_matomo.day_report(1, TODAY) == report == late_matomo.day_report(1, TODAY + timedelta(days=1))
    assert late_matomo.full_report(1, TODAY) == report


def test_date_keywords_follow_the_simulators_today(late_matomo):
    site_id, = _sites(late_matomo, 1)
    yesterday = TODAY - timedelta(days=1)
    assert _raw(late_matomo, idSite=site_id, date="yesterday").json() == (
        late_matomo.day_report(site_id, yesterday) or EMPTY_DAY)
    assert set(_raw(late_matomo, idSite=site_id, date="yesterday,today").json()) == {
        yesterday.isoformat(), TODAY.isoformat()}
    assert json.loads(_raw(late_matomo, idSite=site_id, date="2026-11-23,2026-11-24").text) == {
        "2026-11-23": [], "2026-11-24": []}
