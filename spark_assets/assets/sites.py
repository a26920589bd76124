"""The `sites` group: each site's published articles rendered into a static website (`site_build`).

Lineage: `site_build` (partitioned by site) depends on the campaign-partitioned `articles` and `article_quality` with
`AllPartitionMapping`. Dagster 1.13 has no mapping from a campaign key (`<domain>/<slug>`) to its site key
(`<domain>`), and custom partition mappings are deprecated and ignored by automation; so the graph says "a site's build
reads published articles", which is true, and the code reads only the site's own rows (every query in
`records.site_inputs` is scoped to the site id). The UI shows the edge; it does not mark a site's build stale per
campaign.
"""


import os
import time
from pathlib import Path
from typing import Any

import jinja2
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from spark_assets.partitions import site_partitions
from spark_assets.records import site_inputs
from spark_assets.site import verify
from spark_assets.site.build import (
    BuildError,
    Theme,
    frozen_heap,
)
from spark_resources.database import DatabaseResource, private_directory, spark_home
from spark_resources.providers.matomo import MatomoResource

#: where builds go unless the run config or SPARK_BUILDS_DIR says otherwise: $SPARK_HOME/builds/<domain>/
BUILDS_VARIABLE = "SPARK_BUILDS_DIR"
#: a site's own templates: $SPARK_HOME/themes/<domain>/ (see README, "Site themes")
THEMES_VARIABLE = "SPARK_THEMES_DIR"
#: how many processes render a build's articles (default: 2 when the machine has 2 cores or more; 1 = no fork)
WORKERS_VARIABLE = "SPARK_BUILD_WORKERS"


#: verify.py's checks, each an ERROR-severity asset check of the build: (check name, what it asserts)
BUILD_CHECKS = {
    "references": ("internal_links_resolve",
                   "every internal link, breadcrumb and asset reference resolves to a file of the build"),
    "sitemap": ("sitemap_is_valid",
                "sitemap index and shards validate against the sitemaps.org XSDs, list every page once, absolute, "
                "each page's canonical itself"),
    "feed": ("feed_parses", "the Atom feed parses (feedparser, no bozo) and links pages that exist"),
    "robots": ("robots_allows_the_site", "robots.txt (protego) names the sitemap and allows every page"),
    "pages": ("pages_are_complete",
              "no page is empty, lacks a title or its one H1, or shows leftover or escaped markup"),
    "jsonld": ("json_ld_expands",
               "every JSON-LD block parses and expands with the schema.org context (pyld), articles dated, and "
               "states only what its page shows (canonical, dates, headline, breadcrumbs, places; no ratings)"),
}


def builds_root() -> Path:
    return Path(os.environ.get(BUILDS_VARIABLE) or spark_home() / "builds")


def themes_root() -> Path:
    return Path(os.environ.get(THEMES_VARIABLE) or spark_home() / "themes")


