"""Dimension assets: what every article is built from.

`campaign_blueprint` unpacks a campaign's imported blueprint into the rows the content stages join against: patterns,
offer blocks, content fragments (FAQ entries included) and link targets. Rows are matched on their natural keys, so a
re-materialization keeps the ids of everything unchanged and removes what the blueprint no longer has, all in one
transaction per campaign: a failure leaves the previous version whole.
"""

import time
from typing import Any

import sqlalchemy as sa
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset
from sqlalchemy.engine import Connection

from spark_assets.content import spintax
from spark_assets.content.blueprint import FAQ_SECTION, OFFER_SECTION, Blueprint
from spark_assets.partitions import campaign_partitions
from spark_assets.registry import Campaign, get_site, load_campaign_blueprint
from spark_resources.database import DatabaseResource

@asset(
    partitions_def=campaign_partitions,
    group_name="dimensions",
    kinds={"postgres"},
    owners=["team:content"],
    backfill_policy=BackfillPolicy.single_run(),
    description=(
        "The campaign's blueprint unpacked into cartesian_patterns, offer_blocks, content_fragments and link_targets."
    ),
)
def campaign_blueprint(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    started = time.perf_counter()
    summaries = []
    for key in context.partition_keys:
        with database.begin() as conn:
            campaign, blueprint = load_campaign_blueprint(conn, key)
            changes = unpack_blueprint(conn, campaign, blueprint)
        context.log.info(f"{key}: {changes}")
        summaries.append((campaign, blueprint, changes))
    return MaterializeResult(metadata=_blueprint_metadata(summaries, time.perf_counter() - started))

def unpack_blueprint(conn: Connection, campaign: Campaign, blueprint: Blueprint) -> dict[str, int]:
    """Make the campaign's dimension rows equal to the blueprint; returns how many rows each table now holds."""
    site = get_site(conn, campaign.domain)
    patterns = [
        {"slug": p.slug, "name": p.name, "logic": p.logic, "sort": i} for i, p in enumerate(blueprint.patterns)
    ]
    offers = [
        {"slug": o.slug, "name": o.name, "html": o.html, "sort": i} for i, o in enumerate(blueprint.offer_blocks)
    ]
    fragments = [
        {"type": pillar, "position": i, "heading": None, "text": text}
        for pillar, texts in blueprint.fragments.items()
        for i, text in enumerate(texts)
    ] + [
        {"type": FAQ_SECTION, "position": i, "heading": item.question, "text": item.answer}
        for i, item in enumerate(blueprint.faq)
    ]
    links = [
        {"url": link.url, "anchor": link.anchor, "keyword": link.keyword, "sort": i}
        for i, link in enumerate(blueprint.link_targets)
    ]
    ids = {"campaign_id": campaign.id, "site_id": site.id}
    _sync(
        conn,
        rows=patterns,
        ids=ids,
        upsert="""INSERT INTO cartesian_patterns (campaign_id, slug, name, pattern_logic, sort)
                  VALUES (:campaign_id, :slug, :name, :logic, :sort)
                  ON CONFLICT (campaign_id, slug) DO UPDATE SET name = EXCLUDED.name,
                      pattern_logic = EXCLUDED.pattern_logic, sort = EXCLUDED.sort
                  WHERE (cartesian_patterns.name, cartesian_patterns.pattern_logic, cartesian_patterns.sort)
                        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.pattern_logic, EXCLUDED.sort)""",
        prune="DELETE FROM cartesian_patterns WHERE campaign_id = :campaign_id AND NOT (slug = ANY(:keys))",
        key=lambda r: r["slug"],
    )
    _sync(
        conn,
        rows=offers,
        ids=ids,
        upsert="""INSERT INTO offer_blocks (campaign_id, slug, name, html_content, sort)
                  VALUES (:campaign_id, :slug, :name, :html, :sort)
                  ON CONFLICT (campaign_id, slug) DO UPDATE SET name = EXCLUDED.name,
                      html_content = EXCLUDED.html_content, sort = EXCLUDED.sort
                  WHERE (offer_blocks.name, offer_blocks.html_content, offer_blocks.sort)
                        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.html_content, EXCLUDED.sort)""",
        prune="DELETE FROM offer_blocks WHERE campaign_id = :campaign_id AND NOT (slug = ANY(:keys))",
        key=lambda r: r["slug"],
    )
    _sync(
        conn,
        rows=fragments,
        ids=ids,
        upsert="""INSERT INTO content_fragments (campaign_id, fragment_type, position, heading, fragment_text)
                  VALUES (:campaign_id, :type, :position, :heading, :text)
                  ON CONFLICT (campaign_id, fragment_type, position) DO UPDATE SET heading = EXCLUDED.heading,
                      fragment_text = EXCLUDED.fragment_text
                  WHERE (content_fragments.heading, content_fragments.fragment_text)
                        IS DISTINCT FROM (EXCLUDED.heading, EXCLUDED.fragment_text)""",
        prune="""DELETE FROM content_fragments WHERE campaign_id = :campaign_id
                 AND NOT (fragment_type || ':' || position = ANY(:keys))""",
        key=lambda r: f"{r['type']}:{r['position']}",
    )
    _sync(
        conn,
        rows=links,
        ids=ids,
        upsert="""INSERT INTO link_targets (site_id, campaign_id, target_url, anchor_text, keyword_focus, sort)
                  VALUES (:site_id, :campaign_id, :url, :anchor, :keyword, :sort)
                  ON CONFLICT (site_id, coalesce(campaign_id, '00000000-0000-0000-0000-000000000000'::uuid), target_url)
                  DO UPDATE SET anchor_text = EXCLUDED.anchor_text, keyword_focus = EXCLUDED.keyword_focus,
                      sort = EXCLUDED.sort
                  WHERE (link_targets.anchor_text, link_targets.keyword_focus, link_targets.sort)
                        IS DISTINCT FROM (EXCLUDED.anchor_text, EXCLUDED.keyword_focus, EXCLUDED.sort)""",
        prune="DELETE FROM link_targets WHERE campaign_id = :campaign_id AND NOT (target_url = ANY(:keys))",
        key=lambda r: r["url"],
    )
    return {
        "patterns": len(patterns),
        "offer_blocks": len(offers),
        "fragments": len(fragments) - len(blueprint.faq),
        "faq": len(blueprint.faq),
        "link_targets": len(links),
    }

def _sync(conn: Connection, *, rows: list[dict[str, Any]], ids: dict[str, Any], upsert: str, prune: str, key) -> None:
    """Upsert `rows` on their natural key, then delete the campaign's rows whose key is no longer present."""
    if rows:
        conn.execute(sa.text(upsert), [{**ids, **row} for row in rows])
    conn.execute(sa.text(prune), {**ids, "keys": [key(row) for row in rows]})

def _blueprint_metadata(summaries: list[tuple[Campaign, Blueprint, dict[str, int]]], seconds: float) -> dict:
    campaign, blueprint, changes = summaries[-1]
    headline_variations = spintax.count_variations(spintax.parse(blueprint.headline_spintax_root))
    per_geo = sum(len(a.variants) for a in blueprint.avatars) * len(blueprint.patterns)
    outline_rows = []
    for section in blueprint.outline:
        if section == OFFER_SECTION:
            count, sample = len(blueprint.offer_blocks), blueprint.offer_blocks[0].name
        elif section == FAQ_SECTION:
            count, sample = len(blueprint.faq), blueprint.faq[0].question
        else:
            count, sample = len(blueprint.fragments[section]), blueprint.fragments[section][0]
        sample = " ".join(sample.split())
        sample = (sample[:77] + "...") if len(sample) > 80 else sample
        outline_rows.append(f"| {section} | {count} | {sample.replace('|', '&#124;')} |")
    return {
        "campaigns": len(summaries),
        "campaign": campaign.partition_key,
        "blueprint_hash": blueprint.content_hash()[:12],
        "location_mode": blueprint.location.mode,
        **{name: MetadataValue.int(count) for name, count in changes.items()},
        "avatars": len(blueprint.avatars),
        "permutations_per_geo_target": per_geo,
        "headline_variations": MetadataValue.text(f"{headline_variations:,}"),
        "outline": MetadataValue.md("| section | alternatives | first one |\n|---|---|---|\n" + "\n".join(outline_rows)),
        "seconds": round(seconds, 3),
    }
