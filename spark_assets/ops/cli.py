"""`spark`, the operator CLI: database, sites, campaigns, the demo, the UI and the production topology.

Every command that can fail because of its input says what and where on stderr and exits 1, with nothing written: a
blueprint is validated completely before the one transaction that stores it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import click
import sqlalchemy as sa

from spark_assets.content.blueprint import BlueprintError, load_blueprint
from spark_assets.content.names import InvalidName, normalize_domain
from spark_assets.records.accounts import add_cloudflare_account, add_gsc_account, assign_accounts, list_accounts
from spark_assets.records.article_views import ARTICLE_STATUSES, campaign_counts, find_articles, get_article
from spark_assets.records.publishing import approve, publish
from spark_assets.records.registry import RegistryError, add_site, import_campaign, list_sites
from spark_resources import migrations
from spark_resources.database import (
    DatabaseUnavailable,
    configured_url,
    connection_failure,
    describe_url,
    get_engine,
    open_engine,
)
from spark_resources.secrets import SecretKeyError

#: errors that are the operator's to fix: shown as one message, never as a traceback
OPERATOR_ERRORS = (
    BlueprintError, InvalidName, RegistryError, DatabaseUnavailable, migrations.MigrationError, SecretKeyError
)


class SparkGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OPERATOR_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except sa.exc.OperationalError as exc:  # the server went away, or was never there: one line, password masked
            click.echo(f"error: {connection_failure(exc, configured_url())}", err=True)
            sys.exit(1)


@click.group(cls=SparkGroup)
def main() -> None:
    """Spark Factory: register sites and campaigns, run the demo, open the Dagster UI.

    Data goes to the PostgreSQL server in DATABASE_URL, or to an embedded one under $SPARK_HOME (default ./.spark).
    """


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations from sql/ (each in its own transaction)."""
    engine = open_engine()
    try:
        applied = migrations.upgrade(engine)
        click.echo(f"database: {describe_url(engine.url)}")
        for migration in applied:
            click.echo(f"  applied {migration.filename}")
        click.echo(f"schema is current ({len(migrations.discover())} migrations)" if not applied else "done")
    except sa.exc.OperationalError as exc:
        raise connection_failure(exc, engine.url) from None
    finally:
        engine.dispose()


@db.command("status")
def db_status() -> None:
    """Show which migrations are applied and which are pending."""
    engine = open_engine()
    try:
        with engine.connect() as conn:
            done = migrations.applied(conn)
        click.echo(f"database: {describe_url(engine.url)}")
        for migration in migrations.discover():
            click.echo(f"  {'applied' if migration.version in done else 'PENDING'}  {migration.filename}")
        migrations.pending(engine)  # raises if an applied file was edited or the database is newer than the code
    except sa.exc.OperationalError as exc:
        raise connection_failure(exc, engine.url) from None
    finally:
        engine.dispose()


@main.group()
def site() -> None:
    """Sites: one per domain."""


# A domain is never an option: with unknown options taken as arguments, `spark site add -evil.example` reaches the
# domain check (and is refused as a domain) instead of click's "no such option: -e"; `--` still ends the options.
@site.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("domain")
@click.option("--brand", help="brand name shown on the site (default: the domain)")
@click.option("--cloudflare-account", metavar="NICKNAME", help="the Cloudflare account to use (default: least loaded)")
@click.option("--gsc-account", metavar="EMAIL", help="the Google account to use (default: least loaded)")
@click.option("--timezone", metavar="ZONE", help="the site's IANA time zone, e.g. America/New_York: its analytics "
              "days (default: UTC)")
@click.option("--launched", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="the day the site went live, for a site live before it came here: analytics history starts there "
              "(default: its first published article's day)")
