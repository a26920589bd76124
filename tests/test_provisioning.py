"""Provisioning against the sandbox (every provider's simulator, wired as in production), through the real clients and
real Dagster runs: each step converges, records its status, waits for the zone where it must, keeps a failure with its
own site, and never shows a secret."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from dagster import (
    AddDynamicPartitionsRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from spark_assets.automation.sensors import new_sites_sensor, zone_activation_sensor
from spark_assets.definitions import all_assets, defs
from spark_assets.ops import sandbox as sandbox_module
from spark_assets.ops.sandbox import Sandbox
from spark_assets.records.accounts import list_accounts
from spark_assets.records.registry import add_site
from spark_resources.providers.google import SearchConsoleResource, endpoints_on
from spark_resources.providers.namecheap import NamecheapResource

FERNET_KEY = "ZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmQ="
#: every credential the sandbox hands out: none may show up in a log, an event, metadata or an error
SECRETS = (
    sandbox_module.CLOUDFLARE_TOKEN,
    sandbox_module.NAMECHEAP["api_key"],
    sandbox_module.GOOGLE_REFRESH_TOKEN,
    sandbox_module.GOOGLE_CLIENT["client_secret"],
    sandbox_module.MATOMO_TOKEN,
    "ya29.sandbox-",  # the Google access tokens the simulator issues
)
ALL_STEPS = ["site_dns", "site_matomo", "site_search_console"]


@pytest.fixture
def providers(engine, monkeypatch):
    monkeypatch.setenv("SPARK_FERNET_KEY", FERNET_KEY)
    with Sandbox() as sandbox:
        with engine.begin() as conn:
            add_site(conn, "one.example", "One Roofing")
            add_site(conn, "two.example", "Two Roofing")
        sandbox.register_accounts(engine)
        yield sandbox


def _resources(sandbox, database) -> dict:
    # short back-off: failing tests stay fast
    return {**defs.resources, **sandbox.resources(max_wait_seconds=0.05), "database": database}


def _provision(instance, sandbox, database, domain: str, steps=ALL_STEPS, raise_on_error: bool = True):
    if domain not in instance.get_dynamic_partitions("site"):
        instance.add_dynamic_partitions("site", [domain])
    return materialize(all_assets, selection=steps, partition_key=domain, instance=instance,
                       resources=_resources(sandbox, database), raise_on_error=raise_on_error)


def _site(engine, domain: str):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM sites WHERE domain = :d"), {"d": domain}).one()


def _metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {key: entry.value for key, entry in event.materialization.metadata.items()}


def test_provisioning_twice_makes_one_of_everything(providers, database, engine):
    with instance_for_test() as instance:
        first = _provision(instance, providers, database, "one.example")
        second = _provision(instance, providers, database, "one.example")
    assert first.success and second.success
    (zone,) = providers.cloudflare.zones.values()
    records = sorted((r["type"], r["name"]) for r in providers.cloudflare.records[zone["id"]])
    assert records == [("CNAME", "one.example"), ("CNAME", "www.one.example"), ("TXT", "one.example")]
    assert providers.namecheap.domains["one.example"]["nameservers"] == zone["name_servers"]
    assert [s["name"] for s in providers.matomo.sites.values()] == ["One Roofing"]
    assert providers.google.properties[sandbox_module.GOOGLE_ACCOUNT] == {"sc-domain:one.example"}

    site = _site(engine, "one.example")
    assert (site.status_dns, site.cloudflare_zone_id, site.status_hosting, site.gsc_verification_status) == (
        "active", zone["id"], "active", "verified")
    assert site.matomo_site_id == next(iter(providers.matomo.sites)) and site.error_message is None
    assert _metadata(second, "site_dns")["zone_created"] is False
    assert _metadata(second, "site_dns")["records"] == {"one.example": "unchanged", "www.one.example": "unchanged"}
    # the edge router: the Worker script (the package's, bound to the sites bucket) and a route on the apex and www
    (scripts,) = providers.cloudflare.scripts.values()
    assert list(scripts) == ["spark-router"]
    routes = sorted((r["pattern"], r["script"]) for r in providers.cloudflare.worker_routes[zone["id"]])
    assert routes == [("one.example/*", "spark-router"), ("www.one.example/*", "spark-router")]
    assert _metadata(first, "site_dns")["worker_routes"] == {"one.example/*": "created", "www.one.example/*": "created"}
    assert _metadata(second, "site_dns")["worker_routes"] == {"one.example/*": "unchanged",
                                                               "www.one.example/*": "unchanged"}
    assert _metadata(second, "site_matomo")["matomo_site_created"] is False
    assert (_metadata(second, "site_search_console")["txt_record_created"],
            _metadata(second, "site_search_console")["property_added"]) == (False, False)
    with engine.connect() as conn:  # accounts were assigned automatically
        assert {a.label: a.sites for a in list_accounts(conn, "cloudflare")} == {"sandbox": 1}


def test_a_failure_marks_its_site_and_step_only_and_reruns_converge(providers, database, engine, database_url,
                                                                    monkeypatch):
    from click.testing import CliRunner

    from spark_assets.ops.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    with instance_for_test() as instance:
        assert _provision(instance, providers, database, "one.example").success
        providers.namecheap.inject("auth", times=1)
        failed = _provision(instance, providers, database, "two.example", steps=["site_dns"], raise_on_error=False)
        assert not failed.success
        two, one = _site(engine, "two.example"), _site(engine, "one.example")
        assert two.status_dns == "failed" and "API Key is invalid" in two.error_message
        assert (one.status_dns, one.gsc_verification_status, one.error_message) == ("active", "verified", None)
        listing = CliRunner().invoke(main, ["site", "list"]).output.splitlines()
        assert listing[2].split()[:6] == ["two.example", "Two", "Roofing", "active", "failed", "pending"]
        assert listing[3].startswith("  last error: DNS for two.example: namecheap: API Key is invalid")

        providers.matomo.inject("auth", times=1)
        assert not _provision(instance, providers, database, "two.example", steps=["site_matomo"],
                              raise_on_error=False).success
        assert _site(engine, "two.example").status_hosting == "failed"
        assert "Matomo for two.example: matomo:" in _site(engine, "two.example").error_message
        # another step's success does not wipe that cause out
        assert _provision(instance, providers, database, "two.example", steps=["site_dns"]).success
        assert _site(engine, "two.example").error_message.startswith("Matomo for two.example")

        assert _provision(instance, providers, database, "two.example").success  # the causes are gone
    two = _site(engine, "two.example")
    assert (two.status_dns, two.status_hosting, two.gsc_verification_status, two.error_message) == (
        "active", "active", "verified", None)
    assert len(providers.cloudflare.zones) == 2 and len(providers.matomo.sites) == 2


def test_search_console_waits_for_an_active_zone(providers, database, engine):
    providers.cloudflare.activation_delay_seconds = 3600
    with instance_for_test() as instance:
        assert _provision(instance, providers, database, "one.example", steps=["site_dns"]).success
        assert _site(engine, "one.example").status_dns == "pending"
        waiting = _provision(instance, providers, database, "one.example", steps=["site_search_console"],
                             raise_on_error=False)
    assert not waiting.success
    (failure,) = waiting.get_step_failure_events()
    assert "DNS is pending, not active yet" in failure.step_failure_data.error.message
    site = _site(engine, "one.example")
    assert (site.gsc_verification_status, site.error_message) == ("pending", None)  # waiting is not failing
    assert providers.google.calls == []


def test_verification_is_tried_again_while_dns_propagates(providers, database, engine):
    lookups = []

    def propagating(name: str) -> list[str]:  # Google sees the TXT record from its third lookup on
        lookups.append(name)
        return providers.cloudflare.txt_records(name) if len(lookups) >= 3 else []

    providers.google.txt_lookup = propagating
    resources = _resources_verifying_quickly(providers, database)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("site", ["one.example"])
        result = materialize(all_assets, selection=ALL_STEPS, partition_key="one.example", instance=instance,
                             resources=resources)
        events = [e.dagster_event.event_type_value for e in instance.all_logs(result.run_id) if e.dagster_event]
    assert result.success and len(lookups) == 3
    assert events.count("STEP_UP_FOR_RETRY") == 2
    assert _site(engine, "one.example").gsc_verification_status == "verified"

    providers.google.txt_lookup = lambda name: []  # never visible: after the retries, the step fails and says why
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE sites SET gsc_verification_status = 'pending'"))
    providers.google.verified.clear()
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("site", ["one.example"])
        failed = materialize(all_assets, selection=["site_search_console"], partition_key="one.example",
                             instance=instance, resources=resources, raise_on_error=False)
    assert not failed.success
    site = _site(engine, "one.example")
    assert site.gsc_verification_status == "failed"
    assert "verification token could not be found" in site.error_message


def test_without_an_account_the_step_says_what_to_do(providers, database, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cloudflare_accounts SET status = 'disabled'"))
    with instance_for_test() as instance:
        result = _provision(instance, providers, database, "one.example", steps=["site_dns"], raise_on_error=False)
    assert not result.success
    assert "spark account add-cloudflare" in _site(engine, "one.example").error_message


def test_an_unexpected_error_is_recorded_by_its_type_and_kept_in_the_log(providers, database, engine, monkeypatch):
    from spark_resources.providers.cloudflare import CloudflareClient

    def broken(self, zone_id):  # a bug, or an answer the contract does not know
        raise KeyError("name_servers")

    monkeypatch.setattr(CloudflareClient, "get_zone", broken)
    with instance_for_test() as instance:
        result = _provision(instance, providers, database, "one.example", steps=["site_dns"], raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "KeyError" in str(failure.step_failure_data.error)  # the traceback stays in the run's log
    site = _site(engine, "one.example")
    assert (site.status_dns, site.error_message) == ("failed", "DNS for one.example: unexpected KeyError (see the run's log)")


def test_missing_registrar_credentials_fail_the_step_and_name_the_variable(providers, database, engine, monkeypatch):
    for name in ("NAMECHEAP_API_USER", "NAMECHEAP_API_KEY", "NAMECHEAP_CLIENT_IP"):
        monkeypatch.delenv(name, raising=False)
    resources = _resources(providers, database)
    resources["namecheap"] = NamecheapResource(base_url=providers.namecheap.base_url)  # nothing configured
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("site", ["one.example"])
        result = materialize(all_assets, selection=["site_dns"], partition_key="one.example", instance=instance,
                             resources=resources, raise_on_error=False)
    assert not result.success
    assert "NAMECHEAP_API_USER, NAMECHEAP_API_KEY, NAMECHEAP_CLIENT_IP not set" in _site(engine, "one.example").error_message
    assert _site(engine, "one.example").status_dns == "failed"


def _tick(sensor, instance, resources, cursor=None):
    """One sensor tick, its partition requests applied to the instance as the daemon would."""
    result = sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests or []:
            assert isinstance(request, AddDynamicPartitionsRequest)
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _launch(instance, resources, result) -> list:
    """Execute a tick's run requests as the daemon would launch them."""
    assert isinstance(result, SensorResult)
    return [
        materialize(all_assets, selection=request.asset_selection, partition_key=request.partition_key,
                    instance=instance, resources=resources, tags=request.tags)
        for request in result.run_requests
    ]


