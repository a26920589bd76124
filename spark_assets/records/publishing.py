"""The publishing workflow: draft -> approved -> published, gated by the campaign's quality report.

`record_quality` is called by the `article_quality` asset; `approve` and `publish` by `spark articles ...`. The gate: a
campaign publishes only when its latest quality report (dropped whenever its articles change) says its near-duplicate
rate is within the campaign's maximum and no stored article has markup left in it. Per article, issues are BLOCKING
(`BLOCKING_ISSUES`: what an editor would not let out) or warnings (every other name, including ones this module does
not know, which are counted under their own names): `approve --passing` and auto-publishing take only articles free of
blocking issues, and an article with markup left is never published at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spark_assets.content.blueprint import Blueprint
from spark_assets.content.seo import META_DESCRIPTION_RANGE, SEO_TITLE_MAX
from spark_assets.records.registry import Campaign, RegistryError, get_campaign, lock_campaign

if TYPE_CHECKING:  # datasketch pulls in scipy (a second to import): the CLI should not pay for it
    from spark_assets.content.dedupe import NearDuplicateReport

#: issues the quality stage owns (recomputed on every check); the others come from generation
GATE_ISSUES = (
    "near_duplicate", "unresolved_markup", "similar_content", "near_duplicate_in_site", "near_duplicate_across_sites",
    "thin_content", "article_agreement", "seo_title_too_long", "duplicate_seo_title", "meta_description_length",
    "duplicate_meta_description", "duplicate_h1", "broken_link",
)
#: issues that keep an article from being approved with --passing or auto-published: what an editor would not publish
#: (a copy, broken markup, a title tag cut by the search engine or shared with another page, a repeated H1, thin text,
#: a grammar slip, a link to a page the site will not have). Everything else (`meta_description_length`, `duplicate_meta_description`, `similar_content`,
#: `duplicate_headline`, `word_count_*`, and names added elsewhere that this list does not hold) is a warning, counted.
BLOCKING_ISSUES = (
    "near_duplicate", "near_duplicate_in_site", "near_duplicate_across_sites", "unresolved_markup",
    "visible_escaped_markup", "thin_content", "article_agreement", "seo_title_too_long", "duplicate_seo_title",
    "duplicate_h1", "broken_link",
)
#: what publishing an approved article sets, shared by `publish`, `auto_publish` and the drip feed
#: (`records.drip_feed.publish_batch`), so a page is published the same way whoever publishes it
PUBLISHED = "status = 'published', is_published = true, published_at = now()"
_MARKUP = "(g.title || coalesce(g.seo_title, '') || coalesce(g.seo_description, '') || g.content) ~ '[{}]'"
_NO_BLOCKING = "NOT (quality_issues ?| CAST(:blocking AS text[]))"
#: a field another article of the same site has (case-folded); within a campaign the first by id keeps it. An empty
#: (NULL) title tag or description is what generation stores when no variation fits: flagged as too long / length
_SITE_DUPLICATE = """EXISTS (SELECT 1 FROM generated_articles o WHERE o.site_id = g.site_id AND o.id <> g.id
    AND lower(o.{column}) = lower(g.{column}) AND (o.campaign_id <> g.campaign_id OR o.id < g.id))"""


@dataclass(frozen=True)
class GateFindings:
    """What the asset found over the text (ids as text): each set becomes the issue it is named after."""

    similar_content: frozenset[str] = frozenset()
    near_duplicate_in_site: frozenset[str] = frozenset()
    near_duplicate_across_sites: frozenset[str] = frozenset()
    thin_content: frozenset[str] = frozenset()
    article_agreement: frozenset[str] = frozenset()
    broken_link: frozenset[str] = frozenset()


class PublishingError(RegistryError):
    """The campaign cannot move on: no fresh quality report, or the report blocks publishing."""


@dataclass(frozen=True)
class QualityReport:
    articles: int
    near_duplicate_rate: float
    max_near_duplicate_rate: float
    similarity_threshold: float
    worst_pairs: list[dict]
    articles_with_issues: int
    unclean_articles: int
    issue_counts: dict[str, int] = field(default_factory=dict)  # every issue name, known or not -> articles
    examples: dict[str, list[str]] = field(default_factory=dict)  # issue -> up to 3 "slug: title"
    blocked_articles: int = 0

    @property
    def publishable(self) -> bool:
        return self.near_duplicate_rate <= self.max_near_duplicate_rate and self.unclean_articles == 0

    def summary(self) -> str:
        verdict = "publishable" if self.publishable else "publishing blocked"
        return (
            f"{self.articles:,} articles, near-duplicate rate {self.near_duplicate_rate:.2%} "
            f"(max {self.max_near_duplicate_rate:.2%}), {self.unclean_articles} with markup left: {verdict}"
        )

    def worst_pairs_markdown(self) -> str:
        if not self.worst_pairs:
            return "no near-duplicate pairs"
        rows = "\n".join(f"| {p['first']} | {p['second']} | {p['similarity']:.3f} |" for p in self.worst_pairs)
        return "| article | article | similarity |\n|---|---|---|\n" + rows

    def issues_markdown(self) -> str:
        if not self.issue_counts:
            return "no issues"
        rows = "\n".join(
            f"| {name} | {'blocking' if name in BLOCKING_ISSUES else 'warning'} | {count} | "
            f"{'<br>'.join(self.examples.get(name, []))} |"
            for name, count in sorted(self.issue_counts.items(), key=lambda item: (-item[1], item[0]))
        )
        return "| issue | kind | articles | examples |\n|---|---|---|---|\n" + rows


def record_quality(
    conn: Connection, campaign: Campaign, blueprint: Blueprint, near: "NearDuplicateReport",
    findings: GateFindings = GateFindings(),
) -> QualityReport:
    """Flag each article with the gate's issues and store the campaign's report (replacing the previous one)."""
    flag = lambda name, condition: (  # noqa: E731
        f"|| CASE WHEN {condition} THEN '[\"{name}\"]'::jsonb ELSE '[]'::jsonb END"
    )
    found = {name: sorted(getattr(findings, name)) for name in GateFindings.__dataclass_fields__}
    low, high = META_DESCRIPTION_RANGE
    conn.execute(
        sa.text(
            f"""UPDATE generated_articles g SET quality_issues =
                    (g.quality_issues - CAST(:gate AS text[]))
                    {flag("near_duplicate", "g.id = ANY(CAST(:near AS uuid[]))")}
                    {flag("unresolved_markup", _MARKUP)}
                    {"".join(flag(name, f"g.id = ANY(CAST(:{name} AS uuid[]))") for name in found)}
                    {flag("seo_title_too_long", f"coalesce(char_length(g.seo_title), 0) NOT BETWEEN 1 AND {SEO_TITLE_MAX}")}
                    {flag("meta_description_length",
                          f"coalesce(char_length(g.seo_description), 0) NOT BETWEEN {low} AND {high}")}
                    {flag("duplicate_seo_title", _SITE_DUPLICATE.format(column="seo_title"))}
                    {flag("duplicate_meta_description", _SITE_DUPLICATE.format(column="seo_description"))}
                    {flag("duplicate_h1", _SITE_DUPLICATE.format(column="title"))}
                WHERE g.campaign_id = :c"""
        ),
        {"gate": list(GATE_ISSUES), "near": sorted(near.flagged), "c": campaign.id, **found},
    )
    issue_counts = dict(
        conn.execute(
            sa.text(
                """SELECT issue, count(*) FROM generated_articles g, jsonb_array_elements_text(g.quality_issues) issue
                   WHERE g.campaign_id = :c GROUP BY issue"""
            ),
            {"c": campaign.id},
        ).all()
    )
    examples: dict[str, list[str]] = {}
    for issue, slug, title in conn.execute(
        sa.text(
            """SELECT issue, slug, title FROM (
                   SELECT issue, g.slug, g.title, row_number() OVER (PARTITION BY issue ORDER BY g.slug) AS n
                   FROM generated_articles g, jsonb_array_elements_text(g.quality_issues) issue
                   WHERE g.campaign_id = :c) x WHERE n <= 3 ORDER BY issue, slug"""
        ),
        {"c": campaign.id},
    ):
        examples.setdefault(issue, []).append(f"{slug}: {title}")
    blocked = conn.execute(
        sa.text(f"SELECT count(*) FROM generated_articles WHERE campaign_id = :c AND NOT {_NO_BLOCKING}"),
        {"c": campaign.id, "blocking": list(BLOCKING_ISSUES)},
    ).scalar_one()
    counts = conn.execute(
        sa.text(
            """SELECT count(*) AS articles,
                      count(*) FILTER (WHERE quality_issues <> '[]'::jsonb) AS with_issues,
                      count(*) FILTER (WHERE quality_issues ? 'unresolved_markup') AS unclean
               FROM generated_articles WHERE campaign_id = :c"""
        ),
        {"c": campaign.id},
    ).one()
    report = QualityReport(
        articles=counts.articles,
        near_duplicate_rate=near.rate,
        max_near_duplicate_rate=blueprint.publishing.max_near_duplicate_rate,
        similarity_threshold=near.threshold,
        worst_pairs=[{"first": p.first, "second": p.second, "similarity": p.similarity} for p in near.worst_pairs],
        articles_with_issues=counts.with_issues,
        unclean_articles=counts.unclean,
        issue_counts=issue_counts,
        examples=examples,
        blocked_articles=blocked,
    )
    conn.execute(
        sa.text(
            """INSERT INTO campaign_quality (campaign_id, articles, near_duplicate_rate, max_near_duplicate_rate,
                   similarity_threshold, worst_pairs, articles_with_issues, publishable, checked_at)
               VALUES (:c, :articles, :rate, :max, :threshold, CAST(:pairs AS jsonb), :issues, :ok, now())
               ON CONFLICT (campaign_id) DO UPDATE SET articles = EXCLUDED.articles,
                   near_duplicate_rate = EXCLUDED.near_duplicate_rate,
                   max_near_duplicate_rate = EXCLUDED.max_near_duplicate_rate,
                   similarity_threshold = EXCLUDED.similarity_threshold, worst_pairs = EXCLUDED.worst_pairs,
                   articles_with_issues = EXCLUDED.articles_with_issues, publishable = EXCLUDED.publishable,
                   checked_at = EXCLUDED.checked_at"""
        ),
        {"c": campaign.id, "articles": report.articles, "rate": report.near_duplicate_rate,
         "max": report.max_near_duplicate_rate, "threshold": report.similarity_threshold,
         "pairs": json.dumps(report.worst_pairs), "issues": report.articles_with_issues, "ok": report.publishable},
    )
    return report


def _require_publishable(conn: Connection, campaign: Campaign) -> None:
    row = conn.execute(
        sa.text("SELECT publishable, near_duplicate_rate, max_near_duplicate_rate FROM campaign_quality WHERE campaign_id = :c"),
        {"c": campaign.id},
    ).first()
    if row is None:
        raise PublishingError(
            f"{campaign.partition_key} has no current quality report: materialize article_quality for it first"
        )
    if not row.publishable:
        raise PublishingError(
            f"{campaign.partition_key} is blocked by its quality report: near-duplicate rate "
            f"{row.near_duplicate_rate:.2%} (max {row.max_near_duplicate_rate:.2%}) or articles with markup left; "
            "see the article_quality asset in the UI"
        )


def approve(conn: Connection, key: str, passing_only: bool) -> int:
    """Move the campaign's drafts to approved (with `passing_only`, only those without a blocking issue)."""
    lock_campaign(conn, key)  # not while a run of the campaign's stages is rewriting its articles
    campaign = get_campaign(conn, key)
    if passing_only:
        _require_publishable(conn, campaign)
    return conn.execute(
        sa.text(
            f"""UPDATE generated_articles SET status = 'approved', approved_at = now()
                WHERE campaign_id = :c AND status = 'draft'
                {f"AND {_NO_BLOCKING}" if passing_only else ""}"""
        ),
        {"c": campaign.id, "blocking": list(BLOCKING_ISSUES)},
    ).rowcount


