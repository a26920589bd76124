"""Provisioning against the simulators, through the real clients: the site_dns step converges, records its status,
and a failure stays with its site and never shows a secret."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dagster import instance_for_test, materialize

from spark_assets.accounts import add_cloudflare_account, list_accounts
from spark_assets.definitions import all_assets
from spark_assets.registry import add_site
from spark_resources.providers.cloudflare import CloudflareResource
from spark_resources.providers.namecheap import NamecheapResource
from spark_resources.simulators.cloudflare import CloudflareSimulator
from spark_resources.simulators.namecheap import NamecheapSimulator

CF_TOKEN = "cf-secret-token-value"
NC_KEY = "nc-secret-key-value"


@pytest.fixture
def sandbox(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("SPARK_FERNET_KEY", "ZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmQ=")
    with CloudflareSimulator(token=CF_TOKEN) as cloudflare, NamecheapSimulator(api_user="spark", api_key=NC_KEY) as namecheap:
        namecheap.on_nameservers = lambda domain, servers: cloudflare.activate_zone(domain)
        for domain in ("one.example", "two.example"):
            namecheap.register(domain)
        with engine.begin() as conn:
            add_site(conn, "one.example")
            add_site(conn, "two.example")
            add_cloudflare_account(conn, email="ops@example.com", nickname="cf-1", provider_account_id="acct-1",
                                   api_token=CF_TOKEN)
        resources = {
            "cloudflare": CloudflareResource(base_url=cloudflare.base_url, hosting_target="sites.example.net"),
            "namecheap": NamecheapResource(api_user="spark", api_key=NC_KEY, username="spark", client_ip="127.0.0.1",
                                           base_url=namecheap.base_url, max_wait_seconds=0.05),
        }
        yield cloudflare, namecheap, resources


def _provision(instance, database, resources, domain: str, raise_on_error: bool = True):
    instance.add_dynamic_partitions("site", [domain])
    return materialize(all_assets, selection=["site_dns"], partition_key=domain, instance=instance,
                       resources={"database": database, **resources}, raise_on_error=raise_on_error)


def _site(engine, domain: str):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM sites WHERE domain = :d"), {"d": domain}).one()


def test_site_dns_provisions_once_however_often_it_runs(sandbox, database, engine):
    cloudflare, namecheap, resources = sandbox
    with instance_for_test() as instance:
        first = _provision(instance, database, resources, "one.example")
        second = _provision(instance, database, resources, "one.example")
    assert first.success and second.success
    assert len(cloudflare.zones) == 1
    (zone,) = cloudflare.zones.values()
    assert sorted((r["name"], r["content"]) for r in cloudflare.records[zone["id"]]) == [
        ("one.example", "sites.example.net"), ("www.one.example", "sites.example.net")
    ]
    assert namecheap.domains["one.example"]["nameservers"] == zone["name_servers"]
    site = _site(engine, "one.example")
    assert (site.status_dns, site.cloudflare_zone_id, site.error_message) == ("active", zone["id"], None)
    metadata = second.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["zone_created"].value is False and metadata["records"].value == {
        "one.example": "unchanged", "www.one.example": "unchanged"
    }
    with engine.connect() as conn:
        assert [a.sites for a in list_accounts(conn, "cloudflare")] == [1]  # assigned automatically


def test_a_failure_marks_its_site_only_and_reruns_converge(sandbox, database, engine):
    cloudflare, namecheap, resources = sandbox
    with instance_for_test() as instance:
        assert _provision(instance, database, resources, "one.example").success
        namecheap.inject("auth", times=1)
        failed = _provision(instance, database, resources, "two.example", raise_on_error=False)
        assert not failed.success
        two, one = _site(engine, "two.example"), _site(engine, "one.example")
        assert two.status_dns == "failed" and "API Key is invalid" in two.error_message
        assert NC_KEY not in two.error_message and CF_TOKEN not in two.error_message
        assert (one.status_dns, one.error_message) == ("active", None)

        assert _provision(instance, database, resources, "two.example").success  # the cause is gone
    assert _site(engine, "two.example").status_dns == "active"
    assert len(cloudflare.zones) == 2


def test_without_an_account_the_step_says_what_to_do(sandbox, database, engine):
    _, _, resources = sandbox
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cloudflare_accounts SET status = 'disabled'"))
    with instance_for_test() as instance:
        result = _provision(instance, database, resources, "one.example", raise_on_error=False)
    assert not result.success
    assert "spark account add cloudflare" in _site(engine, "one.example").error_message


def test_tokens_are_encrypted_at_rest_and_absent_from_the_event_log(sandbox, database, engine):
    _, _, resources = sandbox
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT api_token FROM cloudflare_accounts")).scalar_one()
    assert CF_TOKEN not in stored
    _, namecheap, _ = sandbox
    with instance_for_test() as instance:
        _provision(instance, database, resources, "one.example")
        namecheap.inject("500", times=10)  # a failing run too: errors and retries are logged
        _provision(instance, database, resources, "two.example", raise_on_error=False)
        # every event of every run: logs, metadata, errors, run config
        everything = "".join(
            str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)
        ) + "".join(str(run.run_config) for run in instance.get_runs())
    assert "site_dns" in everything and "ASSET_MATERIALIZATION" in everything and "STEP_FAILURE" in everything
    assert CF_TOKEN not in everything and NC_KEY not in everything


def test_accounts_are_added_from_the_cli_without_showing_tokens(database_url, engine, monkeypatch):
    from click.testing import CliRunner

    from spark_assets.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SPARK_FERNET_KEY", "ZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmQ=")
    monkeypatch.setenv("CF_TOKEN_1", CF_TOKEN)
    runner = CliRunner()
    added = runner.invoke(main, ["account", "add-cloudflare", "ops@example.com", "--nickname", "cf-1",
                                 "--account-id", "acct-1", "--token-env", "CF_TOKEN_1"])
    prompted = runner.invoke(main, ["account", "add-gsc", "seo@example.com"], input="refresh-secret\n")
    listing = runner.invoke(main, ["account", "list"])
    assert added.exit_code == 0 and "added: cloudflare account cf-1" in added.output
    assert prompted.exit_code == 0 and "added: gsc account seo@example.com" in prompted.output
    assert "cf-1" in listing.output and "seo@example.com" in listing.output
    for output in (added.output, prompted.output, listing.output):
        assert CF_TOKEN not in output and "refresh-secret" not in output
    missing = runner.invoke(main, ["account", "add-cloudflare", "x@example.com", "--nickname", "cf-2",
                                   "--account-id", "a", "--token-env", "NOT_SET_ANYWHERE"])
    assert missing.exit_code == 1 and "NOT_SET_ANYWHERE is empty or not set" in missing.output