def test_new_sites_are_provisioned_by_the_sensors_end_to_end(providers, database, engine):
    providers.cloudflare.activation_delay_seconds = 3600  # a zone turns active an hour after the name-server change
    resources = _resources(providers, database)
    with instance_for_test() as instance:
        new_sites = _tick(new_sites_sensor, instance, resources)
        assert sorted(r.partition_key for r in new_sites.run_requests) == ["one.example", "two.example"]
        assert all(sorted(k.to_user_string() for k in r.asset_selection) == ["site_dns", "site_matomo"]
                   for r in new_sites.run_requests)
        assert all(run.success for run in _launch(instance, resources, new_sites))
        assert {_site(engine, d).status_dns for d in ("one.example", "two.example")} == {"pending"}

        assert _tick(zone_activation_sensor, instance, resources).run_requests == []  # still pending
        providers.cloudflare.fast_forward(3600)
        activated = _tick(zone_activation_sensor, instance, resources)
        assert sorted(r.run_key for r in activated.run_requests) == sorted(
            f"zone-active:{d}:{_site(engine, d).cloudflare_zone_id}" for d in ("one.example", "two.example"))
        assert all(run.success for run in _launch(instance, resources, activated))
        assert isinstance(_tick(zone_activation_sensor, instance, resources), SkipReason)  # nothing left waiting
    for domain in ("one.example", "two.example"):
        site = _site(engine, domain)
        assert (site.status_dns, site.status_hosting, site.gsc_verification_status, site.error_message) == (
            "active", "active", "verified", None)
        assert site.matomo_site_id is not None


