"""The providers' official client libraries against our simulators: what the real APIs' own SDKs send and expect, with
response validation on, so a simulator that answers less than the API would fail here even when our clients (which
read only what they need) pass.

- Cloudflare: the official Python SDK (`cloudflare`, 5.x) with `_strict_response_validation=True`: every field its
  models require must be in the simulator's answers.
- Google: `google-api-python-client` built from its bundled discovery documents (`static_discovery=True`, no network),
  the endpoint pointed at the simulator, and google-auth refreshing the access token at the simulator's token endpoint.

Both talk through transports that refuse anything but loopback.
"""

from __future__ import annotations

import ipaddress
from datetime import date, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from spark_resources.simulators.cloudflare import CloudflareSimulator
from spark_resources.simulators.google import GoogleSimulator, provisional_traffic

cloudflare_sdk = pytest.importorskip("cloudflare", reason="the `dev` extra installs the official Cloudflare SDK")
discovery = pytest.importorskip("googleapiclient.discovery", reason="the `dev` extra installs google-api-python-client")
httplib2 = pytest.importorskip("httplib2")
google_auth_httplib2 = pytest.importorskip("google_auth_httplib2")
from google.oauth2.credentials import Credentials  # noqa: E402  (after the skips: google-auth comes with the client)

TOKEN = "official-sdk-token-123"
REFRESH = "1//official-client-refresh"
DOMAIN = "sdk-roofing.example"
TODAY = date(2026, 11, 22)


def _loopback(url: str) -> None:
    host = urlsplit(str(url)).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise AssertionError(f"a test tried to reach {host}: only loopback is allowed")


# --- Cloudflare -------------------------------------------------------------------------------------------------------


@pytest.fixture
def cloudflare():
    with CloudflareSimulator(token=TOKEN) as simulator:
        sdk = cloudflare_sdk.Cloudflare(
            api_token=TOKEN, base_url=simulator.base_url, max_retries=0, _strict_response_validation=True,
            http_client=httpx.Client(event_hooks={"request": [lambda request: _loopback(request.url)]}),
        )
        yield simulator, sdk
        sdk.close()


def test_the_cloudflare_sdk_creates_and_finds_zones(cloudflare):
    simulator, sdk = cloudflare
    zone = sdk.zones.create(account={"id": "acct-1"}, name=DOMAIN, type="full")
    sdk.zones.create(account={"id": "acct-2"}, name="other.example", type="full")
    assert (zone.name, zone.status, zone.account.id, zone.plan.name) == (DOMAIN, "pending", "acct-1", "Free Website")
    assert [z.id for z in sdk.zones.list(name=DOMAIN)] == [zone.id]
    assert [z.name for z in sdk.zones.list(account={"id": "acct-2"})] == ["other.example"]
    assert list(sdk.zones.list(status="active")) == []
    simulator.activate_zone(DOMAIN)
    assert [z.name for z in sdk.zones.list(status="active")] == [DOMAIN]
    assert sdk.zones.get(zone_id=zone.id).status == "active"
    with pytest.raises(cloudflare_sdk.BadRequestError) as exists:
        sdk.zones.create(account={"id": "acct-1"}, name=DOMAIN, type="full")
    assert exists.value.body["errors"][0]["code"] == 1061


def test_the_cloudflare_sdk_manages_dns_records_by_the_apis_rules(cloudflare):
    simulator, sdk = cloudflare
    zone = sdk.zones.create(account={"id": "acct-1"}, name=DOMAIN, type="full")
    apex = sdk.dns.records.create(zone_id=zone.id, type="CNAME", name="@", content="sites.example", ttl=1,
                                  proxied=True)
    www = sdk.dns.records.create(zone_id=zone.id, type="CNAME", name="WWW", content="sites.example", ttl=1,
                                 proxied=True)
    txt = sdk.dns.records.create(zone_id=zone.id, type="TXT", name=DOMAIN, content="google-site-verification=abc",
                                 ttl=1)  # beside the flattened apex CNAME
    assert (apex.name, www.name, www.proxied, txt.proxiable) == (DOMAIN, f"www.{DOMAIN}", True, False)
    assert sdk.dns.records.get(dns_record_id=www.id, zone_id=zone.id).content == "sites.example"
    by_name = sdk.dns.records.list(zone_id=zone.id, name={"exact": f"WWW.{DOMAIN.upper()}"})
    assert [r.id for r in by_name] == [www.id]
    by_content = sdk.dns.records.list(zone_id=zone.id, content={"exact": "google-site-verification=abc"})
    assert [r.id for r in by_content] == [txt.id]
    assert sorted(r.type for r in sdk.dns.records.list(zone_id=zone.id, type="CNAME")) == ["CNAME", "CNAME"]
    with pytest.raises(cloudflare_sdk.BadRequestError) as conflict:
        sdk.dns.records.create(zone_id=zone.id, type="A", name="www", content="192.0.2.1", ttl=1)
    assert conflict.value.body["errors"][0]["code"] == 81053
    with pytest.raises(cloudflare_sdk.BadRequestError) as proxied_txt:
        sdk.dns.records.create(zone_id=zone.id, type="TXT", name="x", content="v", ttl=1, proxied=True)
    assert proxied_txt.value.body["errors"][0]["code"] == 9004
    sdk.dns.records.delete(dns_record_id=www.id, zone_id=zone.id)
    with pytest.raises(cloudflare_sdk.NotFoundError):
        sdk.dns.records.get(dns_record_id=www.id, zone_id=zone.id)


