"""Cloudflare Workers (PROVIDERS.md section 1, "Workers"): our client and the official SDK against the simulator, over
real HTTP on loopback. Script uploads, routes, and the proxied apex and www a route needs."""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

import httpx
import pytest

from spark_resources.providers.cloudflare import CloudflareClient
from spark_resources.providers.http import AuthenticationError, ProviderError, RateLimiter
from spark_resources.simulators.cloudflare import CloudflareSimulator

TOKEN = "workers-secret-token-123"
ACCOUNT = "0123456789abcdef0123456789abcdef"
DOMAIN = "demo-roofing.example"
ROUTER = "export default { async fetch(request, env) { return env.SITES.get('index.html'); } };\n"


@pytest.fixture
def cloudflare():
    with CloudflareSimulator(token=TOKEN, timeout_seconds=1.5) as simulator:
        yield simulator


def _client(simulator, **kwargs) -> CloudflareClient:
    kwargs.setdefault("limiter", RateLimiter(1200, 300))
    kwargs.setdefault("max_wait", 0.05)
    return CloudflareClient(simulator.base_url, kwargs.pop("token", TOKEN), read_timeout=1.0, **kwargs)


def _upload(client: CloudflareClient, source: str = ROUTER, **kwargs):
    kwargs.setdefault("compatibility_date", "2026-01-01")
    kwargs.setdefault("r2_buckets", {"SITES": "spark-sites"})
    kwargs.setdefault("plain_text", {"SITE": DOMAIN})
    return client.upload_worker_script(ACCOUNT, "spark-router", source, **kwargs)


def _raw_upload(simulator, files, name: str = "spark-router") -> httpx.Response:
    """A hand-made upload, for the shapes our client never sends."""
    return httpx.put(f"{simulator.base_url}/accounts/{ACCOUNT}/workers/scripts/{name}", files=files,
                     headers={"Authorization": f"Bearer {TOKEN}"})


def _metadata(**changes) -> tuple[None, bytes, str]:
    metadata = {"main_module": "worker.js", "compatibility_date": "2026-01-01",
                "bindings": [{"type": "r2_bucket", "name": "SITES", "bucket_name": "spark-sites"}], **changes}
    return (None, json.dumps(metadata).encode(), "application/json")


MODULE = ("worker.js", ("worker.js", ROUTER.encode(), "application/javascript+module"))


# --- scripts ----------------------------------------------------------------------------------------------------------


def test_a_worker_script_is_uploaded_with_its_bindings_and_a_reupload_replaces_it(cloudflare):
    client = _client(cloudflare)
    first = _upload(client)
    stored = cloudflare.scripts[ACCOUNT]["spark-router"]
    assert first.id == "spark-router" and first.etag and first.created_on == first.modified_on
    assert stored["modules"] == {"worker.js": {"content_type": "application/javascript+module",
                                               "content": ROUTER.encode()}}
    assert stored["metadata"] == {
        "main_module": "worker.js", "compatibility_date": "2026-01-01",
        "bindings": [{"type": "r2_bucket", "name": "SITES", "bucket_name": "spark-sites"},
                     {"type": "plain_text", "name": "SITE", "text": DOMAIN}]}
    cloudflare.clock = lambda: 1_900_000_000.0  # later: the re-upload's modified_on moves on
    second = _upload(client, ROUTER.replace("index.html", "404.html"))
    assert second.id == first.id and second.created_on == first.created_on
    assert second.etag != first.etag and second.modified_on > first.modified_on
    assert list(cloudflare.scripts[ACCOUNT]) == ["spark-router"]  # replaced, not added
    assert b"404.html" in cloudflare.scripts[ACCOUNT]["spark-router"]["modules"]["worker.js"]["content"]


def _refused(call) -> ProviderError:
    with pytest.raises(ProviderError) as refused:
        call()
    return refused.value


