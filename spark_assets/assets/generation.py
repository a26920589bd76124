"""Content assets: permutations, headlines and articles, per campaign (their publishing gate is in `publishing`).

Each asset reads its campaign's dimension rows, streams the content core's output into PostgreSQL with COPY, and commits
once per campaign: a failure anywhere leaves the previous version whole. Ids are derived from the combination (see
`content.permutations`), so re-runs keep them; articles whose content did not change keep their status and dates.
"""

import statistics
import time
from array import array
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterator
from uuid import UUID

import orjson
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from sqlalchemy.engine import Connection

from spark_assets.content.articles import Article, ArticleAssembler, SiteInfo
from spark_assets.content.blueprint import Blueprint, blueprint_warnings
from spark_assets.content.geo import GeoTarget
from spark_assets.content.permutations import PatternRef, Permutation, Persona, iter_permutations, permutation_count
from spark_assets.content.seo import digest as seo_digest
from spark_assets.partitions import campaign_partitions
from spark_assets.records.registry import Campaign, Site, get_site, load_campaign_blueprint, lock_campaign
from spark_resources.bulk import copy_rows, create_staging_table
from spark_resources.database import DatabaseResource

#: what every campaign content asset shares: partition, group, kind, owner and one-run backfills
CAMPAIGN_CONTENT = dict(
    partitions_def=campaign_partitions,
    group_name="content",
    kinds={"postgres"},
    owners=["team:content"],
    backfill_policy=BackfillPolicy.single_run(),
)


class MissingDimension(RuntimeError):
    """An upstream asset has not been materialized for this campaign."""


@dataclass(frozen=True)
class CampaignInputs:
    campaign: Campaign
    blueprint: Blueprint
    site: Site
    geos: list[GeoTarget]
    personas: list[Persona]
    patterns: list[PatternRef]
    fragment_ids: dict[tuple[str, int], UUID]
    offer_ids: dict[str, UUID]

    @property
    def permutation_count(self) -> int:
        return permutation_count(self.geos, self.personas, self.patterns)

    def permutations(self) -> Iterator[Permutation]:
        return iter_permutations(self.campaign.partition_key, self.geos, self.personas, self.patterns)

    def assembler(
        self, taken_slugs: frozenset[str] = frozenset(), generated_on: date | None = None, taken: "SiteTaken | None" = None
    ) -> ArticleAssembler:
        return ArticleAssembler(
            blueprint=self.blueprint,
            campaign_slug=self.campaign.slug,
            site=SiteInfo(self.site.domain, self.site.brand_name or self.site.domain),
            geos=self.geos,
            fragment_ids=self.fragment_ids,
            offer_ids=self.offer_ids,
            blueprint_hash=self.campaign.blueprint_hash,
            # {{year}} is the generation year; nothing else in an article depends on the date, so a day passing
            # changes nothing and a new year changes only the articles that say the year
            generated_on=generated_on or generation_date(),
            taken_slugs=taken_slugs,
            taken_titles=taken.titles if taken else None,
            taken_descriptions=taken.descriptions if taken else None,
            taken_h1s=taken.h1s if taken else None,
        )


def longest_values(inputs: CampaignInputs) -> dict[str, int]:
    """The longest value of each place and site token in the campaign: what a title template must fit around."""
    geos = inputs.geos
    return {
        "city": max(len(g.city or "") for g in geos),
        "county": max(len(g.county or "") for g in geos),
        "state": max(len(g.state) for g in geos),
        "location": max(len(g.label) for g in geos),
        "brand": len(inputs.site.brand_name or inputs.site.domain),
        "domain": len(inputs.site.domain),
    }


def generation_date() -> date:
    """Today (UTC): the date generation runs on, whose year fills {{year}}. Tests replace it with a fixed day."""
    return datetime.now(timezone.utc).date()


@dataclass
class SiteTaken:
    """Digests (content.seo.digest) of the title tags, meta descriptions and H1s the site's other campaigns use."""

    titles: set[int] = field(default_factory=set)
    descriptions: set[int] = field(default_factory=set)
    h1s: set[int] = field(default_factory=set)


def site_taken(conn: Connection, site_id: Any, campaign_id: Any) -> SiteTaken:
    """What the site's other campaigns' articles use (streamed; only 8-byte digests are kept)."""
    taken = SiteTaken()
    rows = conn.execute(
        sa.text("SELECT seo_title, seo_description, title FROM generated_articles WHERE site_id = :s AND "
                "campaign_id IS DISTINCT FROM :c").execution_options(stream_results=True, yield_per=5000),
        {"s": site_id, "c": campaign_id},
    )
    for seo_title, description, title in rows:
        if seo_title:
            taken.titles.add(seo_digest(seo_title))
        if description:
            taken.descriptions.add(seo_digest(description))
        if title:
            taken.h1s.add(seo_digest(title))
    return taken


