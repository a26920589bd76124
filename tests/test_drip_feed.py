"""Drip-feed publishing: the pure order (`content.drip`), and on a real PostgreSQL the quota, auto-publishing that only
approves, the daily schedule's run requests, `published_batch` publishing exactly the quota in the documented order once
a day, the CLI's override and its view of the queue; another site's articles are never touched."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from dagster import AssetKey, build_schedule_context, instance_for_test, materialize
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_assets.assets.drip_feed import DRIP_DAY_TAG, published_batch
from spark_assets.automation.schedules import drip_feed_schedule
from spark_assets.content.blueprint import parse_blueprint
from spark_assets.content.drip import QueuedArticle, drip_order, next_batch
from spark_assets.definitions import content_factory_assets, defs
from spark_assets.ops.cli import main
from spark_assets.records.registry import add_site, import_campaign

from .conftest import REPO_ROOT

SMALL = REPO_ROOT / "tests" / "fixtures" / "small-campaign.yaml"
SITE, OTHER = "gutters.example", "other-gutters.example"
CHAIN = ["campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines", "articles", "article_quality"]


# -- the pure order ------------------------------------------------------------------------------------------------


@st.composite
def queues(draw) -> list[QueuedArticle]:
    """A queue over up to 8 places (each with one size), slugs unique, creation orders often tied."""
    sizes = draw(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 3), min_size=1))
    slugs = draw(st.lists(st.text("xyz", min_size=1, max_size=4), unique=True, max_size=30))
    places = [draw(st.sampled_from(sorted(sizes))) for _ in slugs]
    return [QueuedArticle(slug, place, sizes[place], draw(st.integers(0, 3))) for slug, place in zip(slugs, places)]


def _depths(order: list[QueuedArticle]) -> list[int]:
    """For each article, how many of its place's articles come before it."""
    seen: dict[str, int] = {}
    depths = []
    for article in order:
        depths.append(seen.get(article.place, 0))
        seen[article.place] = depths[-1] + 1
    return depths


@given(queues(), st.integers(0, 40))
def test_the_batch_holds_exactly_min_of_quota_and_queue(queue, quota):
    batch = next_batch(queue, quota)
    assert len(batch) == min(quota, len(queue))
    assert len({a.slug for a in batch}) == len(batch) and all(a in queue for a in batch)


@given(queues())
def test_no_place_gets_a_second_article_before_every_place_has_its_first(queue):
    order = drip_order(queue)
    remaining = {}
    for article in queue:
        remaining[article.place] = remaining.get(article.place, 0) + 1
    depths = _depths(order)
    # breadth first: depths never go down, and a place appears at depth d only while every place with more than d
    # articles has had its d-th
    assert depths == sorted(depths)
    for depth in set(depths):
        round_places = [a.place for a, d in zip(order, depths) if d == depth]
        assert set(round_places) == {p for p, n in remaining.items() if n > depth}
        sizes = [next(a.place_size for a in queue if a.place == p) for p in round_places]
        assert [(-s, p) for s, p in zip(sizes, round_places)] == sorted((-s, p) for s, p in zip(sizes, round_places))


@given(queues(), st.randoms(use_true_random=False))
def test_the_order_is_stable_whatever_order_the_queue_comes_in(queue, rng):
    shuffled = list(queue)
    rng.shuffle(shuffled)
    assert drip_order(shuffled) == drip_order(queue)
    for place in {a.place for a in queue}:  # oldest first within a place, ties by slug
        own = [a for a in drip_order(queue) if a.place == place]
        assert own == sorted(own, key=lambda a: (a.created, a.slug))


@settings(max_examples=50)
@given(queues(), st.integers(0, 10), st.integers(0, 10))
def test_two_days_publish_what_one_day_with_both_quotas_would(queue, first, second):
    """Places count their published articles: day two continues the rounds of day one, never restarts them."""
    day_one = next_batch(queue, first)
    published: dict[str, int] = {}
    for article in day_one:
        published[article.place] = published.get(article.place, 0) + 1
    left = [a for a in queue if a not in day_one]
    assert day_one + next_batch(left, second, published) == next_batch(queue, first + second)