def test_pending_zones_are_asked_about_in_turn(providers, database, engine, monkeypatch):
    from spark_assets.automation import sensors

    providers.cloudflare.activation_delay_seconds = 3600
    resources = _resources(providers, database)
    monkeypatch.setattr(sensors, "ZONES_PER_TICK", 1)
    with instance_for_test() as instance:
        for domain in ("one.example", "two.example"):
            _provision(instance, providers, database, domain, steps=["site_dns"])
        zones = {_site(engine, d).cloudflare_zone_id: d for d in ("one.example", "two.example")}
        asked, cursor = [], None
        for _ in range(3):
            before = len(providers.cloudflare.calls)
            result = zone_activation_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))
            cursor = result.cursor
            asked += [zones[path.rsplit("/", 1)[1]] for _, path in providers.cloudflare.calls[before:]]
            assert result.run_requests == []
    assert asked == ["one.example", "two.example", "one.example"]  # round robin, wrapping around


def test_no_secret_reaches_the_event_log_metadata_or_errors(providers, database, engine, caplog):
    with engine.connect() as conn:
        stored = " ".join(conn.execute(sa.text(
            "SELECT a.api_token || g.oauth_refresh_token FROM cloudflare_accounts a, gsc_accounts g")).scalars())
    assert not any(secret in stored for secret in SECRETS)  # encrypted at rest
    with instance_for_test() as instance:
        _provision(instance, providers, database, "one.example")
        for simulator, fault in ((providers.namecheap, "500"), (providers.google, "500"), (providers.matomo, "auth")):
            simulator.inject(fault, times=10)  # failing runs too: errors and retries are logged
        _provision(instance, providers, database, "two.example", steps=["site_dns"], raise_on_error=False)
        _provision(instance, providers, database, "two.example", steps=["site_matomo"], raise_on_error=False)
        providers.namecheap.faults = type(providers.namecheap.faults)(providers.namecheap.faults.kinds)
        _provision(instance, providers, database, "two.example", steps=["site_dns", "site_search_console"],
                   raise_on_error=False)
        everything = "".join(str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id))
        everything += "".join(str(run.run_config) + str(run.tags) for run in instance.get_runs())
    with engine.connect() as conn:
        everything += " ".join(str(m) for m in conn.execute(sa.text("SELECT error_message FROM sites")).scalars())
    everything += caplog.text
    assert "ASSET_MATERIALIZATION" in everything and "STEP_FAILURE" in everything
    assert "Search Console for two.example" in everything and "Matomo for two.example" in everything
    leaked = [secret for secret in SECRETS if secret in everything]
    assert leaked == []


