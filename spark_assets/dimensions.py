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
        {"slug": p.slug, "name": p.name, "pattern_logic": p.logic, "sort": i} for i, p in enumerate(blueprint.patterns)
    ]
    offers = [
        {"slug": o.slug, "name": o.name, "html_content": o.html, "sort": i} for i, o in enumerate(blueprint.offer_blocks)
    ]
    fragments = [
        {"fragment_type": pillar, "position": i, "heading": None, "fragment_text": text}
        for pillar, texts in blueprint.fragments.items()
        for i, text in enumerate(texts)
    ] + [
        {"fragment_type": FAQ_SECTION, "position": i, "heading": item.question, "fragment_text": item.answer}
        for i, item in enumerate(blueprint.faq)
    ]
    links = [
        {"target_url": link.url, "anchor_text": link.anchor, "keyword_focus": link.keyword, "sort": i}
        for i, link in enumerate(blueprint.link_targets)
    ]
    scope = {"campaign_id": campaign.id}
    _sync(conn, "cartesian_patterns", scope, ["slug"], patterns)
    _sync(conn, "offer_blocks", scope, ["slug"], offers)
    _sync(conn, "content_fragments", scope, ["fragment_type", "position"], fragments)
    _sync(
        conn,
        "link_targets",
        scope,
        ["target_url"],
        [{"site_id": site.id, **link} for link in links],
        # link_targets may also hold site-wide links (campaign_id NULL); its unique index is on an expression
        conflict_target="site_id, coalesce(campaign_id, '00000000-0000-0000-0000-000000000000'::uuid), target_url",
    )
    return {
        "patterns": len(patterns),
        "offer_blocks": len(offers),
        "fragments": len(fragments) - len(blueprint.faq),
        "faq": len(blueprint.faq),
        "link_targets": len(links),
    }


def _sync(
    conn: Connection,
    table: str,
    scope: dict[str, Any],
    key_columns: list[str],
    rows: list[dict[str, Any]],
    conflict_target: str | None = None,
) -> None:
    """Make `table`'s rows within `scope` equal to `rows`, matched on scope + key columns: insert the new, update the
    changed (unchanged rows are not touched, so their ids and date_updated stay), delete the ones no longer present."""
    scope_columns = list(scope)
    if rows:
        columns = scope_columns + list(rows[0])
        values = [c for c in rows[0] if c not in key_columns and c not in scope]
        target = conflict_target or ", ".join(scope_columns + key_columns)
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
        changed = f"({', '.join(f'{table}.{c}' for c in values)}) IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in values)})"
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)}) "
                f"ON CONFLICT ({target}) DO UPDATE SET {assignments} WHERE {changed}"
            ),
            [{**scope, **row} for row in rows],
        )
    # what stays: the keys of `rows`, each joined with the unit separator (a character no key contains)
    where_scope = " AND ".join(f"{c} = :{c}" for c in scope_columns)
    key_expr = "concat_ws(chr(31), " + ", ".join(f"{c}::text" for c in key_columns) + ")"
    keep = ["\x1f".join(str(row[c]) for c in key_columns) for row in rows]
    conn.execute(
        sa.text(f"DELETE FROM {table} WHERE {where_scope} AND NOT ({key_expr} = ANY(CAST(:keep AS text[])))"),
        {**scope, "keep": keep},
    )


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