def site_add(domain: str, brand: str | None, cloudflare_account: str | None, gsc_account: str | None,
             timezone: str | None, launched) -> None:
    """Register a site. Its partition appears in Dagster on the next tick of new_sites_sensor, which provisions it."""
    normalize_domain(domain)  # a bad domain is refused before any connection is made
    with get_engine().begin() as conn:
        registered, created = add_site(conn, domain, brand, timezone=timezone,
                                       launched_on=launched.date() if launched else None)
        if cloudflare_account or gsc_account:
            assign_accounts(conn, registered, cloudflare=cloudflare_account, gsc=gsc_account)
    verb = "registered" if created else "already registered"
    click.echo(f"{verb}: {registered.domain} ({registered.brand_name or 'no brand'})")
    if cloudflare_account or gsc_account:
        named = ", ".join(n for n in (cloudflare_account, gsc_account) if n)
        click.echo(f"accounts: {named}")


#: a page's permalink: lower-case words joined by dashes, each path segment ending in "/" (as the pages table checks)
_PERMALINK = re.compile(r"^/([a-z0-9]+(-[a-z0-9]+)*/)+$")
#: the largest page body read from a file
MAX_PAGE_BYTES = 1 << 20


@site.command("page")
@click.argument("domain")
@click.argument("permalink")
@click.option("--title", required=True, help="the page's title (its H1 and title tag)")
@click.option("--file", "body", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="the page's HTML body (sanitized when the site is built)")
@click.option("--description", help="its meta description")
def site_page(domain: str, permalink: str, title: str, body: Path, description: str | None) -> None:
    """Add or replace one of the site's own pages at PERMALINK (e.g. /contact/ or /services/roof-repair/), published:
    the pages its campaigns' link targets point at. The next build includes it."""
    from spark_assets.records.registry import get_site
    from spark_assets.records.site_inputs import upsert_page

    if not _PERMALINK.match(permalink):
        raise click.UsageError(f"permalink {permalink!r} must look like /contact/ or /services/roof-repair/: lower-case "
                               "words and dashes, each segment ending in /")
    if not title.strip():
        raise click.UsageError("--title must not be empty")
    if body.stat().st_size > MAX_PAGE_BYTES:
        raise click.UsageError(f"{body}: {body.stat().st_size:,} bytes, over the {MAX_PAGE_BYTES:,} a page may have")
    try:
        content = body.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"{body}: not UTF-8 text (byte {exc.start})") from None
    slug = permalink.strip("/").split("/")[-1]
    with get_engine().begin() as conn:
        registered = get_site(conn, normalize_domain(domain))
        upsert_page(conn, registered.id, slug=slug, permalink=permalink, title=title.strip(), content=content,
                    seo_description=description)
    click.echo(f"{registered.domain}{permalink}: {title.strip()} (published; in the next build)")


@site.command("build")
@click.argument("domain")
def site_build_command(domain: str) -> None:
    """Build the site's static website from its published articles (the `site_build` asset, as a run the UI shows):
    only pages whose inputs changed are rewritten."""
    from spark_assets.ops.materializing import MaterializeFailed
    from spark_assets.ops.site_ops import SiteChecksFailed, build_site_now

    try:
        build_site_now(domain, echo=click.echo)
    except (MaterializeFailed, RegistryError, SiteChecksFailed) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@site.command("serve")
