"""The publishing workflow: draft -> approved -> published, gated by the campaign's quality report.

`record_quality` is called by the `article_quality` asset; `approve` and `publish` by `spark articles ...`. The gate: a
campaign publishes only when its latest quality report (dropped whenever its articles change) says its near-duplicate
rate is within the campaign's maximum and no stored article has markup left in it. Articles flagged with an issue are
never published automatically, and an article with markup left is never published at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spark_assets.content.blueprint import Blueprint
from spark_assets.records.registry import Campaign, RegistryError, get_campaign, lock_campaign

if TYPE_CHECKING:  # datasketch pulls in scipy (a second to import): the CLI should not pay for it
    from spark_assets.content.dedupe import NearDuplicateReport

#: issues the quality stage owns (recomputed on every check); the others come from generation
GATE_ISSUES = ("near_duplicate", "unresolved_markup")
_MARKUP = "(g.title || coalesce(g.seo_title, '') || coalesce(g.seo_description, '') || g.content) ~ '[{}]'"


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


def record_quality(
    conn: Connection, campaign: Campaign, blueprint: Blueprint, near: "NearDuplicateReport"
) -> QualityReport:
    """Flag each article with the gate's issues and store the campaign's report (replacing the previous one)."""
    conn.execute(
        sa.text(
            f"""UPDATE generated_articles g SET quality_issues =
                    (g.quality_issues - CAST(:gate AS text[]))
                    || CASE WHEN g.id = ANY(CAST(:near AS uuid[])) THEN '["near_duplicate"]'::jsonb ELSE '[]'::jsonb END
                    || CASE WHEN {_MARKUP} THEN '["unresolved_markup"]'::jsonb ELSE '[]'::jsonb END
                WHERE g.campaign_id = :c"""
        ),
        {"gate": list(GATE_ISSUES), "near": sorted(near.flagged), "c": campaign.id},
    )
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
    """Move the campaign's drafts to approved (with `passing_only`, only those without any quality issue)."""
    lock_campaign(conn, key)  # not while a run of the campaign's stages is rewriting its articles
    campaign = get_campaign(conn, key)
    if passing_only:
        _require_publishable(conn, campaign)
    return conn.execute(
        sa.text(
            f"""UPDATE generated_articles SET status = 'approved', approved_at = now()
                WHERE campaign_id = :c AND status = 'draft'
                {"AND quality_issues = '[]'::jsonb" if passing_only else ""}"""
        ),
        {"c": campaign.id},
    ).rowcount


def publish(conn: Connection, key: str) -> tuple[int, int]:
    """Publish the campaign's approved articles; returns (published, held back because markup is left in them)."""
    lock_campaign(conn, key)
    campaign = get_campaign(conn, key)
    _require_publishable(conn, campaign)
    published = conn.execute(
        sa.text(
            """UPDATE generated_articles SET status = 'published', is_published = true, published_at = now()
               WHERE campaign_id = :c AND status = 'approved' AND NOT quality_issues ? 'unresolved_markup'"""
        ),
        {"c": campaign.id},
    ).rowcount
    held = conn.execute(
        sa.text("SELECT count(*) FROM generated_articles WHERE campaign_id = :c AND status = 'approved'"),
        {"c": campaign.id},
    ).scalar_one()
    return published, held


def auto_publish(conn: Connection, campaign: Campaign) -> int:
    """Publish every draft or approved article without issues (campaigns with publishing.auto_publish)."""
    return conn.execute(
        sa.text(
            """UPDATE generated_articles SET status = 'published', is_published = true,
                   approved_at = coalesce(approved_at, now()), published_at = now()
               WHERE campaign_id = :c AND status IN ('draft', 'approved') AND quality_issues = '[]'::jsonb"""
        ),
        {"c": campaign.id},
    ).rowcount
