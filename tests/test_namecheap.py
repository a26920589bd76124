"""The Namecheap client against the local simulator: XML quirks, errors under HTTP 200, throttling, and the name server
change that activates a Cloudflare zone."""

from __future__ import annotations

import pytest

from spark_resources.providers.cloudflare import CloudflareClient
from spark_resources.providers.http import AuthenticationError, ProviderError, RateLimiter, TransientProviderError
from spark_resources.providers.namecheap import NamecheapClient, NamecheapResource, split_domain
from spark_resources.simulators.base import SimulatedClock
from spark_resources.simulators.cloudflare import CloudflareSimulator
from spark_resources.simulators.namecheap import NamecheapSimulator


@pytest.fixture
def namecheap():
    with NamecheapSimulator(api_user="spark", api_key="nc-secret-key", timeout_seconds=1.5) as simulator:
        simulator.register("demo-roofing.example")
        yield simulator


def _client(simulator, **overrides) -> NamecheapClient:
    # throttling backs off for up to a minute: on a simulated clock here, unless a test brings its own
    settings = dict(api_user="spark", api_key="nc-secret-key", username="spark", client_ip="127.0.0.1",
                    limiter=RateLimiter(1000, 60), max_wait=0.05, read_timeout=1.0, sleep=SimulatedClock().sleep)
    settings.update(overrides)
    return NamecheapClient(simulator.base_url, **settings)


def test_domains_are_listed_across_pages(namecheap):
    for i in range(130):
        namecheap.register(f"site{i:03d}.example")
    domains = _client(namecheap).list_domains()
    assert len(domains) == 131 and domains[0].name == "demo-roofing.example" and domains[0].is_our_dns


def test_setting_name_servers_points_the_domain_away_from_namecheap_dns(namecheap):
    client = _client(namecheap)
    assert client.get_nameservers("demo-roofing.example")[0] is True
    assert client.set_custom_nameservers("demo-roofing.example", ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"])
    assert client.get_nameservers("demo-roofing.example") == (False, ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"])


def test_a_cloudflare_zone_turns_active_when_the_registrar_points_at_it(namecheap):
    with CloudflareSimulator(token="cf") as cloudflare:
        namecheap.on_nameservers = lambda domain, servers: cloudflare.activate_zone(domain)
        zones = CloudflareClient(cloudflare.base_url, "cf", limiter=RateLimiter(100, 1))
        zone, _ = zones.ensure_zone("demo-roofing.example", "acct")
        assert zone.status == "pending"
        _client(namecheap).set_custom_nameservers("demo-roofing.example", list(zone.name_servers))
        assert zones.get_zone(zone.id).status == "active"


def test_errors_under_http_200_are_typed(namecheap):
    client = _client(namecheap)
    with pytest.raises(ProviderError) as missing:
        client.get_nameservers("not-mine.example")
    assert missing.value.code == "2019166" and "Domain not found" in str(missing.value)
    with pytest.raises(AuthenticationError) as not_whitelisted:
        _client(namecheap, client_ip="10.1.2.3").list_domains()
    assert not_whitelisted.value.code == "1011150" and len(namecheap.calls) == 2  # not retried


def test_a_bad_key_is_not_retried_and_never_shown(namecheap):
    with pytest.raises(AuthenticationError) as failure:
        _client(namecheap, api_key="wrong-secret").list_domains()
    assert failure.value.code == "1011102"
    assert "wrong-secret" not in str(failure.value)
    assert namecheap.calls == ["namecheap.domains.getList"]


@pytest.mark.parametrize("kind", ["405", "500000", "500", "malformed", "timeout"])
def test_transient_faults_are_retried(namecheap, kind):
    namecheap.inject(kind, times=2 if kind != "timeout" else 1)
    assert [d.name for d in _client(namecheap).list_domains()] == ["demo-roofing.example"]


def test_throttling_past_the_budget_gives_up_with_a_typed_error():
    with NamecheapSimulator(api_user="spark", api_key="nc-secret-key", requests_per_minute=2) as simulator:
        client = _client(simulator, attempts=2)
        client.list_domains()
        client.list_domains()
        with pytest.raises(TransientProviderError) as throttled:
            client.list_domains()
    assert throttled.value.status == 405


def test_split_domain_and_the_resource(namecheap):
    assert split_domain("demo-roofing.example") == ("demo-roofing", "example")
    with pytest.raises(ValueError):
        split_domain("localhost")
    resource = NamecheapResource(api_user="spark", api_key="nc-secret-key", username="spark", client_ip="127.0.0.1",
                                 base_url=namecheap.base_url)
    assert [d.name for d in resource.get_client().list_domains()] == ["demo-roofing.example"]


def test_throttling_under_a_five_per_minute_budget_is_waited_out():
    clock = SimulatedClock()  # the simulator's minute and the client's back-off on one simulated clock
    with NamecheapSimulator(api_user="spark", api_key="nc-secret-key", requests_per_minute=5,
                            clock=clock.time) as simulator:
        client = _client(simulator, sleep=clock.sleep, clock=clock.time)  # a limiter that does not know the budget
        for _ in range(6):
            assert [d.name for d in client.list_domains()] == []
    # the sixth call met HTTP 405 and backed off a quarter, a half, then a whole minute: the window had room again
    assert clock.slept == [15, 30, 60] and len(simulator.calls) == 9


def test_the_client_keeps_namecheaps_minute_hour_and_day_budgets():
    clock = SimulatedClock()
    with NamecheapSimulator(api_user="spark", api_key="nc-secret-key", requests_per_minute=3, requests_per_hour=4,
                            requests_per_day=5, clock=clock.time) as simulator:
        limiter = RateLimiter(windows=[(3, 60), (4, 3600), (5, 86400)], clock=clock.time, sleep=clock.sleep)
        client = _client(simulator, limiter=limiter, attempts=1, sleep=clock.sleep, clock=clock.time)
        start = clock.time()
        for _ in range(6):
            client.list_domains()  # attempts=1: one 405 would fail the test
    assert len(simulator.calls) == 6
    assert clock.time() - start >= 86400  # the sixth call waited for the day's budget
    resource = NamecheapResource(api_user="spark", api_key="nc-secret-key", client_ip="127.0.0.1")
    assert [calls for calls, _ in resource.get_client()._limiter.windows] == [20, 700, 8000]


def test_answers_carry_warnings_and_the_command_in_lower_case(namecheap):
    import xml.etree.ElementTree as ET

    import httpx

    answer = httpx.post(namecheap.base_url, data={"ApiUser": "spark", "ApiKey": "nc-secret-key", "UserName": "spark",
                                                  "ClientIp": "127.0.0.1", "Command": "namecheap.domains.getList"})
    root = ET.fromstring(answer.content)
    ns = {"nc": "http://api.namecheap.com/xml.response"}
    assert root.find("nc:Warnings", ns) is not None
    assert root.findtext("nc:RequestedCommand", namespaces=ns) == "namecheap.domains.getlist"
    assert root.find("nc:CommandResponse", ns).get("Type") == "namecheap.domains.getList"