@click.argument("domain")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--build", "from_build", is_flag=True, help="serve the last good build instead of the live release")
def site_serve(domain: str, port: int, from_build: bool) -> None:
    """Serve the site's live release from the bucket on http://127.0.0.1:PORT/ exactly as the Cloudflare Worker
    serves it (clean URLs, its 404 page, content types and cache headers); `--build` serves the last good build the
    same way. Ctrl-C stops it."""
    from spark_assets.ops.site_ops import BuildSource, last_good_build, release_source, site_server

    try:
        source = BuildSource(*last_good_build(domain)) if from_build else release_source(domain)
    except RegistryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    server = site_server(source, port=port)
    click.echo(f"serving {domain} ({source.label}) on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@site.command("releases")
@click.argument("domain")
def site_releases(domain: str) -> None:
    """List the site's releases and rollbacks, newest first, and which release is live."""
    from spark_assets.ops.site_ops import list_releases

    try:
        live, history = list_releases(domain)
    except RegistryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"live: {live or 'nothing yet'}")
    if not history:
        click.echo(f"no releases yet: materialize site_release for {domain} (or run `spark demo`)")
        return
    click.echo(f"{'WHEN (UTC)':20} {'KIND':9} {'STATUS':9} {'RELEASE':26} {'UPLOADED':>9} {'REUSED':>7}  NOTE")
    for d in history:
        when = f"{d.started_at:%Y-%m-%d %H:%M:%S}" if d.started_at else "-"
        note = d.error_message or (f"replaced {d.previous_release}" if d.previous_release else "")
        if d.kind == "release" and d.status == "deployed" and d.release_id is None:
            note = f"already live: {d.previous_release}"
        marker = " *" if d.release_id and d.release_id == live and d.kind == "release" else ""
        click.echo(f"{when:20} {d.kind:9} {d.status:9} {(d.release_id or '-') + marker:26} "
                   f"{d.objects_uploaded:>9} {d.objects_reused:>7}  {note[:100]}")