def build_workers() -> int:
    value = os.environ.get(WORKERS_VARIABLE, "").strip()
    if not value:
        return min(2, os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise Failure(f"{WORKERS_VARIABLE} must be a whole number of processes (1 or 2), not {value!r}")
    return min(int(value), 2)


def tracker_url(matomo: MatomoResource) -> str:
    """The Matomo tracker's base URL: the resource's `tracker_url`, else the API's `index.php` URL's directory."""
    if matomo.tracker_url:
        return matomo.tracker_url.rstrip("/") + "/"
    base = matomo.base_url
    return base[: -len("index.php")] if base.endswith("index.php") else base.rstrip("/") + "/"


@asset(
    partitions_def=site_partitions,
    group_name="sites",
    kinds={"jinja", "html"},
    owners=["team:platform"],
    deps=[
        AssetDep("articles", partition_mapping=AllPartitionMapping()),
        AssetDep("article_quality", partition_mapping=AllPartitionMapping()),
        "published_batch",  # the drip feed's batch (same site partition): drip_feed_job builds after publishing
    ],
    description="The site as a static website: its published articles, state and place hubs, pages, sitemap index, "
    "Atom feed and robots.txt, rendered incrementally into $SPARK_HOME/builds/<domain>/site/ with a manifest per build.",
    check_specs=[
        AssetCheckSpec(name, asset="site_build", description=description) for name, description in BUILD_CHECKS.values()
    ],
)
def site_build(context: AssetExecutionContext, database: DatabaseResource, matomo: MatomoResource) -> MaterializeResult:
    domain = context.partition_key
    started = time.perf_counter()
    with database.begin() as conn:
        row, site = site_inputs.load_site(conn, domain, tracker_url(matomo))
        previous_manifest = site_inputs.last_good_manifest(conn, row.id)
        fingerprint = site_inputs.site_fingerprint(conn, row.id)
        base = builds_root() / domain
        build_id = site_inputs.start_build(conn, row.id, base / "site")
    root = base / "site"
    with frozen_heap():  # the run worker's long-lived heap left out of the GC's passes while the build allocates
        try:
            private_directory(base / "manifests")
            theme = Theme(themes_root() / domain)
            # nothing changed (the fingerprint, one aggregate query, says so): the previous build is reused;
            # otherwise the changed files are rendered, in two processes when there are many
            result = site_inputs.build_from_rows(
                database.engine, row.id, site, root, theme, fingerprint, previous_manifest,
                workers=build_workers(), progress=lambda stage, n: context.log.info(f"{domain}: {stage}: {n:,}"))
            manifest_path = base / "manifests" / f"{build_id}.json"
            result.write_manifest(manifest_path, str(build_id), domain)
        except (BuildError, OSError, jinja2.TemplateError) as exc:
            # what the operator can fix (a slug collision, a path, the site's own template): said as it is
            detail = str(exc)
            if isinstance(exc, jinja2.TemplateError):
                detail = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, jinja2.TemplateSyntaxError):
                    detail += f" ({exc.name}, line {exc.lineno})"
            message = f"site build for {domain}: {detail}"
            with database.begin() as conn:
                site_inputs.fail_build(conn, build_id, message)
            raise Failure(description=message) from None
        except Exception as exc:
            # a bug: recorded by its type only (the traceback stays in the run's log), so the row never stays 'building'
            with database.begin() as conn:
                site_inputs.fail_build(conn, build_id, f"site build for {domain}: unexpected {type(exc).__name__}")
            raise
    duration = time.perf_counter() - started
    checked = time.perf_counter()
    index = verify.scan(root, domain)
    check_results = []
    for key, check in verify.CHECKS.items():
        problems = check(index, domain)
        name, _ = BUILD_CHECKS[key]
        check_results.append(AssetCheckResult(
            check_name=name, asset_key="site_build", passed=problems.total == 0, severity=AssetCheckSeverity.ERROR,
            description=f"{problems.total} problem(s), the first: {problems[0]}" if problems else "no problem",
            metadata={"problems": problems.total, "pages_checked": len(index.pages),
                      "examples": MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")},
        ))
    check_seconds = time.perf_counter() - checked
    with database.begin() as conn:
        site_inputs.finish_build(
            conn, build_id, article_count=result.articles, page_count=result.files.html_count,
            total_bytes=result.bytes, manifest_hash=result.manifest_hash, manifest_path=str(manifest_path),
            files_written=result.written, files_skipped=result.skipped + result.rendered_unchanged,
            files_removed=result.removed, hub_count=result.hubs, duration_ms=int(duration * 1000),
        )
    metadata: dict[str, Any] = {
        "build_id": str(build_id),
        "articles": result.articles,
        "hubs": result.hubs,
        "pages_and_posts": result.pages,
        "files": len(result.files),
        "files_written": result.written,
        "files_skipped": result.skipped,
        "files_rendered_unchanged": result.rendered_unchanged,
        "files_removed": result.removed,
        "bytes": MetadataValue.int(result.bytes),
        "seconds": round(duration, 3),
        "manifest": MetadataValue.path(str(manifest_path)),
        "manifest_hash": result.manifest_hash,
        "renderers": 2 if result.second_process_peak_rss_mb else 1,
        "home_page": MetadataValue.path(str(root / "index.html")),
        "theme_overrides": MetadataValue.json(theme.overridden),
        "check_seconds": round(check_seconds, 3),
    }
    return MaterializeResult(metadata=metadata, check_results=check_results)