def test_the_documented_order_on_an_example():
    queue = [
        QueuedArticle("dallas-2", "dallas-tx", 1_300_000, 1),
        QueuedArticle("dallas-1", "dallas-tx", 1_300_000, 0),
        QueuedArticle("houston-b", "houston-tx", 2_300_000, 0),
        QueuedArticle("houston-a", "houston-tx", 2_300_000, 0),
        QueuedArticle("austin-1", "austin-tx", 960_000, 5),
        QueuedArticle("plano-1", "plano-tx", 960_000, 0),
    ]
    assert [a.slug for a in drip_order(queue)] == [
        "houston-a", "dallas-1", "austin-1", "plano-1",  # round one: largest first, equal sizes by key
        "houston-b", "dallas-2",  # round two
    ]
    # austin already has a page: plano gets its first before austin its second
    assert [a.slug for a in next_batch(queue, 3, {"austin-tx": 1, "houston-tx": 1, "dallas-tx": 1})] == [
        "plano-1", "houston-a", "dallas-1"]
    with pytest.raises(ValueError):
        next_batch(queue, -1)


# -- on the database -----------------------------------------------------------------------------------------------


@pytest.fixture
def spark(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def _import(engine, domain: str) -> str:
    data = yaml.safe_load(SMALL.read_text())
    data["publishing"]["auto_publish"] = True
    with engine.begin() as conn:
        add_site(conn, domain, domain.split(".")[0])
        campaign, _ = import_campaign(conn, domain, parse_blueprint(yaml.safe_dump(data, sort_keys=False)))
    return campaign.partition_key


def _articles(engine, domain: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("""SELECT g.slug, g.status, g.published_at, g.approved_at, g.date_created, geo.location_key,
                              geo.population
                       FROM generated_articles g JOIN sites s ON s.id = g.site_id
                       LEFT JOIN cartesian_permutations p ON p.id = g.permutation_id
                       LEFT JOIN geo_intelligence geo ON geo.id = p.geo_id
                       WHERE s.domain = :d ORDER BY g.slug"""),
            {"d": domain},
        ).all()


def _expected_order(rows) -> list[str]:
    """The documented order, computed the plain way: round-robin over places by population (then key), oldest first
    within a place (then slug)."""
    places: dict[str, list] = {}
    for row in rows:
        places.setdefault(row.location_key, []).append(row)
    ranked = sorted(places, key=lambda p: (-max(r.population for r in places[p]), p))
    lists = [sorted(places[p], key=lambda r: (r.date_created, r.slug)) for p in ranked]
    order = []
    for depth in range(max(len(items) for items in lists)):
        order += [items[depth].slug for items in lists if depth < len(items)]
    return order


def _batch(instance, database, day: str) -> dict:
    result = materialize([published_batch], partition_key=SITE, instance=instance, tags={DRIP_DAY_TAG: day},
                         resources={"database": database})
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def test_a_site_with_a_quota_is_drip_fed_in_order_once_a_day(database, engine, spark):
    keys = [_import(engine, SITE), _import(engine, OTHER)]
    quota = spark("site", "publishing", SITE, "--daily-quota", "3")
    assert quota.exit_code == 0 and "daily quota 3" in quota.output
    with instance_for_test() as instance:
        materialize(content_factory_assets, selection=["locations", "avatars"], instance=instance,
                    resources={"database": database})
        instance.add_dynamic_partitions("campaign", keys)
        quality = {}
        for key in keys:
            for name in CHAIN:
                result = materialize(content_factory_assets, selection=[name], partition_key=key, instance=instance,
                                     resources={"database": database})
            quality[key] = {k: v.value for k, v in
                            result.get_asset_materialization_events()[0].materialization.metadata.items()}

        # auto-publishing on the quota site approves into the queue; the other site publishes at once, as before
        # (drafts with a blocking issue stay drafts, on both sites)
        every = _articles(engine, SITE)
        rows = [r for r in every if r.status == "approved"]
        assert {r.status for r in every} <= {"approved", "draft"} and not any(r.published_at for r in every)
        assert quality[keys[0]]["auto_published"] == 0 and quality[keys[0]]["auto_queued"] == len(rows)
        other_before = _articles(engine, OTHER)
        published_elsewhere = sum(r.status == "published" for r in other_before)
        assert quality[keys[1]]["auto_published"] == published_elsewhere > 0 and quality[keys[1]]["auto_queued"] == 0
        expected = _expected_order(rows)
        assert len({r.location_key for r in rows}) >= 3 and len(rows) >= 7, "the fixture must spread over places"

        # `spark site publishing` shows the quota, the queue and the next batch, in order
        shown = spark("site", "publishing", SITE)
        assert shown.exit_code == 0
        assert "daily quota 3" in shown.output and f"queue: {len(rows)} approved" in shown.output
        listed = [line.split()[1] for line in shown.output.splitlines() if line.strip()[:1].isdigit()]
        assert listed == expected[:3]

        # the 06:00 tick: one run for the quota site (the other has no quota), for the tick's day
        instance.add_dynamic_partitions("site", [SITE, OTHER])
        tick = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                         resources={"database": database}, repository_def=defs.get_repository_def())
        requests = drip_feed_schedule.evaluate_tick(context).run_requests
        assert [(r.partition_key, r.run_key, r.tags[DRIP_DAY_TAG]) for r in requests] == [
            (SITE, f"{SITE}/2026-03-02", "2026-03-02")]
        assert requests[0].job_name in (None, "drip_feed_job")
        assert requests[0].tags["spark/kind"] == "releases"  # held to the instance's limit for releases

        # that tick's batch: exactly the quota, in the documented order; the same day again: nothing more
        first = _batch(instance, database, "2026-03-02")
        assert first["published"] == 3 and first["day"] == "2026-03-02"
        published = [r for r in _articles(engine, SITE) if r.status == "published"]
        assert sorted(r.slug for r in published) == sorted(expected[:3])
        assert all(r.published_at and r.approved_at for r in published)
        assert all(slug in first["batch"] for slug in expected[:3])
        assert _batch(instance, database, "2026-03-02")["published"] == 0
        assert sum(r.status == "published" for r in _articles(engine, SITE)) == 3
        with engine.connect() as conn:
            day = conn.execute(sa.text("SELECT published, slugs FROM drip_batches")).one()
        assert day.published == 3 and day.slugs == expected[:3]

        # the next day continues where the first stopped
        assert _batch(instance, database, "2026-03-03")["published"] == 3
        assert sorted(r.slug for r in _articles(engine, SITE) if r.status == "published") == sorted(expected[:6])

        # an explicit publish overrides the quota, and says so
        override = spark("articles", "publish", "--campaign", keys[0])
        assert override.exit_code == 0
        assert f"published {len(rows) - 6} article(s)" in override.output
        assert "overrides the site's daily publishing quota" in override.output
        assert "approved" not in {r.status for r in _articles(engine, SITE)}
        assert "nothing to publish" in spark("site", "publishing", SITE).output

    # the other site's rows were never touched
    assert _articles(engine, OTHER) == other_before