def load_inputs(conn: Connection, key: str) -> CampaignInputs:
    """Everything the content stages of campaign `key` are built from, or MissingDimension naming what to run."""
    campaign, blueprint = load_campaign_blueprint(conn, key)
    site = get_site(conn, campaign.domain)
    geos = [
        GeoTarget(r.id, r.location_key, r.label or r.location_key, r.state, r.state_code, city=r.city, county=r.county,
                  population=r.population, state_id=r.state_id, county_id=r.county_id, city_id=r.city_id,
                  latitude=r.latitude, longitude=r.longitude)
        for r in conn.execute(
            sa.text(
                """SELECT * FROM geo_intelligence WHERE campaign_id = :c AND status <> 'archived'
                   ORDER BY ordinal, location_key"""
            ),
            {"c": campaign.id},
        )
    ]
    if not geos:
        raise MissingDimension(f"{key} has no geo targets: materialize campaign_geo for it first")
    variant_rows = conn.execute(
        sa.text(
            """SELECT a.slug AS avatar_slug, a.id AS avatar_id, v.slug AS variant_slug, v.id AS variant_id
               FROM avatar_intelligence a JOIN avatar_variants v ON v.avatar_id = a.id
               WHERE a.site_id = :site AND a.status <> 'archived' AND v.status <> 'archived'"""
        ),
        {"site": campaign.site_id},
    ).all()
    variant_ids = {(r.avatar_slug, r.variant_slug): (r.avatar_id, r.variant_id) for r in variant_rows}
    personas = []
    for avatar in blueprint.avatars:
        for variant in avatar.variants:
            ids = variant_ids.get((avatar.slug, variant.slug))
            if ids is None:
                raise MissingDimension(f"avatar {avatar.slug}/{variant.slug} is not stored: materialize avatars first")
            personas.append(
                Persona(ids[0], avatar.slug, avatar.name, tuple(avatar.pain_points), ids[1], variant.slug, variant.name)
            )
    pattern_ids = dict(
        conn.execute(
            sa.text("SELECT slug, id FROM cartesian_patterns WHERE campaign_id = :c AND status <> 'archived'"),
            {"c": campaign.id},
        ).all()
    )
    missing = [p.slug for p in blueprint.patterns if p.slug not in pattern_ids]
    if missing:
        raise MissingDimension(f"{key}: patterns {', '.join(missing)} are not stored: materialize campaign_blueprint")
    patterns = [PatternRef(pattern_ids[p.slug], p.slug, p.logic) for p in blueprint.patterns]
    fragment_ids = {
        (r.fragment_type, r.position): r.id
        for r in conn.execute(
            sa.text("SELECT fragment_type, position, id FROM content_fragments WHERE campaign_id = :c"), {"c": campaign.id}
        )
    }
    offer_ids = dict(
        conn.execute(sa.text("SELECT slug, id FROM offer_blocks WHERE campaign_id = :c"), {"c": campaign.id}).all()
    )
    return CampaignInputs(campaign, blueprint, site, geos, personas, patterns, fragment_ids, offer_ids)


# --- permutations -------------------------------------------------------------------------------------------------


