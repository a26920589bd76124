"""The content factory on a real PostgreSQL, as an operator uses it: materialize a campaign's chain, read the rows,
re-run, change the blueprint, break things on purpose, approve and publish."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from dagster import DagsterInstance, instance_for_test, materialize

from spark_assets.assets import generation
from spark_assets.content.blueprint import parse_blueprint
from spark_assets.definitions import content_factory_assets
from spark_assets.ops.cli import main
from spark_assets.records.publishing import BLOCKING_ISSUES
from spark_assets.records.registry import add_site, import_campaign

from .conftest import REPO_ROOT, database_snapshot

SMALL = REPO_ROOT / "tests" / "fixtures" / "small-campaign.yaml"
GOLDEN = REPO_ROOT / "tests" / "snapshots" / "small_campaign_articles.json"
KEY = "gutters.example/gutter-cleaning"
CHAIN = ["campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines", "articles", "article_quality"]
FIXED_DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _import(engine, data: dict | None = None) -> None:
    data = data if data is not None else yaml.safe_load(SMALL.read_text())
    with engine.begin() as conn:
        add_site(conn, "gutters.example", "Gutter Pros")
        import_campaign(conn, "gutters.example", parse_blueprint(yaml.safe_dump(data, sort_keys=False)))
        # articles are dated by their campaign's creation: fix it so the golden output does not depend on today
        conn.execute(sa.text("UPDATE campaign_masters SET date_created = :d"), {"d": FIXED_DAY})


def _run(instance: DagsterInstance, database, names: list[str], raise_on_error: bool = True):
    results = []
    for name in names:
        partitioned = name not in ("locations", "avatars")
        results.append(
            materialize(
                content_factory_assets, selection=[name], partition_key=KEY if partitioned else None, instance=instance,
                resources={"database": database}, raise_on_error=raise_on_error,
            )
        )
    return results


@pytest.fixture(autouse=True)
def fixed_generation_day(monkeypatch):
    """{{year}} is the generation year: fix the day so the golden output does not depend on today."""
    monkeypatch.setattr(generation, "generation_date", lambda: FIXED_DAY.date())


@pytest.fixture
def factory(database, engine):
    """A database with locations loaded, the small campaign imported, and a Dagster instance with its partition."""
    _import(engine)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("campaign", [KEY])
        _run(instance, database, ["locations", "avatars"])
        yield instance


def _articles(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                """SELECT id::text, slug, title, seo_title, seo_description, content, word_count, schema_json, status,
                          content_hash, date_created, is_published, quality_issues, provenance
                   FROM generated_articles ORDER BY slug"""
            )
        ).mappings()
        return [dict(r) for r in rows]


GOLDEN_FIELDS = ("id", "slug", "title", "seo_title", "seo_description", "content", "word_count", "schema_json")


def test_the_small_campaign_gives_exactly_the_golden_articles(factory, database, engine):
    """Exact output for a fixed blueprint, dataset and date. After an intended change to generation:
    SPARK_UPDATE_SNAPSHOTS=1 pytest -k golden, then review the diff of the JSON file."""
    results = _run(factory, database, CHAIN)
    assert all(r.success for r in results)
    current = [{f: a[f] for f in GOLDEN_FIELDS} for a in _articles(engine)]
    if __import__("os").environ.get("SPARK_UPDATE_SNAPSHOTS") == "1":
        GOLDEN.write_text(json.dumps(current, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    assert current == json.loads(GOLDEN.read_text())
    assert len(current) == 12  # 3 cities x 1 avatar x 2 variants x 2 patterns


def test_every_article_is_complete_and_within_limits(factory, database, engine):
    _run(factory, database, CHAIN)
    articles = _articles(engine)
    slugs = [a["slug"] for a in articles]
    assert len(set(slugs)) == len(slugs)
    for a in articles:
        assert a["status"] == "draft" and not a["is_published"]
        assert len(a["seo_title"]) <= 60 and len(a["seo_description"]) <= 160
        assert "{" not in a["content"] and "}" not in a["content"] and "{{" not in a["title"]
        types = [node["@type"] for node in a["schema_json"]["@graph"]]
        assert types == ["Article", "BreadcrumbList", "FAQPage"]
        assert '<nav class="related">' in a["content"] and '<a href="/services/gutter-cleaning">' in a["content"]
        assert '<nav class="nearby">' in a["content"]  # sibling geo pages
        sibling_links = [s for s in slugs if f'href="/{s}/"' in a["content"]]
        assert sibling_links, "links to sibling geo pages point at real article slugs"
        provenance = a["provenance"]
        assert provenance["blueprint_hash"] and provenance["permutation_id"]
        assert all(f["fragment_id"] for f in provenance["fragments"])
        assert 100 * 0.8 <= a["word_count"] <= 100 * 1.25 or "word_count" in " ".join(a["quality_issues"])


def test_provenance_traces_each_sentence_to_its_fragment(factory, database, engine):
    _run(factory, database, CHAIN)
    with engine.connect() as conn:
        fragments = {str(r.id): (r.fragment_type, r.fragment_text) for r in conn.execute(sa.text("SELECT * FROM content_fragments"))}
    for article in _articles(engine):
        for used in article["provenance"]["fragments"]:
            pillar, text = fragments[used["fragment_id"]]
            assert pillar == used["section"]
            assert f'<section class="{pillar}">' in article["content"]


def test_two_runs_in_two_databases_give_identical_rows(factory, database, engine, admin_url, migrated_template):
    from spark_resources.database import DatabaseResource

    from .conftest import _create_database, _drop_database

    _run(factory, database, CHAIN)
    first = [{f: a[f] for f in (*GOLDEN_FIELDS, "content_hash")} for a in _articles(engine)]

    other_url = _create_database(admin_url, template=migrated_template)
    try:
        other_engine = sa.create_engine(other_url, poolclass=sa.pool.NullPool)
        _import(other_engine)
        with instance_for_test() as instance:
            instance.add_dynamic_partitions("campaign", [KEY])
            _run(instance, DatabaseResource(url=other_url), ["locations", "avatars", *CHAIN])
        second = [{f: a[f] for f in (*GOLDEN_FIELDS, "content_hash")} for a in _articles(other_engine)]
        other_engine.dispose()
    finally:
        _drop_database(admin_url, other_url)
    assert first == second


def test_a_rerun_keeps_ids_dates_and_publish_state(factory, database, engine):
    _run(factory, database, CHAIN)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE generated_articles SET status = 'approved', approved_at = now() WHERE slug LIKE 'dallas%'"))
    before = {a["id"]: a for a in _articles(engine)}
    with engine.connect() as conn:
        permutations = conn.execute(sa.text("SELECT id, ordinal FROM cartesian_permutations ORDER BY id")).all()

    results = _run(factory, database, CHAIN)

    after = {a["id"]: a for a in _articles(engine)}
    assert after.keys() == before.keys()
    for article_id, article in after.items():
        assert article["date_created"] == before[article_id]["date_created"]
        assert article["status"] == before[article_id]["status"]
        assert article["content_hash"] == before[article_id]["content_hash"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, ordinal FROM cartesian_permutations ORDER BY id")).all() == permutations
    metadata = results[4].get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["new"].value, metadata["changed"].value, metadata["unchanged"].value) == (0, 0, 12)


def test_changing_one_fragment_changes_only_the_articles_that_use_it(factory, database, engine):
    _run(factory, database, CHAIN)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE generated_articles SET status = 'approved', approved_at = now()"))
    before = {a["id"]: a for a in _articles(engine)}

    data = yaml.safe_load(SMALL.read_text())
    data["fragments"]["care"][1] = "Use a sturdy ladder and gloves. Call a pro in {{city}} if the roof is steep."
    _import(engine, data)
    _run(factory, database, CHAIN)

    after = {a["id"]: a for a in _articles(engine)}
    uses = {
        article_id: any(f["section"] == "care" and f["position"] == 1 for f in a["provenance"]["fragments"])
        for article_id, a in before.items()
    }
    assert any(uses.values()) and not all(uses.values())
    for article_id, article in after.items():
        if uses[article_id]:
            assert article["content_hash"] != before[article_id]["content_hash"]
            assert "Call a pro in" in article["content"]
            assert article["status"] == "draft", "changed content must be approved again"
        else:
            assert article["content_hash"] == before[article_id]["content_hash"]
            assert article["status"] == "approved"


def test_a_failure_halfway_through_the_articles_leaves_the_previous_version(factory, database, engine, monkeypatch):
    _run(factory, database, CHAIN)
    good = database_snapshot(engine)
    real = generation.ArticleAssembler.assemble
    calls = []

    def failing(self, perm):
        calls.append(perm.id)
        if len(calls) == 6:
            raise RuntimeError("injected failure halfway")
        return real(self, perm)

    monkeypatch.setattr(generation.ArticleAssembler, "assemble", failing)
    data = yaml.safe_load(SMALL.read_text())
    data["fragments"]["intro"][0] = "A different intro for {{city}}, where {{pain_point}} is common."
    _import(engine, data)
    after_import = database_snapshot(engine)
    (result,) = _run(factory, database, ["articles"], raise_on_error=False)

    assert not result.success
    assert "injected failure halfway" in result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert len(calls) == 6
    assert database_snapshot(engine) == after_import
    assert {t for t in good if good[t] != after_import[t]} == {"campaign_masters"}


def test_colliding_slugs_fail_the_run_with_a_clear_error_and_write_nothing(factory, database, engine):
    data = yaml.safe_load(SMALL.read_text())
    # pattern "guide-homeowner" x avatar "homeowner" and pattern "guide" x avatar "homeowner-homeowner" both slug to
    # "<city>-guide-homeowner-homeowner-<variant>": valid names each, one URL between them
    data["patterns"][1]["slug"] = "guide-homeowner"
    # a copy, not shared lists: PyYAML would dump those as an anchor and aliases, which blueprints refuse
    twin = json.loads(json.dumps(data["avatars"][0]))
    data["avatars"].append({**twin, "slug": "homeowner-homeowner", "name": "Homeowner Two"})
    _import(engine, data)
    _run(factory, database, ["avatars", "campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines"])
    before = database_snapshot(engine)

    (result,) = _run(factory, database, ["articles"], raise_on_error=False)

    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "would be used by both" in message and "make the pattern, avatar and variant slugs distinct" in message
    assert database_snapshot(engine) == before


def test_the_quality_gate_catches_planted_markup_and_near_copies(factory, database, engine):
    _run(factory, database, CHAIN)
    with engine.connect() as conn:
        quality = conn.execute(sa.text("SELECT publishable FROM campaign_quality")).scalar_one()
    assert quality is True

    with engine.begin() as conn:  # a token left in one article, and four articles made copies of a fifth
        conn.execute(sa.text("UPDATE generated_articles SET title = title || ' {{city}}' WHERE slug LIKE 'houston%guide%new-owner'"))
        source = conn.execute(sa.text("SELECT content FROM generated_articles ORDER BY slug LIMIT 1")).scalar_one()
        conn.execute(
            sa.text("UPDATE generated_articles SET content = :c WHERE id IN (SELECT id FROM generated_articles ORDER BY slug DESC LIMIT 6)"),
            {"c": source},
        )
    (result,) = _run(factory, database, ["article_quality"])

    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["near_duplicate_rate_within_threshold"].passed
    assert not checks["stored_articles_are_clean"].passed
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT publishable FROM campaign_quality")).scalar_one() is False
        flagged = conn.execute(
            sa.text("SELECT slug FROM generated_articles WHERE quality_issues ? 'unresolved_markup'")
        ).scalars().all()
    assert len(flagged) == 1 and flagged[0].startswith("houston")

    result = _cli(database, ["articles", "publish", "--campaign", KEY])
    assert result.exit_code == 1 and "is blocked by its quality report" in result.output


def _cli(database, args: list[str]):
    import os

    os.environ["DATABASE_URL"] = database.url
    try:
        return CliRunner().invoke(main, args)
    finally:
        del os.environ["DATABASE_URL"]


def test_approve_and_publish_move_articles_through_the_workflow(factory, database, engine):
    _run(factory, database, CHAIN[:-1])  # articles without a quality report yet
    refused = _cli(database, ["articles", "publish", "--campaign", KEY])
    assert refused.exit_code == 1 and "materialize article_quality" in refused.output

    _run(factory, database, ["article_quality"])
    approved = _cli(database, ["articles", "approve", "--campaign", KEY, "--passing"])
    assert approved.exit_code == 0, approved.output
    with engine.connect() as conn:
        passing = conn.execute(
            sa.text("SELECT count(*) FROM generated_articles WHERE NOT quality_issues ?| CAST(:b AS text[])"),
            {"b": list(BLOCKING_ISSUES)},
        ).scalar_one()
    assert f"approved {passing} article(s)" in approved.output

    published = _cli(database, ["articles", "publish", "--campaign", KEY])
    assert published.exit_code == 0 and f"published {passing} article(s)" in published.output
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, is_published, published_at IS NOT NULL FROM generated_articles")).all()
    assert sum(1 for status, flag, dated in rows if status == "published" and flag and dated) == passing

    listing = _cli(database, ["articles", "list", "--campaign", KEY])
    assert f"published: {passing}" in listing.output


def test_auto_publish_publishes_what_passes(database, engine):
    data = yaml.safe_load(SMALL.read_text())
    data["publishing"]["auto_publish"] = True
    _import(engine, data)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("campaign", [KEY])
        results = _run(instance, database, ["locations", "avatars", *CHAIN])
    metadata = results[-1].get_asset_materialization_events()[0].materialization.metadata
    with engine.connect() as conn:
        published = conn.execute(sa.text("SELECT count(*) FROM generated_articles WHERE is_published")).scalar_one()
    assert published == metadata["auto_published"].value > 0


def test_the_gate_catches_what_an_editor_catches_and_approve_passing_leaves_it_out(factory, database, engine):
    _run(factory, database, CHAIN)
    with engine.begin() as conn:
        slugs = conn.execute(sa.text("SELECT slug FROM generated_articles ORDER BY slug")).scalars().all()
        planted = {
            # literal text a fragment could hold: "a" before a vowel
            "article_agreement": ("UPDATE generated_articles SET content = replace(content, '</h1>', "
                                  "'</h1><p>Visit a Office near you.</p>') WHERE slug = :s"),
            # what generation stores when no title variation fits in 60 characters (the column holds no more)
            "seo_title_too_long": "UPDATE generated_articles SET seo_title = NULL WHERE slug = :s",
            "duplicate_h1": ("UPDATE generated_articles SET title = (SELECT title FROM generated_articles "
                             f"WHERE slug = '{slugs[0]}') WHERE slug = :s"),
            "thin_content": "UPDATE generated_articles SET content = '<h1>Gutters</h1><p>Call us.</p>' WHERE slug = :s",
            # a link to a page the site will not have (no article, hub, page or declared target at that path)
            "broken_link": ("UPDATE generated_articles SET content = replace(content, '</h1>', "
                            "'</h1><p><a href=\"/gutter-cleaning-in-nowhere/\">more</a></p>') WHERE slug = :s"),
        }
        for (issue, statement), slug in zip(planted.items(), slugs[-5:]):
            conn.execute(sa.text(statement), {"s": slug})
    (result,) = _run(factory, database, ["article_quality"])

    metadata = result.asset_materializations_for_node("article_quality")[0].metadata
    with engine.connect() as conn:
        issues = dict(conn.execute(sa.text("SELECT slug, quality_issues FROM generated_articles")).all())
    for (issue, _), slug in zip(planted.items(), slugs[-5:]):
        assert issue in issues[slug], (issue, issues[slug])
        assert metadata[f"issue_{issue}"].value >= 1
        assert slug in metadata["issues"].value  # the worst examples name the article
    assert "duplicate_h1" not in issues[slugs[0]]  # the first article keeps its H1; the copy is flagged
    assert metadata["articles_blocked"].value >= 5
    # the generated links themselves all lead to pages the site will have
    assert [slug for slug in slugs[:-5] if "broken_link" in issues[slug]] == []

    approved = _cli(database, ["articles", "approve", "--campaign", KEY, "--passing"])
    assert approved.exit_code == 0, approved.output
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT slug, status FROM generated_articles")).all())
    assert all(statuses[slug] == "draft" for slug in slugs[-5:])
    # warnings do not block: exactly the articles free of blocking issues are approved
    free = {slug for slug in statuses if not set(issues[slug]) & set(BLOCKING_ISSUES)}
    assert free and {slug for slug, status in statuses.items() if status == "approved"} == free


def test_unknown_issue_names_are_counted_under_their_own_names(factory, database, engine):
    """Issues other stages add (visible_escaped_markup, ...) flow through the gate's counts without it knowing them."""
    _run(factory, database, CHAIN)
    with engine.begin() as conn:
        conn.execute(sa.text(
            """UPDATE generated_articles SET quality_issues = quality_issues || '["article_disagreement_x"]'::jsonb
               WHERE id = (SELECT id FROM generated_articles ORDER BY slug LIMIT 1)"""
        ))
    (result,) = _run(factory, database, ["article_quality"])
    metadata = result.asset_materializations_for_node("article_quality")[0].metadata
    assert metadata["issue_article_disagreement_x"].value == 1
    assert "article_disagreement_x | warning | 1" in metadata["issues"].value


