"""`spark demo`: the whole factory for one demo site, on this machine, with nothing to set up.

Migrates the database, registers `demo-roofing.example`, imports the demo blueprint, adds the partitions (as the sensors
would), then materializes every asset in the Definitions in dependency order for the demo's partitions, printing progress,
and finally prints what was made. Runs go to the Dagster instance in $DAGSTER_HOME (default .spark/dagster), so
`spark ui` shows them with their lineage and metadata afterwards. Safe to run again: every step converges.
"""

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import sqlalchemy as sa
from dagster import (
    AssetKey,
    DagsterInstance,
    DynamicPartitionsDefinition,
    materialize,
)

from spark_assets.automation.sensors import unseen
from spark_assets.content.blueprint import load_blueprint
from spark_assets.definitions import all_assets, defs
from spark_assets.ops.local_instance import dagster_home, prepare_dagster_home
from spark_assets.ops.sandbox import CLOUDFLARE_ACCOUNT, GOOGLE_ACCOUNT, Sandbox
from spark_assets.partitions import campaign_partitions, site_partitions
from spark_assets.records.accounts import assign_accounts
from spark_assets.records.registry import add_site, import_campaign
from spark_resources import migrations
from spark_resources.database import describe_url, dispose_engines, get_engine, open_engine
from spark_resources.paths import DEMO_BLUEPRINT

DEMO_DOMAIN = "demo-roofing.example"
DEMO_BRAND = "Summit Roofing Co."

#: the demo prints its own progress; the run's full log is in the instance (and the UI)
_QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: what the closing summary counts, per table, for the demo site
_SUMMARY_QUERIES = {
    "campaigns": "SELECT count(*) FROM campaign_masters WHERE site_id = :site",
    "cartesian_patterns": "SELECT count(*) FROM cartesian_patterns p JOIN campaign_masters c ON c.id = p.campaign_id "
    "WHERE c.site_id = :site AND p.status <> 'archived'",
    "offer_blocks": "SELECT count(*) FROM offer_blocks o JOIN campaign_masters c ON c.id = o.campaign_id "
    "WHERE c.site_id = :site",
    "content_fragments": "SELECT count(*) FROM content_fragments f JOIN campaign_masters c ON c.id = f.campaign_id "
    "WHERE c.site_id = :site",
    "link_targets": "SELECT count(*) FROM link_targets WHERE site_id = :site",
    "geo_targets": "SELECT count(*) FROM geo_intelligence g JOIN campaign_masters c ON c.id = g.campaign_id "
    "WHERE c.site_id = :site AND g.status <> 'archived'",
    "permutations": "SELECT count(*) FROM cartesian_permutations p JOIN campaign_masters c ON c.id = p.campaign_id "
    "WHERE c.site_id = :site",
    "headlines": "SELECT count(*) FROM headline_inventory h JOIN campaign_masters c ON c.id = h.campaign_id "
    "WHERE c.site_id = :site",
    "articles": "SELECT count(*) FROM generated_articles WHERE site_id = :site",
    "articles_published": "SELECT count(*) FROM generated_articles WHERE site_id = :site AND is_published",
}