@site.command("rollback")
@click.argument("domain")
@click.option("--to", "to", metavar="RELEASE", help="the release to make live (default: the one live before)")
def site_rollback(domain: str, to: str | None) -> None:
    """Make an earlier release live again: one conditional write of the site's pointer."""
    from spark_assets.ops.site_ops import rollback
    from spark_assets.release.publish import ReleaseError
    from spark_resources.providers.http import ProviderError

    try:
        now_live, replaced, seconds = rollback(domain, to)
    except (RegistryError, ReleaseError, ProviderError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{domain}: {now_live} is live (was {replaced}), in {seconds:.2f} s")


@site.command("publishing", context_settings={"ignore_unknown_options": True})
@click.argument("domain")
@click.option("--daily-quota", type=click.IntRange(min=1), metavar="N",
              help="publish at most N of the site's approved, passing articles a day (the drip feed)")
@click.option("--no-quota", is_flag=True, help="clear the quota: articles are published as soon as they pass")
def site_publishing(domain: str, daily_quota: int | None, no_quota: bool) -> None:
    """Show or set the site's drip-feed publishing: its daily quota, its queue and the next day's batch."""
    from spark_assets.records.drip_feed import publishing_policy, set_daily_quota

    if daily_quota is not None and no_quota:
        raise click.UsageError("--daily-quota and --no-quota contradict each other: give one")
    domain = normalize_domain(domain)
    with get_engine().begin() as conn:
        if daily_quota is not None or no_quota:
            set_daily_quota(conn, domain, None if no_quota else daily_quota)
        policy = publishing_policy(conn, domain)
    if policy.daily_quota is None:
        click.echo(f"{domain}: no daily quota: articles are published as soon as they pass")
        click.echo(f"queue: {len(policy.queue.articles)} approved, passing article(s) not yet published")
        return
    click.echo(f"{domain}: daily quota {policy.daily_quota} article(s), published by drip_feed_schedule at 06:00 UTC")
    click.echo(f"queue: {len(policy.queue.articles)} approved, passing article(s) not yet published")
    if not policy.next_batch:
        click.echo("next batch: nothing to publish")
        return
    click.echo(f"next batch ({len(policy.next_batch)}):")
    for n, article in enumerate(policy.next_batch, 1):
        click.echo(f"{n:4}  {article.slug}  ({article.place_label or article.place or 'no place'})")


@site.command("list")
def site_list() -> None:
    """List sites with their workflow statuses."""
    with get_engine().connect() as conn:
        sites = list_sites(conn)
    if not sites:
        click.echo("no sites yet: add one with `spark site add DOMAIN`")
        return
    click.echo(f"{'DOMAIN':32} {'BRAND':24} {'STATUS':9} {'DNS':8} {'HOSTING':8} {'SEARCH':9} {'CONTENT':10} DEPLOYMENT")
    for s in sites:
        click.echo(
            f"{s.domain:32} {(s.brand_name or '-')[:24]:24} {s.status:9} {s.status_dns:8} {s.status_hosting:8} "
            f"{s.gsc_verification_status:9} {s.status_content:10} {s.status_deployment}"
        )
        if s.error_message:
            click.echo(f"  last error: {s.error_message}")


@main.group()
def account() -> None:
    """Provider accounts; their tokens are stored encrypted and never printed."""


def _token(env_name: str | None, prompt: str) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise RegistryError(f"environment variable {env_name} is empty or not set")
        return value
    return click.prompt(prompt, hide_input=True)


@account.command("add-cloudflare")
@click.argument("email")
@click.option("--nickname", required=True, help="name used to pick the account, e.g. CF_Batch_1")
@click.option("--account-id", "provider_account_id", required=True, help="the Cloudflare account id zones go into")
@click.option("--token-env", help="read the API token from this environment variable instead of a hidden prompt")
def account_add_cloudflare(email: str, nickname: str, provider_account_id: str, token_env: str | None) -> None:
    """Add a Cloudflare account (or replace the token of the one with this nickname)."""
    token = _token(token_env, "Cloudflare API token")
    with get_engine().begin() as conn:
        added, created = add_cloudflare_account(
            conn, email=email, nickname=nickname, provider_account_id=provider_account_id, api_token=token
        )
    click.echo(f"{'added' if created else 'updated'}: cloudflare account {added.label} ({added.email})")


@account.command("add-gsc")
@click.argument("email")
@click.option("--token-env", help="read the OAuth refresh token from this environment variable instead of a prompt")
def account_add_gsc(email: str, token_env: str | None) -> None:
    """Add a Google Search Console account (or replace its refresh token)."""
    token = _token(token_env, "OAuth refresh token")
    with get_engine().begin() as conn:
        added, created = add_gsc_account(conn, email=email, refresh_token=token)
    click.echo(f"{'added' if created else 'updated'}: gsc account {added.email}")


@account.command("list")
def account_list() -> None:
    """Accounts with their status and how many sites each serves (tokens are never shown)."""
    with get_engine().connect() as conn:
        for kind in ("cloudflare", "gsc"):
            for a in list_accounts(conn, kind):
                click.echo(f"{kind:10} {a.label:28} {a.email:32} {a.status:8} {a.sites} site(s)")


@main.group()
def campaign() -> None:
    """Campaigns: one per imported blueprint."""


@campaign.command("import")
@click.argument("blueprint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site", "site_domain", required=True, help="domain of the site the campaign belongs to")
def campaign_import(blueprint: Path, site_domain: str) -> None:
    """Validate a blueprint YAML completely, then create or update its campaign in one transaction."""
    warnings: list = []
    parsed = load_blueprint(blueprint, warnings)  # raises BlueprintError listing every problem; nothing written
    for warning in warnings:  # imports anyway: these read wrong in articles but are the operator's call
        click.echo(f"warning: {warning.render(str(blueprint))}", err=True)
    with get_engine().begin() as conn:
        record, outcome = import_campaign(conn, site_domain, parsed, source=str(blueprint))
    click.echo(f"{outcome}: {record.partition_key} ({record.name}, blueprint {record.blueprint_hash[:12]})")
    if outcome == "updated":
        click.echo(f"materialize partition {record.partition_key} to regenerate its content")


@campaign.command("list")
@click.option("--site", "site_domain", help="only this site's campaigns")
def campaign_list(site_domain: str | None) -> None:
    """List campaigns with their article counts and the verdict of their last quality check."""
    with get_engine().connect() as conn:
        campaigns = campaign_counts(conn, site_domain)
    if not campaigns:
        click.echo("no campaigns yet: import one with `spark campaign import BLUEPRINT --site DOMAIN`")
        return
    width = max(len("CAMPAIGN"), *(len(c.partition_key) for c in campaigns))
    click.echo(f"{'CAMPAIGN':{width}} {'STATUS':9} {'ARTICLES':>8} {'DRAFT':>6} {'APPROVED':>8} {'PUBLISHED':>9} "
               f"{'ISSUES':>6}  QUALITY      NAME")
    for c in campaigns:
        click.echo(f"{c.partition_key:{width}} {c.status:9} {c.articles:>8} {c.drafts:>6} {c.approved:>8} "
                   f"{c.published:>9} {c.with_issues:>6}  {c.verdict:12} {c.name}")


@campaign.command("generate")
@click.argument("key")
def campaign_generate(key: str) -> None:
    """Make the campaign's content now: blueprint, places, personas, permutations, headlines, articles and the quality
    check, as Dagster runs the UI shows (the same instance as `spark demo` and `spark ui`)."""
    from spark_assets.ops.generate import generate_campaign
    from spark_assets.ops.materializing import MaterializeFailed

    try:
        generate_campaign(key, echo=click.echo)
    except MaterializeFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.group()
def articles() -> None:
    """Articles: approve and publish a campaign's articles."""


@articles.command("approve")
@click.option("--campaign", "key", required=True, help="campaign key, <domain>/<campaign-slug>")
@click.option("--passing", is_flag=True, help="only articles that pass every quality check")
def articles_approve(key: str, passing: bool) -> None:
    """Move the campaign's draft articles to approved."""
    with get_engine().begin() as conn:
        count = approve(conn, key, passing_only=passing)
    click.echo(f"approved {count} article(s) of {key}")


@articles.command("publish")
@click.option("--campaign", "key", required=True, help="campaign key, <domain>/<campaign-slug>")
def articles_publish(key: str) -> None:
    """Publish the campaign's approved articles, if its quality report allows (at once, even on a site with a daily
    publishing quota: an operator's override of the drip feed)."""
    from spark_assets.records.publishing import daily_publish_quota
    from spark_assets.records.registry import get_campaign

    with get_engine().begin() as conn:
        published, held = publish(conn, key)
        quota = daily_publish_quota(conn, get_campaign(conn, key).site_id)
    click.echo(f"published {published} article(s) of {key}")
    if quota is not None:
        click.echo(f"this overrides the site's daily publishing quota ({quota} a day): published at once")
    if held:
        click.echo(f"held back {held} approved article(s) with markup left in them", err=True)


@articles.command("list")
@click.option("--campaign", "key", required=True, help="campaign key, <domain>/<campaign-slug>")
@click.option("--status", type=click.Choice(ARTICLE_STATUSES), help="only articles with this status")
@click.option("--issue", metavar="NAME", help="only articles with this quality issue, e.g. near_duplicate")
@click.option("--place", metavar="TEXT", help="only articles about a place whose name or key contains TEXT")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0))
def articles_list(key: str, status: str | None, issue: str | None, place: str | None, limit: int, offset: int) -> None:
    """The campaign's articles (by slug) with their status and quality issues, a page at a time."""
    with get_engine().connect() as conn:
        page = find_articles(conn, key, status=status, issue=issue, place=place, limit=limit, offset=offset)
    if not page.counts:
        click.echo("no articles yet: make them with `spark campaign generate " + key + "`")
        return
    click.echo("  ".join(f"{status}: {count}" for status, count in page.counts))
    if not page.total:
        click.echo("no articles match")
        return
    if not page.rows:
        click.echo(f"no articles from {offset + 1}: there are {page.total}")
        return
    click.echo(f"showing {offset + 1}–{offset + len(page.rows)} of {page.total}")
    for row in page.rows:
        issues = f"  [{', '.join(row.quality_issues)}]" if row.quality_issues else ""
        click.echo(f"{row.status:9} /{row.slug}/  {row.title}{issues}")
    if offset + len(page.rows) < page.total:
        click.echo(f"next page: --offset {offset + len(page.rows)}")


