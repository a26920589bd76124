"""Tenants and content that is already out: one site's blueprint never changes another site's rows, removing a dimension
never deletes or unlinks a published article, and two runs of one campaign at once do not collide."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
import yaml
from dagster import instance_for_test, materialize

from spark_assets.content.blueprint import parse_blueprint
from spark_assets.definitions import content_factory_assets
from spark_assets.records.publishing import approve, publish
from spark_assets.records.registry import add_site, import_campaign
from spark_resources import migrations

from .conftest import REPO_ROOT

SMALL = REPO_ROOT / "tests" / "fixtures" / "small-campaign.yaml"
SITE_A, SITE_B = "gutters.example", "roofers.example"
KEY_A, KEY_B = f"{SITE_A}/gutter-cleaning", f"{SITE_B}/gutter-cleaning"
CHAIN = ["campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines", "articles", "article_quality"]

#: every row of one site, table by table: what "site A's rows" means in these tests
SITE_ROWS = {
    "sites": "SELECT t.* FROM sites t WHERE t.id = :site",
    "avatar_intelligence": "SELECT t.* FROM avatar_intelligence t WHERE t.site_id = :site",
    "avatar_variants": "SELECT t.* FROM avatar_variants t JOIN avatar_intelligence a ON a.id = t.avatar_id "
    "WHERE a.site_id = :site",
    "campaign_masters": "SELECT t.* FROM campaign_masters t WHERE t.site_id = :site",
    **{
        table: f"SELECT t.* FROM {table} t JOIN campaign_masters c ON c.id = t.campaign_id WHERE c.site_id = :site"
        for table in ("cartesian_patterns", "offer_blocks", "content_fragments", "geo_intelligence",
                      "cartesian_permutations", "headline_inventory", "campaign_quality")
    },
    "link_targets": "SELECT t.* FROM link_targets t WHERE t.site_id = :site",
    "generated_articles": "SELECT t.* FROM generated_articles t WHERE t.site_id = :site",
}


def site_rows(engine, domain: str) -> dict[str, list[str]]:
    """Every row of the site, as text, sorted: byte-identical before and after means nothing of it changed."""
    with engine.connect() as conn:
        site = conn.execute(sa.text("SELECT id FROM sites WHERE domain = :d"), {"d": domain}).scalar_one()
        return {
            table: sorted(conn.execute(sa.text(f"SELECT t::text FROM ({query}) t"), {"site": site}).scalars())
            for table, query in SITE_ROWS.items()
        }


def _blueprint(**changes) -> dict:
    data = yaml.safe_load(SMALL.read_text())
    data.update(changes)
    return data


def _import(engine, domain: str, data: dict) -> None:
    with engine.begin() as conn:
        add_site(conn, domain, domain.split(".")[0].title())
        import_campaign(conn, domain, parse_blueprint(yaml.safe_dump(data, sort_keys=False)))


def _run(instance, database, key: str, names: list[str]):
    results = {}
    for name in names:
        partitioned = name not in ("locations", "avatars")
        result = materialize(
            content_factory_assets, selection=[name], partition_key=key if partitioned else None, instance=instance,
            resources={"database": database},
        )
        results[name] = result.get_asset_materialization_events()[-1].materialization.metadata
    return results


def _publish_all(engine, key: str) -> None:
    with engine.begin() as conn:
        approve(conn, key, passing_only=False)
        published, _ = publish(conn, key)
    assert published > 0


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("campaign", [KEY_A, KEY_B])
        yield instance


def test_another_sites_blueprint_and_runs_leave_a_sites_rows_byte_identical(instance, database, engine):
    """The reported data loss: site B imports the same persona slug with fewer variants and another name, then
    materializes. Site A's personas, permutations, headlines and published articles must not change at all."""
    _import(engine, SITE_A, _blueprint())
    _run(instance, database, KEY_A, ["locations", "avatars", *CHAIN])
    _publish_all(engine, KEY_A)
    before = site_rows(engine, SITE_A)
    assert len(before["generated_articles"]) == 12 and len(before["avatar_variants"]) == 2

    b = _blueprint()
    b["avatars"][0]["name"] = "Busy Homeowner"  # same slug `homeowner`, another persona
    b["avatars"][0]["variants"] = b["avatars"][0]["variants"][:1]  # and one variant fewer
    _import(engine, SITE_B, b)
    _run(instance, database, KEY_B, ["avatars", *CHAIN])
    _publish_all(engine, KEY_B)

    assert site_rows(engine, SITE_A) == before
    with engine.connect() as conn:
        personas = conn.execute(
            sa.text("""SELECT s.domain, a.base_name, count(v.id) FROM avatar_intelligence a JOIN sites s ON s.id = a.site_id
                       JOIN avatar_variants v ON v.avatar_id = a.id GROUP BY 1, 2 ORDER BY 1""")
        ).all()
    assert personas == [(SITE_A, "Homeowner", 2), (SITE_B, "Busy Homeowner", 1)]

    # and site A still regenerates, to exactly what it had
    metadata = _run(instance, database, KEY_A, ["avatars", *CHAIN[:-1]])["articles"]
    assert (metadata["new"].value, metadata["changed"].value, metadata["unchanged"].value) == (0, 0, 12)