def run_demo(blueprint_path: Path | None = None, echo: Callable[[str], None] = print) -> dict[str, int]:
    """Run the demo end to end; returns the summary counts it printed."""
    blueprint_path = blueprint_path or DEMO_BLUEPRINT
    prepare_dagster_home(dagster_home())

    echo("Spark Factory demo")
    step = _Steps(echo)

    with step("database schema"):
        engine = open_engine()
        try:
            applied = migrations.upgrade(engine)
        finally:
            engine.dispose()
        engine = get_engine()
        step.note(f"{describe_url(str(engine.url))}: {len(applied)} migration(s) applied, schema current")

    with step("blueprint"):
        blueprint = load_blueprint(blueprint_path)
        step.note(f"{blueprint_path.name} is valid: campaign '{blueprint.name}'")

    with step("registry"):
        with engine.begin() as conn:
            site, created = add_site(conn, DEMO_DOMAIN, DEMO_BRAND)
            campaign, outcome = import_campaign(conn, site.domain, blueprint, source=str(blueprint_path))
        step.note(f"site {site.domain} {'registered' if created else 'already registered'}; campaign {outcome}")

    instance = DagsterInstance.get()
    with step("partitions"):
        added = []
        for partitions_def, key in ((site_partitions, site.domain), (campaign_partitions, campaign.partition_key)):
            new = unseen([key], instance.get_dynamic_partitions(partitions_def.name))
            if new:
                instance.add_dynamic_partitions(partitions_def.name, new)
                added += new
        step.note(f"added {', '.join(added)}" if added else "already present")

    partition_for = {site_partitions.name: site.domain, campaign_partitions.name: campaign.partition_key}
    graph = defs.resolve_asset_graph()
    keys = [key for key in graph.toposorted_asset_keys if graph.get(key).is_materializable]
    with sandbox_resources(engine, site) as resources:
        _materialize_all(keys, graph, partition_for, instance, resources, step)
    with engine.connect() as conn:
        summary = {name: conn.execute(sa.text(sql), {"site": site.id}).scalar_one() for name, sql in _SUMMARY_QUERIES.items()}
        status = conn.execute(
            sa.text("SELECT status_dns, status_hosting, matomo_site_id, gsc_verification_status FROM sites WHERE id = :s"),
            {"s": site.id},
        ).one()
    echo("")
    echo(f"Provisioned {site.domain} against the sandbox (local Cloudflare, Namecheap, Google and Matomo simulators):")
    echo(f"  DNS {status.status_dns}, Matomo site {status.matomo_site_id} ({status.status_hosting}), "
         f"Search Console {status.gsc_verification_status}")
    echo(f"Made for {site.domain} ({DEMO_BRAND}):")
    for name, count in summary.items():
        echo(f"  {name:20} {count}")
    echo("")
    echo(f"Dagster instance: {os.environ['DAGSTER_HOME']}")
    echo("See the lineage and run metadata: `make ui`, then open http://127.0.0.1:3000")
    dispose_engines()
    return summary


@contextmanager
def sandbox_resources(engine, site) -> Iterator[dict]:
    """The Definitions' resources with the providers answered by the local simulators, and the demo site given the
    sandbox's Cloudflare and Google accounts."""
    with Sandbox() as providers:
        providers.register_accounts(engine)
        with engine.begin() as conn:
            assign_accounts(conn, site, cloudflare=CLOUDFLARE_ACCOUNT, gsc=GOOGLE_ACCOUNT)
        yield {**defs.resources, **providers.resources()}


def _materialize_all(keys, graph, partition_for, instance, resources, step) -> None:
    for index, asset_key in enumerate(keys, start=1):
        partitions_def = graph.get(asset_key).partitions_def
        if partitions_def is not None and not isinstance(partitions_def, DynamicPartitionsDefinition):
            raise NotImplementedError(f"the demo does not know how to pick a partition of {asset_key.to_user_string()}")
        partition_key = partition_for[partitions_def.name] if partitions_def else None
        label = asset_key.to_user_string() + (f" [{partition_key}]" if partition_key else "")
        with step(f"materialize {index}/{len(keys)} {label}"):
            result = materialize(
                all_assets,
                selection=[asset_key],
                partition_key=partition_key,
                instance=instance,
                resources=resources,
                run_config=_QUIET_RUN,
                raise_on_error=False,
            )
            if not result.success:
                raise DemoFailed(f"{label} failed: {_failure(result)} (the full log is in the Dagster UI: `make ui`)")
            step.note(_headline(result, asset_key))
            for check in result.get_asset_check_evaluations():
                if not check.passed:
                    step.note(f"check {check.check_name} did not pass ({check.severity.value})")



class DemoFailed(RuntimeError):
    """A step of the demo failed; the message says which and why."""


def _failure(result) -> str:
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
            error = error.cause
        if error is not None:
            return error.message.strip()
    return "unknown error"


def _headline(result, asset_key: AssetKey) -> str:
    """A one-line digest of the materialization's numeric metadata."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_key]
    if not events:
        return "no materialization recorded"
    metadata = events[-1].materialization.metadata
    shown = []
    for key, entry in metadata.items():
        value = entry.value
        if key == "seconds" or not isinstance(value, (int, float, str, bool)):
            continue
        if isinstance(value, str) and (len(value) > 40 or "\n" in value):
            continue
        shown.append(f"{key}={value:.2%}" if key.endswith("_rate") else f"{key}={value}")
    return ", ".join(shown[:8])


class _Steps:
    """Prints `-> name ... done in 0.4s` around each step, and the notes a step adds."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self._name = ""
        self._started = 0.0

    def __call__(self, name: str) -> "_Steps":
        self._name = name
        return self

    def __enter__(self) -> "_Steps":
        self._started = time.perf_counter()
        self.echo(f"-> {self._name}")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        elapsed = time.perf_counter() - self._started
        self.echo(f"   {'done' if exc is None else 'FAILED'} in {elapsed:.1f}s")

    def note(self, text: str) -> None:
        self.echo(f"   {text}")