def test_accounts_are_added_from_the_cli_without_showing_tokens(database_url, engine, monkeypatch):
    from click.testing import CliRunner

    from spark_assets.ops.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SPARK_FERNET_KEY", FERNET_KEY)
    monkeypatch.setenv("CF_TOKEN_1", "cf-secret-token-value")
    runner = CliRunner()
    added = runner.invoke(main, ["account", "add-cloudflare", "ops@example.com", "--nickname", "cf-1",
                                 "--account-id", "acct-1", "--token-env", "CF_TOKEN_1"])
    prompted = runner.invoke(main, ["account", "add-gsc", "seo@example.com"], input="refresh-secret\n")
    listing = runner.invoke(main, ["account", "list"])
    assert added.exit_code == 0 and "added: cloudflare account cf-1" in added.output
    assert prompted.exit_code == 0 and "added: gsc account seo@example.com" in prompted.output
    assert "cf-1" in listing.output and "seo@example.com" in listing.output
    for output in (added.output, prompted.output, listing.output):
        assert "cf-secret-token-value" not in output and "refresh-secret" not in output
    missing = runner.invoke(main, ["account", "add-cloudflare", "x@example.com", "--nickname", "cf-2",
                                   "--account-id", "a", "--token-env", "NOT_SET_ANYWHERE"])
    assert missing.exit_code == 1 and "NOT_SET_ANYWHERE is empty or not set" in missing.output

    # the operator can name the accounts a new site uses; a wrong name adds nothing
    wrong = runner.invoke(main, ["site", "add", "named.example", "--cloudflare-account", "cf-9"])
    assert wrong.exit_code == 1 and "no Cloudflare account nicknamed 'cf-9'" in wrong.output
    assert "named.example" not in runner.invoke(main, ["site", "list"]).output
    named = runner.invoke(main, ["site", "add", "named.example", "--cloudflare-account", "cf-1",
                                 "--gsc-account", "seo@example.com"])
    assert named.exit_code == 0 and "accounts: cf-1, seo@example.com" in named.output
    with engine.connect() as conn:
        assert {a.label: a.sites for kind in ("cloudflare", "gsc") for a in list_accounts(conn, kind)} == {
            "cf-1": 1, "seo@example.com": 1}