@asset(
    **CAMPAIGN_CONTENT,
    deps=["campaign_geo", "avatars", "campaign_blueprint"],
    description="Geo target x avatar x variant x pattern, streamed into cartesian_permutations with stable ids.",
)
def cartesian_permutations(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    for key in context.partition_keys:
        with database.begin() as conn:
            lock_campaign(conn, key, on_wait=context.log.info)
            inputs = load_inputs(conn, key)
            written = write_permutations(conn, inputs)
        context.log.info(f"{key}: {written:,} permutations")
        summary = {
            "campaign": key,
            "permutations": written,
            "geo_targets": len(inputs.geos),
            "personas": len(inputs.personas),
            "patterns": len(inputs.patterns),
        }
    return MaterializeResult(metadata={**summary, "seconds": round(time.perf_counter() - started, 3)})


_PERMUTATION_COLUMNS = ("id", "campaign_id", "geo_id", "avatar_id", "variant_id", "pattern_id", "combination_key", "ordinal")


def write_permutations(conn: Connection, inputs: CampaignInputs) -> int:
    """Stream the product into a staging table, then merge: new rows in, moved rows re-ordered, vanished rows out,
    except that a vanished row a published article stands on is retired instead (the article stays published and
    linked; the articles stage reports it). Archived places and patterns nothing stands on any more are then deleted."""
    create_staging_table(conn, "staged_permutations", "cartesian_permutations", _PERMUTATION_COLUMNS)
    count = copy_rows(
        conn,
        "staged_permutations",
        _PERMUTATION_COLUMNS,
        (
            (p.id, inputs.campaign.id, p.geo.id, p.persona.avatar_id, p.persona.variant_id, p.pattern.id,
             p.combination_key, p.ordinal)
            for p in inputs.permutations()
        ),
    )
    # vanished rows out first: a combination may come back under a new id (its campaign key changed)
    vanished = "p.campaign_id = :c AND NOT EXISTS (SELECT 1 FROM staged_permutations s WHERE s.id = p.id)"
    published_on = "EXISTS (SELECT 1 FROM generated_articles g WHERE g.permutation_id = p.id AND g.is_published)"
    campaign = {"c": inputs.campaign.id}
    conn.execute(
        sa.text(f"UPDATE cartesian_permutations p SET status = 'retired' WHERE {vanished} AND {published_on} "
                "AND p.status <> 'retired'"),
        campaign,
    )
    conn.execute(sa.text(f"DELETE FROM cartesian_permutations p WHERE {vanished} AND NOT {published_on}"), campaign)
    columns = ", ".join(_PERMUTATION_COLUMNS)
    conn.execute(
        sa.text(
            f"""INSERT INTO cartesian_permutations ({columns}) SELECT {columns} FROM staged_permutations
                ON CONFLICT (id) DO UPDATE SET ordinal = EXCLUDED.ordinal, status = 'active'
                WHERE (cartesian_permutations.ordinal, cartesian_permutations.status) IS DISTINCT FROM
                      (EXCLUDED.ordinal, 'active')"""
        )
    )
    for table, column in (("geo_intelligence", "geo_id"), ("cartesian_patterns", "pattern_id")):
        conn.execute(
            sa.text(
                f"""DELETE FROM {table} d WHERE d.campaign_id = :c AND d.status = 'archived'
                    AND NOT EXISTS (SELECT 1 FROM cartesian_permutations p WHERE p.{column} = d.id)"""
            ),
            campaign,
        )
    return count


# --- headlines ----------------------------------------------------------------------------------------------------


@asset(
    **CAMPAIGN_CONTENT,
    deps=["cartesian_permutations"],
    description="One headline per permutation (headline_inventory) from the campaign's spintax root, unique where the "
    "spintax allows.",
    check_specs=[AssetCheckSpec("headlines_are_unique", asset="headlines", description="no two permutations share a headline")],
)
def headlines(context: AssetExecutionContext, database: DatabaseResource) -> Iterator[Any]:
    started = time.perf_counter()
    total = duplicates = variations = 0
    for key in context.partition_keys:
        with database.begin() as conn:
            lock_campaign(conn, key, on_wait=context.log.info)
            inputs = load_inputs(conn, key)
            written, not_unique, variations = write_headlines(conn, inputs)
        total += written
        duplicates += not_unique
        context.log.info(f"{key}: {written:,} headlines, {not_unique:,} not unique")
    unique = total - duplicates
    yield MaterializeResult(
        metadata={
            "headlines": total,
            "unique_headlines": unique,
            "headline_variations": MetadataValue.text(f"{variations:,}"),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    yield AssetCheckResult(
        check_name="headlines_are_unique",
        passed=duplicates == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "unique": unique,
            "needed": total,
            "advice": "" if duplicates == 0 else (
                f"the headline spintax gave {unique:,} unique headlines for {total:,} permutations: add options or "
                "tokens such as {{avatar}} or {{variant}} to headline_spintax_root"
            ),
        },
    )


def write_headlines(conn: Connection, inputs: CampaignInputs) -> tuple[int, int, int]:
    """Replace the campaign's headline_inventory (ids are derived, so they are kept); returns (written, not unique,
    variations the spintax root has)."""
    assembler = inputs.assembler()
    not_unique = 0

    def rows() -> Iterator[tuple]:
        nonlocal not_unique
        for perm in inputs.permutations():
            text, unique = assembler.headline(perm, assembler.token_values(perm))
            not_unique += not unique
            yield perm.headline_id, inputs.campaign.id, perm.id, text, False, "active"

    conn.execute(sa.text("DELETE FROM headline_inventory WHERE campaign_id = :c"), {"c": inputs.campaign.id})
    written = copy_rows(
        conn, "headline_inventory", ("id", "campaign_id", "permutation_id", "headline_text", "is_used", "status"), rows()
    )
    return written, not_unique, assembler.headline_template.variations


# --- articles -----------------------------------------------------------------------------------------------------

_ARTICLE_COLUMNS = (
    "id", "site_id", "campaign_id", "permutation_id", "status", "is_published", "title", "content", "slug",
    "seo_title", "seo_description", "word_count", "schema_json", "provenance", "content_hash", "quality_issues",
)
_MERGED = ("title", "content", "slug", "seo_title", "seo_description", "word_count", "schema_json", "provenance",
           "content_hash", "quality_issues", "permutation_id")


@dataclass
class ArticleStats:
    """What the articles asset reports, gathered while the articles stream past (only 3 are kept, as a preview)."""

    written: int = 0
    word_counts: array = field(default_factory=lambda: array("i"))
    with_issues: int = 0
    unresolved: int = 0
    duplicate_headlines: int = 0
    preview: list[Article] = field(default_factory=list)

    def add(self, article: Article) -> None:
        self.written += 1
        self.word_counts.append(article.word_count)
        self.with_issues += bool(article.issues)
        self.unresolved += "unresolved_markup" in article.issues
        self.duplicate_headlines += not article.headline_unique
        if len(self.preview) < 3:
            self.preview.append(article)


@asset(
    **CAMPAIGN_CONTENT,
    deps=["headlines"],
    description="Articles (generated_articles) assembled from fragments, with SEO fields, JSON-LD, links and provenance.",
    check_specs=[
        AssetCheckSpec("articles_have_no_unresolved_markup", asset="articles",
                       description="no {{token}} or spintax brace left in any title, body or meta"),
        AssetCheckSpec("article_word_counts_near_target", asset="articles",
                       description="articles within 80-125% of the campaign's target word count"),
    ],
)
def articles(context: AssetExecutionContext, database: DatabaseResource) -> Iterator[Any]:
    started = time.perf_counter()
    stats = ArticleStats()
    changes: dict[str, int] = {}
    warnings: list[str] = []
    target = 0
    for key in context.partition_keys:
        with database.begin() as conn:
            lock_campaign(conn, key, on_wait=context.log.info)
            inputs = load_inputs(conn, key)
            target = inputs.blueprint.target_word_count
            for warning in blueprint_warnings(inputs.blueprint, longest=longest_values(inputs)):
                warnings.append(f"{key}: {warning.field}: {warning.message}")
                context.log.warning(warnings[-1])
            changes = write_articles(
                conn, inputs, stats, report=lambda done, total: context.log.info(f"{key}: {done:,} of {total:,} articles")
            )
        context.log.info(f"{key}: {changes}")
        if changes.get("kept_published"):
            context.log.warning(
                f"{key}: {changes['kept_published']} published article(s) no longer come from the blueprint (a place, "
                "persona or pattern was removed): they stay published; archive them if they should go"
            )
    counts = sorted(stats.word_counts)
    low, high = (int(target * 0.8), int(target * 1.25))
    outside = sum(1 for c in counts if c < low or c > high)
    yield MaterializeResult(
        metadata={
            "articles": stats.written,
            **{k: MetadataValue.int(v) for k, v in changes.items()},
            "articles_with_issues": stats.with_issues,
            "target_word_count": target,
            "word_count_min": counts[0] if counts else 0,
            "word_count_median": int(statistics.median(counts)) if counts else 0,
            "word_count_max": counts[-1] if counts else 0,
            "preview": MetadataValue.md(_preview(stats.preview)),
            "blueprint_warnings": MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "none"),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    yield AssetCheckResult(
        check_name="articles_have_no_unresolved_markup",
        passed=stats.unresolved == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"articles_with_markup_left": stats.unresolved},
    )
    yield AssetCheckResult(
        check_name="article_word_counts_near_target",
        passed=outside == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={"outside_range": outside, "range": f"{low}-{high} words"},
    )


def in_batches(rows: Iterator[tuple], batch: int, total: int, report) -> Iterator[tuple]:
    """Pass `rows` through, calling `report(done, total)` after every `batch` rows (the campaign's batch_count)."""
    done = 0
    for row in rows:
        yield row
        done += 1
        if done % batch == 0 or done == total:
            report(done, total)


def write_articles(
    conn: Connection, inputs: CampaignInputs, stats: ArticleStats, generated_on: date | None = None, report=None
) -> dict[str, int]:
    """Generate and store every article of the campaign in the connection's transaction.

    A first run COPYs straight into generated_articles. Later runs COPY into a staging table and merge: unchanged
    articles (same content hash) are not touched, changed ones are rewritten and go back to draft, new ones are added
    and unpublished ones whose permutation is gone are removed. A published article whose permutation is gone (the
    blueprint dropped its place, persona or pattern) stays published, on its retired permutation, and keeps its slug:
    it is counted as `kept_published`, for an editor to archive or keep. The campaign's quality report is dropped: it no
    longer applies."""
    campaign = inputs.campaign
    taken = frozenset(
        conn.execute(
            sa.text(
                """SELECT g.slug FROM generated_articles g WHERE g.site_id = :s AND (g.campaign_id IS DISTINCT FROM :c
                   OR (g.is_published AND EXISTS (SELECT 1 FROM cartesian_permutations p
                                                  WHERE p.id = g.permutation_id AND p.status = 'retired')))"""
            ),
            {"s": inputs.site.id, "c": campaign.id},
        ).scalars()
    )
    assembler = inputs.assembler(taken, generated_on, site_taken(conn, inputs.site.id, campaign.id))
    existing = conn.execute(
        sa.text("SELECT count(*) FROM generated_articles WHERE campaign_id = :c"), {"c": campaign.id}
    ).scalar_one()

    def rows() -> Iterator[tuple]:
        for perm in inputs.permutations():
            article = assembler.assemble(perm)
            stats.add(article)
            yield (
                article.id, inputs.site.id, campaign.id, perm.id, "draft", False, article.title, article.content,
                article.slug, article.seo_title or None, article.seo_description or None, article.word_count,
                article.schema_text, orjson.dumps(article.provenance).decode(),
                article.content_hash, orjson.dumps(article.issues).decode(),
            )

    conn.execute(sa.text("DELETE FROM campaign_quality WHERE campaign_id = :c"), {"c": campaign.id})
    stream = rows()
    if report is not None:
        stream = in_batches(stream, inputs.blueprint.batch_count, inputs.permutation_count, report)
    if existing == 0:
        written = copy_rows(conn, "generated_articles", _ARTICLE_COLUMNS, stream)
        changes = {"new": written, "changed": 0, "unchanged": 0, "removed": 0, "kept_published": 0}
    else:
        create_staging_table(conn, "staged_articles", "generated_articles", _ARTICLE_COLUMNS)
        copy_rows(conn, "staged_articles", _ARTICLE_COLUMNS, stream)
        vanished = "g.campaign_id = :c AND NOT EXISTS (SELECT 1 FROM staged_articles s WHERE s.id = g.id)"
        removed = conn.execute(
            sa.text(f"DELETE FROM generated_articles g WHERE {vanished} AND NOT g.is_published"), {"c": campaign.id}
        ).rowcount
        kept_published = conn.execute(
            sa.text(f"SELECT count(*) FROM generated_articles g WHERE {vanished}"), {"c": campaign.id}
        ).scalar_one()
        assignments = ", ".join(f"{c} = s.{c}" for c in _MERGED)
        changed = conn.execute(
            sa.text(
                f"""UPDATE generated_articles g SET {assignments},
                        status = CASE WHEN g.status = 'archived' THEN 'archived' ELSE 'draft' END,
                        is_published = false, approved_at = NULL, published_at = NULL, content_updated_at = now()
                    FROM staged_articles s WHERE g.id = s.id AND g.content_hash IS DISTINCT FROM s.content_hash"""
            )
        ).rowcount
        columns = ", ".join(_ARTICLE_COLUMNS)
        new = conn.execute(
            sa.text(
                f"""INSERT INTO generated_articles ({columns}) SELECT {columns} FROM staged_articles s
                    WHERE NOT EXISTS (SELECT 1 FROM generated_articles g WHERE g.id = s.id)"""
            )
        ).rowcount
        written = stats.written
        changes = {"new": new, "changed": changed, "unchanged": written - new - changed, "removed": removed,
                   "kept_published": kept_published}
    conn.execute(
        sa.text("UPDATE headline_inventory SET is_used = true, status = 'used' WHERE campaign_id = :c AND NOT is_used"),
        {"c": campaign.id},
    )
    conn.execute(sa.text("UPDATE sites SET status_content = 'generated' WHERE id = :s"), {"s": inputs.site.id})
    return changes


def _preview(sample: list[Article]) -> str:
    if not sample:
        return "no articles"
    parts = []
    for article in sample:
        text = " ".join(article.seo_description.split())
        parts.append(
            f"### {article.title}\n`/{article.slug}/` · {article.word_count} words · SEO title: {article.seo_title}\n\n"
            f"> {text}"
        )
    return "\n\n".join(parts)