def test_dropping_a_variant_keeps_its_published_articles_published_and_linked(instance, database, engine):
    _import(engine, SITE_A, _blueprint())
    _run(instance, database, KEY_A, ["locations", "avatars", *CHAIN])
    _publish_all(engine, KEY_A)
    with engine.connect() as conn:
        retiree = conn.execute(
            sa.text("""SELECT g.id, g.slug FROM generated_articles g JOIN cartesian_permutations p ON p.id = g.permutation_id
                       JOIN avatar_variants v ON v.id = p.variant_id WHERE v.slug = 'retiree' ORDER BY g.slug""")
        ).all()
    assert len(retiree) == 6

    data = _blueprint()
    data["avatars"][0]["variants"] = data["avatars"][0]["variants"][:1]  # the retiree variant goes
    _import(engine, SITE_A, data)
    metadata = _run(instance, database, KEY_A, ["avatars", *CHAIN])["articles"]

    assert metadata["kept_published"].value == 6 and metadata["removed"].value == 0
    with engine.connect() as conn:
        kept = conn.execute(
            sa.text("""SELECT g.id, g.slug, g.is_published, p.status, v.status FROM generated_articles g
                       JOIN cartesian_permutations p ON p.id = g.permutation_id
                       JOIN avatar_variants v ON v.id = p.variant_id WHERE v.slug = 'retiree' ORDER BY g.slug""")
        ).all()
        active = conn.execute(
            sa.text("SELECT count(*) FROM cartesian_permutations WHERE status = 'active'")
        ).scalar_one()
    assert [(r[0], r[1]) for r in kept] == [(r[0], r[1]) for r in retiree]  # same articles, same URLs
    assert {(r[2], r[3], r[4]) for r in kept} == {(True, "retired", "archived")}
    assert active == 6

    # the variant comes back: its permutations are active again and nothing is duplicated
    _import(engine, SITE_A, _blueprint())
    metadata = _run(instance, database, KEY_A, ["avatars", *CHAIN])["articles"]
    assert metadata["kept_published"].value == 0
    with engine.connect() as conn:
        statuses = conn.execute(
            sa.text("SELECT status, count(*) FROM cartesian_permutations GROUP BY status")
        ).all()
        articles = conn.execute(sa.text("SELECT count(*) FROM generated_articles")).scalar_one()
    assert statuses == [("active", 12)] and articles == 12