# --- Google -----------------------------------------------------------------------------------------------------------


class _LoopbackHttp(httplib2.Http):
    def request(self, uri, *args, **kwargs):
        _loopback(uri)
        return super().request(uri, *args, **kwargs)


@pytest.fixture
def google():
    with GoogleSimulator(today=lambda: TODAY) as simulator:
        simulator.add_account("seo@example.com", REFRESH)
        credentials = Credentials(
            token=None, refresh_token=REFRESH, token_uri=simulator.token_url, client_id=simulator.client_id,
            client_secret=simulator.client_secret,
            scopes=["https://www.googleapis.com/auth/webmasters", "https://www.googleapis.com/auth/siteverification"],
        )
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=_LoopbackHttp())

        def build(name: str, version: str, endpoint: str):
            return discovery.build(name, version, http=http, static_discovery=True,
                                   client_options={"api_endpoint": endpoint})

        yield simulator, build


def test_the_google_client_verifies_adds_and_queries_a_property(google):
    simulator, build = google
    published: list[str] = []
    simulator.txt_lookup = lambda name: published if name == DOMAIN else []
    verification = build("siteVerification", "v1", f"{simulator.base_url}/siteVerification/v1/")
    site = {"type": "INET_DOMAIN", "identifier": DOMAIN}
    token = verification.webResource().getToken(body={"site": site, "verificationMethod": "DNS_TXT"}).execute()
    published.append(token["token"])
    verified = verification.webResource().insert(verificationMethod="DNS_TXT", body={"site": site}).execute()
    assert verified["owners"] == ["seo@example.com"]

    console = build("searchconsole", "v1", f"{simulator.base_url}/")
    property_url = f"sc-domain:{DOMAIN}"
    assert console.sites().list().execute() == {}  # no siteEntry key when there are none
    console.sites().add(siteUrl=property_url).execute()
    assert console.sites().list().execute()["siteEntry"] == [{"siteUrl": property_url, "permissionLevel": "siteOwner"}]
    assert console.sites().get(siteUrl=property_url).execute()["permissionLevel"] == "siteOwner"
    assert ("PUT", "/webmasters/v3/sites/sc-domain%3Asdk-roofing.example") in simulator.calls  # percent-encoded

    # the discovery document spells the enums in upper case: the API (and so the simulator) takes them
    report = console.searchanalytics().query(siteUrl=property_url, body={
        "startDate": "2024-01-01", "endDate": "2024-01-31", "dimensions": ["DATE", "DEVICE"], "type": "WEB",
        "dataState": "ALL", "aggregationType": "AUTO", "rowLimit": 25000,
    }).execute()
    assert report["rows"] and all(len(row["keys"]) == 2 for row in report["rows"])
    appearance = console.searchanalytics().query(siteUrl=property_url, body={
        "startDate": "2024-01-01", "endDate": "2024-01-31", "dimensions": ["SEARCH_APPEARANCE"],
    }).execute()
    assert {tuple(row["keys"]) for row in appearance["rows"]} == {("REVIEW_SNIPPET",)}


def test_the_google_client_reads_fresh_data_and_its_first_incomplete_date(google):
    simulator, build = google
    property_url = f"sc-domain:{DOMAIN}"
    simulator.properties["seo@example.com"].add(property_url)  # verified and added, as in the test above
    console = build("searchconsole", "v1", f"{simulator.base_url}/")
    start = TODAY - timedelta(days=13)
    report = console.searchanalytics().query(siteUrl=property_url, body={
        "startDate": start.isoformat(), "endDate": TODAY.isoformat(), "dataState": "all", "dimensions": ["date"],
    }).execute()
    assert report["metadata"] == {"firstIncompleteDate": "2026-11-20"}
    expected = {(start + timedelta(days=i)).isoformat(): provisional_traffic(property_url, start + timedelta(days=i),
                                                                             TODAY) for i in range(14)}
    assert {row["keys"][0]: (row["clicks"], row["impressions"], row["position"]) for row in report["rows"]} == {
        day: numbers for day, numbers in expected.items() if numbers is not None}
    final = console.searchanalytics().query(siteUrl=property_url, body={
        "startDate": start.isoformat(), "endDate": TODAY.isoformat(), "dimensions": ["DATE"], "dataState": "FINAL",
    }).execute()
    assert "metadata" not in final and max(row["keys"][0] for row in final["rows"]) <= "2026-11-19"