def test_the_same_text_in_another_campaign_or_on_another_site_is_a_blocking_copy(factory, database, engine):
    _run(factory, database, CHAIN)
    data = yaml.safe_load(SMALL.read_text())
    data.update(name="Gutter Copies", slug="gutter-copies")
    with engine.begin() as conn:
        slugs = conn.execute(sa.text("SELECT slug FROM generated_articles ORDER BY slug")).scalars().all()
        add_site(conn, "copycat.example", "Copycat")
        elsewhere, _ = import_campaign(conn, "copycat.example", parse_blueprint(yaml.safe_dump(data, sort_keys=False)))
        sibling, _ = import_campaign(conn, "gutters.example", parse_blueprint(yaml.safe_dump(data, sort_keys=False)))
        for target, slug in ((elsewhere, slugs[0]), (sibling, slugs[1])):  # one article's text, published twice
            conn.execute(
                sa.text("""INSERT INTO generated_articles (site_id, campaign_id, title, content, slug)
                           SELECT :site, :campaign, 'Copy', content, 'copy' FROM generated_articles WHERE slug = :s"""),
                {"site": target.site_id, "campaign": target.id, "s": slug},
            )
    (result,) = _run(factory, database, ["article_quality"])

    with engine.connect() as conn:
        issues = dict(conn.execute(sa.text(
            "SELECT g.slug, g.quality_issues FROM generated_articles g JOIN campaign_masters m ON m.id = g.campaign_id "
            "WHERE m.slug = 'gutter-cleaning'"
        )).all())
    assert "near_duplicate_across_sites" in issues[slugs[0]] and "near_duplicate_in_site" not in issues[slugs[0]]
    assert "near_duplicate_in_site" in issues[slugs[1]] and "near_duplicate_across_sites" not in issues[slugs[1]]
    assert not any("near_duplicate_across_sites" in v for s, v in issues.items() if s != slugs[0])
    metadata = result.asset_materializations_for_node("article_quality")[0].metadata
    assert metadata["issue_near_duplicate_across_sites"].value == 1 and metadata["issue_near_duplicate_in_site"].value == 1