def test_a_dropped_unpublished_place_is_removed_with_its_drafts(instance, database, engine):
    """What nothing published stands on is deleted, dimension rows included (no archived clutter is left)."""
    _import(engine, SITE_A, _blueprint())
    _run(instance, database, KEY_A, ["locations", "avatars", *CHAIN])
    data = _blueprint()
    data["location"]["limit"] = 2
    _import(engine, SITE_A, data)
    metadata = _run(instance, database, KEY_A, CHAIN)["articles"]
    assert metadata["removed"].value == 4 and metadata["kept_published"].value == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM geo_intelligence")).scalar_one() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM cartesian_permutations")).scalar_one() == 8


def test_the_database_refuses_to_delete_a_permutation_a_published_article_stands_on(instance, database, engine):
    _import(engine, SITE_A, _blueprint())
    _run(instance, database, KEY_A, ["locations", "avatars", *CHAIN])
    _publish_all(engine, KEY_A)
    with engine.connect() as conn:
        permutation, geo = conn.execute(
            sa.text("""SELECT p.id, p.geo_id FROM cartesian_permutations p JOIN generated_articles g
                       ON g.permutation_id = p.id WHERE g.is_published LIMIT 1""")
        ).one()
    for statement, params in (
        ("DELETE FROM cartesian_permutations WHERE id = :id", {"id": permutation}),
        ("DELETE FROM geo_intelligence WHERE id = :id", {"id": geo}),  # no cascade from a dimension any more
    ):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text(statement), params)

    # removing the whole campaign is still possible, and takes its permutations with it
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM campaign_masters"))
        assert conn.execute(sa.text("SELECT count(*) FROM cartesian_permutations")).scalar_one() == 0


#: one `articles` run of campaign KEY_A, as its own process (as Dagster runs are): prints the run's `new` count
_ARTICLES_RUN = f"""
from dagster import instance_for_test, materialize
from spark_assets.definitions import content_factory_assets
from spark_resources.database import DatabaseResource
with instance_for_test() as instance:
    instance.add_dynamic_partitions("campaign", ["{KEY_A}"])
    result = materialize(content_factory_assets, selection=["articles"], partition_key="{KEY_A}", instance=instance,
                         resources={{"database": DatabaseResource()}}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    print("new", result.get_asset_materialization_events()[-1].materialization.metadata["new"].value)
"""