def test_uploads_the_api_would_refuse_are_refused_saying_what_is_wrong(cloudflare):
    client = _client(cloudflare)
    bad_binding = _refused(lambda: _upload(client, r2_buckets={"SITES": "Not_A_Bucket"}))
    assert bad_binding.code == 10021 and bad_binding.status == 400 and "r2_bucket binding SITES" in str(bad_binding)
    assert "JavaScript identifier" in str(_refused(lambda: _upload(client, plain_text={"my-var": "x"})))
    assert "compatibility_date" in str(_refused(lambda: _upload(client, compatibility_date="January 2026")))
    assert ACCOUNT not in cloudflare.scripts or "spark-router" not in cloudflare.scripts[ACCOUNT]

    def error(response: httpx.Response) -> tuple[int, int, str]:
        body = response.json()
        assert body["success"] is False and body["result"] is None
        return response.status_code, body["errors"][0]["code"], body["errors"][0]["message"]

    status, code, message = error(_raw_upload(cloudflare, [MODULE]))
    assert (status, code) == (400, 10021) and "metadata" in message
    status, code, message = error(_raw_upload(cloudflare, [("metadata", _metadata(main_module="index.js")), MODULE]))
    assert (status, code) == (400, 10021) and 'No such module "index.js"' in message
    wrong_type = ("worker.js", ("worker.js", ROUTER.encode(), "text/plain"))
    status, code, message = error(_raw_upload(cloudflare, [("metadata", _metadata()), wrong_type]))
    assert (status, code) == (400, 10021) and "worker.js" in message and "text/plain" in message
    for bindings, complaint in [
        ("SITES", "bindings must be a list"),
        ([{"type": "r2_bucket", "name": "SITES"}], "needs bucket_name"),
        ([{"type": "plain_text", "name": "X", "text": 3}], "needs text"),
        ([{"type": "teleporter", "name": "X"}], "unknown type 'teleporter'"),
        ([{"type": "plain_text", "name": "X", "text": "a"}, {"type": "plain_text", "name": "X", "text": "b"}],
         "used twice"),
    ]:
        status, code, message = error(_raw_upload(cloudflare, [("metadata", _metadata(bindings=bindings)), MODULE]))
        assert (status, code) == (400, 10021) and complaint in message, message
    not_json = _raw_upload(cloudflare, [("metadata", (None, b"{nope", "application/json")), MODULE])
    assert error(not_json)[2] == "metadata: not a JSON object"
    json_body = httpx.put(f"{cloudflare.base_url}/accounts/{ACCOUNT}/workers/scripts/spark-router",
                          json={"main_module": "worker.js"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert error(json_body)[:2] == (400, 10021) and "multipart/form-data" in error(json_body)[2]
    assert "spark-router" not in cloudflare.scripts.get(ACCOUNT, {})
    # the contract's own shape (a part named as main_module, no filename) is accepted like the SDK's
    plain_part = ("worker.js", (None, ROUTER.encode(), "application/javascript+module"))
    assert _raw_upload(cloudflare, [("metadata", _metadata()), plain_part]).status_code == 200


def test_workers_calls_need_the_tokens_workers_permissions_and_keep_it_out_of_errors(cloudflare):
    client = _client(cloudflare, token="wrong-workers-token")
    failure = _refused(lambda: _upload(client))
    assert isinstance(failure, AuthenticationError) and failure.code == 10000
    assert "wrong-workers-token" not in str(failure) and "wrong-workers-token" not in repr(failure)
    zone, _ = _client(cloudflare).ensure_zone(DOMAIN, ACCOUNT)
    cloudflare.token_permissions = frozenset({"workers_scripts:edit"})  # no Workers Routes Write
    client = _client(cloudflare)
    _upload(client)
    denied = _refused(lambda: client.ensure_worker_route(zone.id, f"{DOMAIN}/*", "spark-router"))
    assert isinstance(denied, AuthenticationError) and denied.code == 10000 and TOKEN not in str(denied)
    cloudflare.token_permissions = frozenset()
    assert isinstance(_refused(lambda: _upload(client)), AuthenticationError)
    assert len(cloudflare.calls) == 6  # each refused once, not retried


@pytest.mark.parametrize("kind", ["429", "500", "malformed"])
def test_a_transient_fault_during_an_upload_is_retried_with_the_same_parts(cloudflare, kind):
    client = _client(cloudflare)
    cloudflare.inject(kind, times=2)
    script = _upload(client)
    assert script.etag and len(cloudflare.calls) == 3
    assert cloudflare.scripts[ACCOUNT]["spark-router"]["modules"]["worker.js"]["content"] == ROUTER.encode()


# --- routes -----------------------------------------------------------------------------------------------------------


def test_a_route_is_ensured_idempotently_and_moved_to_another_script(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone(DOMAIN, ACCOUNT)
    route, outcome = client.ensure_worker_route(zone.id, f"{DOMAIN}/*", "spark-router")
    assert outcome == "created" and (route.pattern, route.script) == (f"{DOMAIN}/*", "spark-router")
    calls = len(cloudflare.calls)
    assert client.ensure_worker_route(zone.id, f"{DOMAIN}/*", "spark-router") == (route, "unchanged")
    assert cloudflare.calls[calls:] == [("GET", f"/client/v4/zones/{zone.id}/workers/routes")]  # a list, no write
    moved, outcome = client.ensure_worker_route(zone.id, f"{DOMAIN}/*", "spark-router-v2")
    assert outcome == "updated" and moved.id == route.id and moved.script == "spark-router-v2"
    www, outcome = client.ensure_worker_route(zone.id, f"www.{DOMAIN}/*", "spark-router")
    assert outcome == "created"
    assert sorted((r.pattern, r.script) for r in client.list_worker_routes(zone.id)) == [
        (f"{DOMAIN}/*", "spark-router-v2"), (f"www.{DOMAIN}/*", "spark-router")]


def test_the_simulator_refuses_a_duplicate_pattern_a_foreign_pattern_and_an_unknown_route(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone(DOMAIN, ACCOUNT)
    route = client.create_worker_route(zone.id, f"{DOMAIN}/*", "spark-router")
    duplicate = _refused(lambda: client.create_worker_route(zone.id, f"{DOMAIN}/*", "other-script"))
    assert duplicate.code == 10020 and "duplicate_route" in str(duplicate)
    other = client.create_worker_route(zone.id, f"www.{DOMAIN}/*", "spark-router")
    assert _refused(lambda: client.update_worker_route(zone.id, other.id, f"{DOMAIN}/*", "spark-router")).code == 10020
    assert _refused(lambda: client.create_worker_route(zone.id, "elsewhere.example/*", "spark-router")).code == 10022
    missing = _refused(lambda: client.update_worker_route(zone.id, "f" * 32, f"{DOMAIN}/x*", "spark-router"))
    assert missing.status == 404
    assert _refused(lambda: client.list_worker_routes("0" * 32)).code == 7003
    assert [r.id for r in client.list_worker_routes(zone.id)] == [route.id, other.id]


def test_a_route_to_a_missing_script_is_refused_only_when_configured(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone(DOMAIN, ACCOUNT)
    assert client.ensure_worker_route(zone.id, f"{DOMAIN}/*", "not-uploaded")[1] == "created"  # contract: silent
    cloudflare.refuse_routes_to_missing_scripts = True
    assert _refused(lambda: client.ensure_worker_route(zone.id, f"www.{DOMAIN}/*", "spark-router")).code == 10019
    _upload(client)
    assert client.ensure_worker_route(zone.id, f"www.{DOMAIN}/*", "spark-router")[1] == "created"


# --- the proxied apex and www a route needs ---------------------------------------------------------------------------


def test_apex_and_www_are_made_proxied_once_converting_an_unproxied_record(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone(DOMAIN, ACCOUNT)
    existing = client.create_dns_record(zone.id, type="CNAME", name=f"www.{DOMAIN}", content="sites.example")
    client.create_dns_record(zone.id, type="TXT", name=DOMAIN, content="google-site-verification=x")
    first = client.ensure_proxied_hostnames(zone.id, DOMAIN)
    assert [(e.record.type, e.record.name, e.record.content, e.record.proxied, e.outcome) for e in first] == [
        ("AAAA", DOMAIN, "100::", True, "created"),
        ("CNAME", f"www.{DOMAIN}", "sites.example", True, "updated"),
    ]
    assert first[1].record.id == existing.id  # updated in place, not duplicated
    writes = len(cloudflare.calls)
    again = client.ensure_proxied_hostnames(zone.id, DOMAIN)
    assert [e.outcome for e in again] == ["unchanged", "unchanged"]
    assert all(method == "GET" for method, _ in cloudflare.calls[writes:])
    assert sorted((r.type, r.name, r.proxied) for r in client.list_dns_records(zone.id)) == [
        ("AAAA", DOMAIN, True), ("CNAME", f"www.{DOMAIN}", True), ("TXT", DOMAIN, False)]


def test_every_unproxied_address_record_at_a_name_is_proxied(cloudflare):
    client = _client(cloudflare)
    zone, _ = client.ensure_zone(DOMAIN, ACCOUNT)
    cloudflare.import_records(DOMAIN, [("A", DOMAIN, "192.0.2.1"), ("A", DOMAIN, "192.0.2.2")])
    ensured = client.ensure_proxied_hostnames(zone.id, DOMAIN)
    assert [(e.record.content, e.outcome) for e in ensured] == [
        ("192.0.2.1", "updated"), ("192.0.2.2", "updated"), ("100::", "created")]
    assert all(r.proxied for r in client.list_dns_records(zone.id))


# --- the official SDK against the simulator ---------------------------------------------------------------------------

cloudflare_sdk = pytest.importorskip("cloudflare", reason="the `dev` extra installs the official Cloudflare SDK")


def _loopback(url) -> None:
    host = urlsplit(str(url)).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise AssertionError(f"a test tried to reach {host}: only loopback is allowed")


@pytest.fixture
def sdk(cloudflare):
    client = cloudflare_sdk.Cloudflare(
        api_token=TOKEN, base_url=cloudflare.base_url, max_retries=0, _strict_response_validation=True,
        http_client=httpx.Client(event_hooks={"request": [lambda request: _loopback(request.url)]}),
    )
    yield client
    client.close()


def test_the_sdk_uploads_a_worker_module_the_simulator_accepts(cloudflare, sdk):
    metadata = {"main_module": "worker.js", "compatibility_date": "2026-01-01",
                "bindings": [{"type": "r2_bucket", "name": "SITES", "bucket_name": "spark-sites"},
                             {"type": "plain_text", "name": "SITE", "text": DOMAIN}]}
    # the SDK sends each file in a part named `files`, the module's name as its filename
    script = sdk.workers.scripts.update("spark-router", account_id=ACCOUNT, metadata=metadata,
                                        files=[("worker.js", ROUTER.encode(), "application/javascript+module")])
    assert script.id == "spark-router" and script.etag and script.created_on is not None
    assert cloudflare.scripts[ACCOUNT]["spark-router"]["modules"]["worker.js"]["content"] == ROUTER.encode()
    assert cloudflare.scripts[ACCOUNT]["spark-router"]["metadata"] == metadata
    with pytest.raises(cloudflare_sdk.BadRequestError) as wrong_type:
        sdk.workers.scripts.update("spark-router", account_id=ACCOUNT, metadata=metadata,
                                   files=[("worker.js", ROUTER.encode(), "text/plain")])
    assert wrong_type.value.body["errors"][0]["code"] == 10021


def test_the_sdk_creates_lists_and_updates_routes_on_the_simulator(cloudflare, sdk):
    zone = sdk.zones.create(account={"id": ACCOUNT}, name=DOMAIN, type="full")
    route = sdk.workers.routes.create(zone_id=zone.id, pattern=f"{DOMAIN}/*", script="spark-router")
    assert (route.pattern, route.script) == (f"{DOMAIN}/*", "spark-router")
    assert [(r.id, r.pattern) for r in sdk.workers.routes.list(zone_id=zone.id)] == [(route.id, f"{DOMAIN}/*")]
    updated = sdk.workers.routes.update(route_id=route.id, zone_id=zone.id, pattern=f"{DOMAIN}/*", script="v2")
    assert (updated.id, updated.script) == (route.id, "v2")
    assert sdk.workers.routes.get(route_id=route.id, zone_id=zone.id).script == "v2"
    with pytest.raises(cloudflare_sdk.APIStatusError) as duplicate:
        sdk.workers.routes.create(zone_id=zone.id, pattern=f"{DOMAIN}/*", script="other")
    assert duplicate.value.body["errors"][0]["code"] == 10020
    with pytest.raises(cloudflare_sdk.NotFoundError):
        sdk.workers.routes.get(route_id="f" * 32, zone_id=zone.id)
    sdk.workers.routes.delete(route_id=route.id, zone_id=zone.id)
    assert list(sdk.workers.routes.list(zone_id=zone.id)) == []