def _events(instance, result) -> list:
    return [e for e in instance.all_logs(result.run_id)]


def test_a_refresh_token_revoked_mid_step_fails_at_once_without_retrying(providers, database, engine, monkeypatch):
    from spark_resources.providers.cloudflare import CloudflareClient

    publish = CloudflareClient.ensure_record_present

    def publish_then_revoke(self, *args, **kwargs):  # the account's owner revokes access while the TXT is published
        published = publish(self, *args, **kwargs)
        providers.google.revoke(sandbox_module.GOOGLE_REFRESH_TOKEN)
        return published

    monkeypatch.setattr(CloudflareClient, "ensure_record_present", publish_then_revoke)
    resources = _resources_verifying_quickly(providers, database)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("site", ["one.example"])
        result = materialize(all_assets, selection=ALL_STEPS, partition_key="one.example", instance=instance,
                             resources=resources, raise_on_error=False)
        events = [e.dagster_event.event_type_value for e in _events(instance, result) if e.dagster_event]
        messages = " ".join(e.user_message for e in _events(instance, result))
    assert not result.success
    assert events.count("STEP_UP_FOR_RETRY") == 0 and "cannot see the TXT record" not in messages
    site = _site(engine, "one.example")
    assert site.gsc_verification_status == "failed"
    assert "Search Console for one.example: google: OAuth refresh refused: Token has been expired or revoked" in (
        site.error_message)