def test_two_first_runs_of_one_campaign_at_once_both_succeed(instance, database, database_url, engine):
    """Without a lock both see no articles, both COPY the same derived ids, and one dies on a unique violation."""
    _import(engine, SITE_A, _blueprint())
    _run(instance, database, KEY_A, ["locations", "avatars", "campaign_blueprint", "campaign_geo",
                                     "cartesian_permutations", "headlines"])
    env = {**os.environ, "DATABASE_URL": database_url}
    # hold every reader of the campaign back (as a slow statement would), so both runs start their work together
    with engine.connect() as holder:
        with holder.begin():
            holder.execute(sa.text("LOCK TABLE campaign_masters IN ACCESS EXCLUSIVE MODE"))
            runs = [
                subprocess.Popen([sys.executable, "-c", _ARTICLES_RUN], cwd=REPO_ROOT, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(2)
            ]
            _wait_for_lock_waiters(engine, 2)
    outputs = [run.communicate(timeout=600) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    news = sorted(int(out.split("new")[-1]) for out, _ in outputs)
    assert news == [0, 12]  # one wrote them, the other found them written and changed nothing
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM generated_articles")).scalar_one() == 12


def _wait_for_lock_waiters(engine, count: int) -> None:
    """Until `count` sessions wait for a lock (a bounded poll, not a timing assertion)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.execute(
                sa.text("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
            ).scalar_one()
        if waiting >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} runs waited for the locked table")


def test_the_migration_gives_each_site_its_own_copy_of_a_shared_persona(empty_database_url):
    """Data from before the fix: two sites' permutations on one global persona. After 0008 each site has its own
    persona and variants, its permutations point at them, and no permutation id changed."""
    engine = sa.create_engine(empty_database_url, poolclass=sa.pool.NullPool)
    known = migrations.discover()
    migrations.upgrade(engine, [m for m in known if m.version < 8])
    with engine.begin() as conn:
        avatar = conn.execute(
            sa.text("INSERT INTO avatar_intelligence (slug, base_name) VALUES ('homeowner', 'Homeowner') RETURNING id")
        ).scalar_one()
        variants = dict(conn.execute(
            sa.text("""INSERT INTO avatar_variants (avatar_id, slug, name) VALUES (:a, 'new-owner', 'New Owner'),
                       (:a, 'retiree', 'Retiree') RETURNING slug, id"""),
            {"a": avatar},
        ).all())
        conn.execute(sa.text("INSERT INTO avatar_intelligence (slug, base_name) VALUES ('unused', 'Nobody')"))
        permutations = {}
        for domain in (SITE_A, SITE_B):
            site = conn.execute(
                sa.text("INSERT INTO sites (name, domain) VALUES (:d, :d) RETURNING id"), {"d": domain}
            ).scalar_one()
            campaign = conn.execute(
                sa.text("""INSERT INTO campaign_masters (site_id, name, slug, headline_spintax_root, location_mode,
                                                         blueprint, blueprint_hash)
                           VALUES (:s, 'C', 'c', 'x', 'city', CAST(:doc AS jsonb), 'h') RETURNING id"""),
                {"s": site, "doc": '{"avatars": [{"slug": "homeowner"}]}'},
            ).scalar_one()
            geo = conn.execute(
                sa.text("""INSERT INTO geo_intelligence (campaign_id, location_key, state, state_code)
                           VALUES (:c, 'austin-tx', 'Texas', 'TX') RETURNING id"""), {"c": campaign}
            ).scalar_one()
            pattern = conn.execute(
                sa.text("""INSERT INTO cartesian_patterns (campaign_id, slug, name, pattern_logic)
                           VALUES (:c, 'guide', 'Guide', 'x') RETURNING id"""), {"c": campaign}
            ).scalar_one()
            for n, variant in enumerate(variants.values()):
                permutations[(domain, n)] = conn.execute(
                    sa.text("""INSERT INTO cartesian_permutations (id, campaign_id, geo_id, avatar_id, variant_id,
                                                                   pattern_id, combination_key, ordinal)
                               VALUES (gen_random_uuid(), :c, :g, :a, :v, :p, :k, :n) RETURNING id"""),
                    {"c": campaign, "g": geo, "a": avatar, "v": variant, "p": pattern, "k": f"k{n}", "n": n},
                ).scalar_one()

    assert [m.version for m in migrations.upgrade(engine)] == [m.version for m in known if m.version >= 8]

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("""SELECT s.domain, p.id, a.site_id = c.site_id AS own_avatar, v.avatar_id = a.id AS own_variant,
                              v.slug FROM cartesian_permutations p
                       JOIN campaign_masters c ON c.id = p.campaign_id JOIN sites s ON s.id = c.site_id
                       JOIN avatar_intelligence a ON a.id = p.avatar_id JOIN avatar_variants v ON v.id = p.variant_id
                       ORDER BY s.domain, v.slug""")
        ).all()
        personas = conn.execute(
            sa.text("""SELECT s.domain, a.slug, count(v.id) FROM avatar_intelligence a JOIN sites s ON s.id = a.site_id
                       LEFT JOIN avatar_variants v ON v.avatar_id = a.id GROUP BY 1, 2 ORDER BY 1""")
        ).all()
    assert personas == [(SITE_A, "homeowner", 2), (SITE_B, "homeowner", 2)]  # the unused persona is gone
    assert {(r.domain, r.own_avatar, r.own_variant) for r in rows} == {(SITE_A, True, True), (SITE_B, True, True)}
    assert {r.id for r in rows} == set(permutations.values())  # no permutation id changed
    engine.dispose()