@articles.command("show")
@click.argument("slug")
@click.option("--site", "site_domain", help="the site's domain, when several sites have an article with this slug")
@click.option("--html", "as_html", is_flag=True, help="print the stored HTML instead of readable text")
def articles_show(slug: str, site_domain: str | None, as_html: bool) -> None:
    """One article as a reader sees it, with its status, quality issues and where it came from."""
    from spark_assets.content.readable import readable_text

    with get_engine().connect() as conn:
        article = get_article(conn, slug, normalize_domain(site_domain) if site_domain else None)
    click.echo(article.title)
    click.echo(article.url)
    click.echo(f"SEO title:       {article.seo_title or '-'}")
    click.echo(f"SEO description: {article.seo_description or '-'}")
    click.echo(f"status: {article.status}   words: {article.word_count or 0}   place: {article.place or '-'}   "
               f"campaign: {article.campaign_key or '-'}")
    click.echo(f"quality issues: {', '.join(article.quality_issues) or 'none'}")
    click.echo(f"provenance: {_provenance_summary(article.provenance)}")
    click.echo("")
    click.echo(article.content if as_html else readable_text(article.content, site_domain=article.domain), nl=as_html)


def _provenance_summary(provenance: dict | None) -> str:
    """Where the article's parts came from, in one line (the ids are in the row's provenance column)."""
    if not provenance:
        return "none recorded"
    fragments = provenance.get("fragments") or []
    parts = [
        f"combination {provenance.get('combination', '?')}",
        f"{len(fragments)} fragment(s)",
        f"{len(provenance.get('faq_fragment_ids') or [])} FAQ answer(s)",
        "an offer block" if provenance.get("offer_block_id") else "no offer block",
        f"blueprint {str(provenance.get('blueprint_hash') or '?')[:12]}",
    ]
    return ", ".join(parts)