def test_records_imported_with_the_zone_are_replaced_and_reported(providers, database, engine):
    from spark_resources.providers.cloudflare import CloudflareClient
    from spark_resources.providers.http import RateLimiter

    # the zone was added by hand earlier, and Cloudflare imported the old host's records
    client = CloudflareClient(providers.cloudflare.base_url, sandbox_module.CLOUDFLARE_TOKEN,
                              limiter=RateLimiter(100, 1))
    client.create_zone("one.example", "sandbox-account")
    providers.cloudflare.import_records("one.example", [("A", "one.example", "192.0.2.10"),
                                                        ("A", "www.one.example", "192.0.2.10")])
    with instance_for_test() as instance:
        result = _provision(instance, providers, database, "one.example", steps=["site_dns"])
        warnings = [e.user_message for e in _events(instance, result) if e.level == logging.WARNING]
    metadata = _metadata(result, "site_dns")
    assert metadata["records"] == {"one.example": "replaced", "www.one.example": "replaced"}
    assert metadata["replaced_records"] == ["A one.example 192.0.2.10", "A www.one.example 192.0.2.10"]
    assert any("replaced conflicting DNS records" in w and "A www.one.example 192.0.2.10" in w for w in warnings)
    (zone,) = providers.cloudflare.zones.values()
    assert sorted((r["type"], r["name"]) for r in providers.cloudflare.records[zone["id"]]) == [
        ("CNAME", "one.example"), ("CNAME", "www.one.example")]
    assert _site(engine, "one.example").status_dns == "active"


def test_a_lockout_longer_than_the_resource_waits_is_recorded_with_when_to_retry(providers, database, engine):
    providers.cloudflare.requests_per_window = 0  # the token is locked out: every call answers retry-after: 300
    resources = {**_resources(providers, database),
                 **{k: v for k, v in providers.resources(max_wait_seconds=0.05, max_retry_after_seconds=60).items()
                    if k == "cloudflare"}}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("site", ["one.example"])
        result = materialize(all_assets, selection=["site_dns"], partition_key="one.example", instance=instance,
                             resources=resources, raise_on_error=False)
    assert not result.success and len(providers.cloudflare.calls) == 1  # not retried inside the lockout
    site = _site(engine, "one.example")
    assert site.status_dns == "failed"
    assert "DNS for one.example: cloudflare: Please wait" in site.error_message
    assert "longer than this resource waits out (60 s): try again after " in site.error_message


def test_a_token_echoed_by_the_provider_is_redacted_on_the_site_and_in_every_event(providers, database, engine,
                                                                                   caplog):
    providers.cloudflare.inject("echo")  # a 400 whose message repeats the request's Authorization header
    with instance_for_test() as instance:
        result = _provision(instance, providers, database, "one.example", steps=["site_dns"], raise_on_error=False)
        records = [str(entry) for entry in _events(instance, result)]
    assert not result.success
    site = _site(engine, "one.example")
    assert site.error_message == ("DNS for one.example: cloudflare: Invalid format for Authorization header: "
                                  "Bearer [redacted] (code 6111) [HTTP 400]")
    assert any("Bearer [redacted]" in record for record in records)  # the failure was logged, redacted
    leaked = [r for r in records + [caplog.text] if sandbox_module.CLOUDFLARE_TOKEN in r]
    assert leaked == []


def test_the_activation_sensor_does_not_wait_out_a_lockout_in_its_tick(providers, database, engine):
    providers.cloudflare.activation_delay_seconds = 3600
    resources = _resources(providers, database)
    with instance_for_test() as instance:
        _provision(instance, providers, database, "one.example", steps=["site_dns"])
        providers.cloudflare.requests_per_window = 0  # locked out: every call answers retry-after: 300
        before = len(providers.cloudflare.calls)
        result = zone_activation_sensor(build_sensor_context(instance=instance, resources=resources))
    assert result.run_requests == []
    assert len(providers.cloudflare.calls) - before == 1  # asked once, not retried or waited for inside the tick
    assert _site(engine, "one.example").status_dns == "pending"  # asked again next tick


def _resources_verifying_quickly(providers, database) -> dict:
    """The sandbox's resources, with Search Console verifying again every 0.1 s (3 times) instead of every 5 minutes."""
    resources = _resources(providers, database)
    resources["search_console"] = SearchConsoleResource(
        **sandbox_module.GOOGLE_CLIENT, **endpoints_on(providers.google.base_url), verification_retries=3,
        verification_retry_seconds=0.1,
    )
    return resources