def publish(conn: Connection, key: str) -> tuple[int, int]:
    """Publish the campaign's approved articles; returns (published, held back because markup is left in them)."""
    lock_campaign(conn, key)
    campaign = get_campaign(conn, key)
    _require_publishable(conn, campaign)
    published = conn.execute(
        sa.text(
            f"""UPDATE generated_articles SET {PUBLISHED}
               WHERE campaign_id = :c AND status = 'approved' AND NOT quality_issues ? 'unresolved_markup'"""
        ),
        {"c": campaign.id},
    ).rowcount
    held = conn.execute(
        sa.text("SELECT count(*) FROM generated_articles WHERE campaign_id = :c AND status = 'approved'"),
        {"c": campaign.id},
    ).scalar_one()
    return published, held


def daily_publish_quota(conn: Connection, site_id) -> int | None:
    """The site's drip-feed quota (articles a day), or None: publish as soon as articles pass."""
    return conn.execute(sa.text("SELECT daily_publish_quota FROM sites WHERE id = :s"), {"s": site_id}).scalar_one()


def auto_publish(conn: Connection, campaign: Campaign) -> tuple[int, int]:
    """Publish every draft or approved article without a blocking issue (campaigns with publishing.auto_publish);
    returns (published, queued). On a site with a daily publishing quota the drafts are approved instead (queued), and
    the drip feed (`records.drip_feed.publish_batch`) publishes them a quota a day."""
    params = {"c": campaign.id, "blocking": list(BLOCKING_ISSUES)}
    if daily_publish_quota(conn, campaign.site_id) is not None:
        queued = conn.execute(
            sa.text(
                f"""UPDATE generated_articles SET status = 'approved', approved_at = now()
                   WHERE campaign_id = :c AND status = 'draft' AND {_NO_BLOCKING}"""
            ),
            params,
        ).rowcount
        return 0, queued
    published = conn.execute(
        sa.text(
            f"""UPDATE generated_articles SET {PUBLISHED}, approved_at = coalesce(approved_at, now())
               WHERE campaign_id = :c AND status IN ('draft', 'approved') AND {_NO_BLOCKING}"""
        ),
        params,
    ).rowcount
    return published, 0