def test_the_quota_is_set_cleared_and_checked(database, engine, spark):
    with engine.begin() as conn:
        add_site(conn, SITE, "Gutters")
    assert spark("site", "publishing", SITE, "--daily-quota", "25").exit_code == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT daily_publish_quota FROM sites")).scalar_one() == 25
    assert "next batch: nothing to publish" in spark("site", "publishing", SITE).output
    assert spark("site", "publishing", SITE, "--daily-quota", "0").exit_code == 2  # click's range check
    assert spark("site", "publishing", SITE, "--daily-quota", "3", "--no-quota").exit_code == 2
    cleared = spark("site", "publishing", SITE, "--no-quota")
    assert cleared.exit_code == 0 and "no daily quota" in cleared.output
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT daily_publish_quota FROM sites")).scalar_one() is None
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("UPDATE sites SET daily_publish_quota = 0"))
    assert spark("site", "publishing", "unknown.example").exit_code == 1


def test_the_schedule_skips_when_no_site_has_a_quota_and_waits_for_new_partitions(database, engine):
    with engine.begin() as conn:
        add_site(conn, SITE, "Gutters")
    tick = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
    with instance_for_test() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                         resources={"database": database}, repository_def=defs.get_repository_def())
        assert drip_feed_schedule.evaluate_tick(context).skip_message
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sites SET daily_publish_quota = 5"))
        assert not drip_feed_schedule.evaluate_tick(context).run_requests  # not a partition yet
        instance.add_dynamic_partitions("site", [SITE])
        assert [r.partition_key for r in drip_feed_schedule.evaluate_tick(context).run_requests] == [SITE]


def test_the_job_builds_after_publishing_and_releases_after_building():
    graph = defs.resolve_asset_graph()
    assert AssetKey("published_batch") in graph.get(AssetKey("site_build")).parent_keys
    job = defs.resolve_job_def("drip_feed_job")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "published_batch", "site_build", "site_release"}
