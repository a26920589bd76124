"""`spark demo`: the whole factory for one demo site, on this machine, with nothing to set up.

Migrates the database, registers `demo-roofing.example`, imports the demo blueprint, adds the partitions (as the sensors
would), then materializes every asset in the Definitions in dependency order for the demo's partitions (the site's build and
its release to the offline bucket, `$SPARK_HOME/bucket`, included), printing progress, and finally prints what was
made. Runs go to the Dagster instance in $DAGSTER_HOME (default .spark/dagster), so
`spark ui` shows them with their lineage and metadata afterwards. Safe to run again: every step converges.
"""

import os
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Iterator

import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance

from spark_assets.content.blueprint import load_blueprint
from spark_assets.definitions import defs
from spark_assets.ops.analytics_ops import BACKFILL_ASSETS, run_backfill
from spark_assets.ops.local_instance import dagster_home, prepare_dagster_home
from spark_assets.ops.materializing import (
    MaterializeFailed,
    Steps,
    add_missing_partitions,
    materializable_keys,
    materialize_in_order,
)
from spark_assets.ops.sandbox import CLOUDFLARE_ACCOUNT, GOOGLE_ACCOUNT, Sandbox
from spark_assets.partitions import campaign_partitions, site_partitions
from spark_assets.records.accounts import assign_accounts
from spark_assets.records.registry import add_site, import_campaign
from spark_assets.records.site_inputs import upsert_page
from spark_resources import migrations
from spark_resources.database import describe_url, dispose_engines, get_engine, open_engine, spark_home
from spark_resources.paths import DEMO_BLUEPRINT
from spark_resources.storage import storage_from_environment

DEMO_DOMAIN = "demo-roofing.example"
DEMO_BRAND = "Summit Roofing Co."
DEMO_TIMEZONE = "America/New_York"  # the demo's places are in North Carolina
#: the days of analytics the demo fills from the simulators
DEMO_ANALYTICS_DAYS = 28

#: the demo site's own pages: the service pages and contact page its articles link to (blueprint link_targets)
DEMO_PAGES = [
    ("roof-repair", "/services/roof-repair/", "Roof Repair",
     "<p>Leaks, missing shingles, lifted flashing and storm damage, repaired by our own crews. Every repair starts with "
     "a free inspection and a written estimate with photos.</p><h2>What we repair</h2><ul><li>Shingle and tile "
     "roofs</li><li>Flashing around chimneys, vents and skylights</li><li>Pipe boots and roof vents</li></ul>"),
    ("roof-replacement", "/services/roof-replacement/", "Roof Replacement",
     "<p>When a repair no longer makes sense, we replace the roof down to the decking, with a manufacturer's warranty "
     "and a workmanship warranty of our own.</p><p>You get an itemized quote in writing before any work begins.</p>"),
    ("storm-damage", "/services/storm-damage/", "Storm and Hail Damage",
     "<p>After a storm we document the damage the way insurance adjusters expect, cover open leaks the same day and "
     "can meet your adjuster on the roof. You never sign over your claim to us.</p>"),
    ("roof-insurance-claims", "/resources/roof-insurance-claims/", "Our Guide to Roof Insurance Claims",
     "<p>Insurance usually covers sudden damage from wind or hail, not wear and tear.</p><ol><li>Photograph the "
     "damage, inside and out, with the date.</li><li>Stop further damage with a tarp if it is safe.</li><li>Report "
     "the claim promptly: many policies set a deadline for storm claims.</li></ol>"),
    ("contact", "/contact/", "Contact Us",
     "<h2>Book a free roof inspection</h2><p>Call us on +1-704-555-0134 and we will book a time that suits you. "
     "Inspections are free and come with a photo report.</p><h2>Opening hours</h2><ul><li>Monday to Friday, "
     "7:30 am to 6 pm</li><li>Saturday, 8 am to noon</li></ul>"),
]

#: materialized by the analytics step (a backfill over days), not by the partition-by-partition walk
ANALYTICS_KEYS = [*BACKFILL_ASSETS, AssetKey("analytics_report")]

#: kept under its old name: `spark demo` reports a failed step as DemoFailed
DemoFailed = MaterializeFailed

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
    step = Steps(echo)

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
            site, created = add_site(conn, DEMO_DOMAIN, DEMO_BRAND, timezone=DEMO_TIMEZONE)
            # the demo site "went live" four weeks before its first demo, so it has analytics history to show
            conn.execute(sa.text("UPDATE sites SET launched_on = :d WHERE id = :s AND launched_on IS NULL"),
                         {"d": date.today() - timedelta(days=DEMO_ANALYTICS_DAYS), "s": site.id})
            campaign, outcome = import_campaign(conn, site.domain, blueprint, source=str(blueprint_path))
            for slug, permalink, title, content in DEMO_PAGES:
                upsert_page(conn, site.id, slug=slug, permalink=permalink, title=title, content=content)
        step.note(f"site {site.domain} {'registered' if created else 'already registered'}; campaign {outcome}")

    instance = DagsterInstance.get()
    with step("partitions"):
        added = add_missing_partitions(
            instance, [(site_partitions.name, site.domain), (campaign_partitions.name, campaign.partition_key)]
        )
        step.note(f"added {', '.join(added)}" if added else "already present")

    partition_for = {site_partitions.name: site.domain, campaign_partitions.name: campaign.partition_key}
    analytics = set(ANALYTICS_KEYS)
    with sandbox_resources(engine, site) as resources:
        keys = [key for key in materializable_keys() if key not in analytics]
        metadata = materialize_in_order(keys, partition_for, instance, resources, step)
        yesterday = date.today() - timedelta(days=1)
        with step(f"analytics: the last {DEMO_ANALYTICS_DAYS} days from the Matomo and Search Console simulators"):
            filled = run_backfill(yesterday - timedelta(days=DEMO_ANALYTICS_DAYS - 1), yesterday, resources=resources,
                                  instance=instance, echo=step.note)
            for name, message in filled.failed_sites.items():
                step.note(f"failed: {name}: {message}")
    build = {name: value.value for name, value in metadata.get(AssetKey("site_build"), {}).items()}
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
    release = {name: value.value for name, value in metadata.get(AssetKey("site_release"), {}).items()}
    if build:
        echo(f"Built the site: {build['files']} files ({build['files_written']} written, {build['files_skipped']} "
             f"unchanged) in {build['seconds']} s, manifest {build['manifest']}")
    if release:
        what = ("already live, nothing uploaded" if release["already_live"] else
                f"{release['objects_uploaded']} object(s) uploaded, {release['objects_reused']} already stored")
        echo(f"Released it: {release['release_id']} ({what}) to {release['bucket']}")
        echo(f"Open it: `spark site serve {site.domain}` (what a visitor sees), then http://127.0.0.1:8000/")
    elif build:
        echo(f"Open it: `spark site serve {site.domain} --build`, then http://127.0.0.1:8000/")
    report_dir = spark_home() / "reports" / "analytics"
    echo(f"Analytics: {filled.first} to {filled.last} in {len(filled.runs)} run(s); the report: `spark analytics "
         f"report`, its charts in {report_dir}")
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
        # releases go to the offline default bucket, a directory under $SPARK_HOME, so `spark site serve` finds them
        yield {**defs.resources, **providers.resources(), "storage": storage_from_environment()}