@main.group()
def analytics() -> None:
    """Daily analytics from Matomo and Search Console: backfill history, print the report."""


@analytics.command("backfill")
@click.option("--days", type=int, metavar="N", help="the last N days, to yesterday")
@click.option("--site", "site", metavar="DOMAIN", help="only this site (without --days: its whole history, from its "
              "first publishing day)")
def analytics_backfill(days: int | None, site: str | None) -> None:
    """Fetch history for every active site (or one) in runs of at most 31 days each, as the UI's backfill does; the
    runs and their metadata show in the Dagster UI. Safe to repeat: final numbers are kept, provisional ones updated."""
    from spark_assets.ops.analytics_ops import backfill_days, run_backfill
    from spark_assets.ops.materializing import MaterializeFailed

    first, last = backfill_days(days, site)
    click.echo(f"analytics backfill {first} to {last}" + (f" for {site}" if site else " for every active site"))
    try:
        result = run_backfill(first, last, site=site, echo=click.echo)
    except MaterializeFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{len(result.runs)} run(s); report written (`spark analytics report`)")
    for name, message in sorted(result.failed_sites.items()):
        click.echo(f"failed: {name}: {message}", err=True)
    if result.failed_sites:
        sys.exit(1)


@analytics.command("report")
@click.option("--site", "site", metavar="DOMAIN", help="only this site")
def analytics_report_command(site: str | None) -> None:
    """Print the report (last 7 and 28 days against the periods before, movers, sites without traffic, pages with
    impressions) and write its charts under $SPARK_HOME/reports/analytics/."""
    from spark_assets.ops.analytics_ops import print_report

    print_report(site, echo=click.echo)


@main.command()
@click.option(
    "--blueprint",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="blueprint to import (default: examples/demo-roofing.yaml)",
)
def demo(blueprint: Path | None) -> None:
    """Run the whole factory for the demo site on this machine: no accounts, no Docker."""
    from spark_assets.ops.demo import DemoFailed, run_demo

    try:
        run_demo(blueprint, echo=click.echo)
    except DemoFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--sandbox", is_flag=True, help="Answer every provider from the local simulators (no accounts needed).")
@click.pass_context
def ui(ctx: click.Context, sandbox: bool) -> None:
    """Open the Dagster UI (dagster dev) on the same instance and database the demo used. Extra args go to dagster.

    With --sandbox, Cloudflare, Namecheap, Google and Matomo are answered by local simulators for as long as the UI
    runs, so new sites are provisioned offline (their state is kept in memory and lost when the UI stops)."""
    from dagster import DagsterInstance

    from spark_assets.ops.local_instance import apply_pool_limits, dagster_home, prepare_dagster_home

    if sandbox and os.environ.get("DATABASE_URL"):
        raise click.ClickException("--sandbox is for the embedded database: it gives sites sandbox accounts. "
                                   "Unset DATABASE_URL (or use `spark demo`).")
    prepare_dagster_home(dagster_home())
    # Start (or join) the database here, in a process with no threads yet, and hold it while the UI runs: the code
    # server, daemon and run workers then join a running server. Started from inside Dagster's gRPC server instead,
    # pgserver's pg_ctl can crash when run as root (it forks to switch user while gRPC threads are running).
    engine = get_engine()
    click.echo(f"database: {describe_url(engine.url)}")
    for pool, limit in apply_pool_limits(DagsterInstance.get()).items():
        click.echo(f"pool {pool}: at most {limit} step(s) at once")
    env = dict(os.environ)
    providers = None
    if sandbox:
        from spark_assets.ops.sandbox import Sandbox

        providers = Sandbox().start()
        providers.register_accounts(engine)
        env.update(providers.env())
        click.echo("sandbox: Cloudflare, Namecheap, Google and Matomo answer from local simulators")
    dagster = Path(sys.executable).with_name("dagster")  # the venv's, even when the venv is not activated
    args = [str(dagster) if dagster.exists() else "dagster", "dev", "-m", "spark_assets.definitions", *ctx.args]
    # dagster dev treats SIGTERM as SIGINT; a SIGINT ignored by whoever started us (a background job of a
    # non-interactive shell, a service manager) would be inherited, and dagster dev could then not be stopped
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(args, env=env)
    # pass a SIGTERM on and wait, so this process exits last and releases the embedded server (pgserver stops it when
    # its last user exits); Ctrl-C reaches dagster dev directly, through the terminal's process group
    signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    try:
        while True:
            try:
                sys.exit(process.wait())
            except KeyboardInterrupt:
                continue
    finally:
        if providers is not None:
            providers.stop()


@main.command()
@click.option("--sandbox", is_flag=True, help="Answer every provider from the local simulators (no accounts needed).")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(1, 65535), help="the UI's port")
def prod(sandbox: bool, port: int) -> None:
    """Run the production topology of docker-compose.yml on this host, without Docker: PostgreSQL (embedded, or
    DATABASE_URL's server) with the `dagster` and `spark` databases, the user-code gRPC server, dagster-webserver and
    dagster-daemon, with docker/dagster.yaml's instance (queued runs, run limits, retries, monitoring). Ctrl-C or
    SIGTERM stops everything. State and logs: $SPARK_HOME/prod."""
    from spark_assets.ops.prod import Topology, TopologyFailed

    topology = Topology(port=port, sandbox=sandbox, echo=click.echo)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    # a SIGINT ignored by whoever started us (a background job of a non-interactive shell) would be inherited
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
    failed = None
    try:
        topology.start()
        click.echo(f"Spark Factory production topology is up: {topology.url} (Ctrl-C stops it)")
        exited = topology.wait()
        failed = f"{exited.name} exited on its own ({exited.process.returncode}); see {exited.log}"
    except KeyboardInterrupt:
        click.echo("stopping")
    except TopologyFailed as exc:
        failed = str(exc)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the shutdown short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        topology.stop()
    if failed:
        click.echo(f"error: {failed}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
