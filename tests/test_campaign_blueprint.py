"""The campaign_blueprint asset materialized for real: rows equal to the blueprint, ids kept across re-runs, and a failure
halfway leaves the previous version whole."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, instance_for_test, materialize

from spark_assets.assets import dimensions
from spark_assets.content.blueprint import parse_blueprint
from spark_assets.definitions import content_factory_assets
from spark_assets.records.registry import add_site, import_campaign

from .conftest import DEMO_BLUEPRINT, database_snapshot

KEY = "demo-roofing.example/roof-repair-replacement"


def _import(engine, data: dict) -> None:
    with engine.begin() as conn:
        add_site(conn, "demo-roofing.example")
        import_campaign(conn, "demo-roofing.example", parse_blueprint(yaml.safe_dump(data)))


def _materialize(instance: DagsterInstance, database, raise_on_error: bool = True):
    instance.add_dynamic_partitions("campaign", [KEY])
    return materialize(
        content_factory_assets,
        selection=["campaign_blueprint"],
        partition_key=KEY,
        instance=instance,
        resources={"database": database},
        raise_on_error=raise_on_error,
    )


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_the_blueprint_is_unpacked_into_its_tables(database, engine):
    data = yaml.safe_load(DEMO_BLUEPRINT.read_text())
    _import(engine, data)
    with instance_for_test() as instance:
        result = _materialize(instance, database)

    assert result.success
    assert _rows(engine, "SELECT slug, pattern_logic FROM cartesian_patterns ORDER BY sort") == [
        (p["slug"], p["logic"]) for p in data["patterns"]
    ]
    assert _rows(engine, "SELECT slug, html_content FROM offer_blocks ORDER BY sort") == [
        (o["slug"], o["html"]) for o in data["offer_blocks"]
    ]
    fragments = _rows(
        engine, "SELECT fragment_type, position, heading, fragment_text FROM content_fragments ORDER BY 1, 2"
    )
    expected = [(pillar, i, None, text) for pillar, texts in data["fragments"].items() for i, text in enumerate(texts)]
    expected += [("faq", i, item["question"], item["answer"]) for i, item in enumerate(data["faq"])]
    assert fragments == sorted(expected, key=lambda r: (r[0], r[1]))
    assert _rows(engine, "SELECT target_url, anchor_text FROM link_targets ORDER BY sort") == [
        (link["url"], link["anchor"]) for link in data["link_targets"]
    ]

    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["campaign"].value == KEY
    assert metadata["patterns"].value == len(data["patterns"])
    assert metadata["permutations_per_geo_target"].value == sum(len(a["variants"]) for a in data["avatars"]) * len(
        data["patterns"]
    )
    assert "| intro_hook |" in metadata["outline"].value


def test_a_changed_blueprint_keeps_the_ids_of_what_did_not_change(database, engine):
    data = yaml.safe_load(DEMO_BLUEPRINT.read_text())
    _import(engine, data)
    with instance_for_test() as instance:
        _materialize(instance, database)
        before = dict(_rows(engine, "SELECT slug, id FROM cartesian_patterns"))
        fragment_ids = dict(_rows(engine, "SELECT fragment_type || ':' || position, id FROM content_fragments"))

        removed = data["patterns"].pop()  # drop the last pattern
        data["patterns"][0]["logic"] = data["patterns"][0]["logic"] + " Today"  # edit the first
        data["fragments"]["conclusion"] = data["fragments"]["conclusion"][:1]  # keep one conclusion
        _import(engine, data)
        _materialize(instance, database)

    after = dict(_rows(engine, "SELECT slug, id FROM cartesian_patterns"))
    assert removed["slug"] not in after
    assert after == {slug: id_ for slug, id_ in before.items() if slug != removed["slug"]}
    assert _rows(engine, f"SELECT pattern_logic FROM cartesian_patterns WHERE slug = '{data['patterns'][0]['slug']}'") == [
        (data["patterns"][0]["logic"],)
    ]
    now = dict(_rows(engine, "SELECT fragment_type || ':' || position, id FROM content_fragments"))
    assert "conclusion:1" not in now and now["conclusion:0"] == fragment_ids["conclusion:0"]
    assert now["intro_hook:0"] == fragment_ids["intro_hook:0"]


def test_a_failure_halfway_leaves_the_previous_version(database, engine, monkeypatch):
    data = yaml.safe_load(DEMO_BLUEPRINT.read_text())
    _import(engine, data)
    with instance_for_test() as instance:
        _materialize(instance, database)
        good = database_snapshot(engine)

        data["patterns"][0]["name"] = "Renamed"
        data["fragments"]["intro_hook"][0] = "A different intro for {{city}}."
        _import(engine, data)
        after_import = database_snapshot(engine)
        real_sync = dimensions._sync
        calls = []

        def crash_on_third_table(*args, **kwargs):
            calls.append(args[1])
            if len(calls) == 3:  # patterns and offers written, fragments not yet
                raise RuntimeError("injected failure")
            return real_sync(*args, **kwargs)

        monkeypatch.setattr(dimensions, "_sync", crash_on_third_table)
        result = _materialize(instance, database, raise_on_error=False)

    assert not result.success
    assert calls == ["cartesian_patterns", "offer_blocks", "content_fragments"]
    assert "injected failure" in result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert database_snapshot(engine) == after_import
    # only the campaign row (re-imported) differs from the good version; every unpacked table is as it was
    changed = {t for t in good if good[t] != after_import[t]}
    assert changed == {"campaign_masters"}


def test_an_unknown_campaign_fails_with_a_clear_message(database):
    with instance_for_test() as instance:
        result = _materialize(instance, database, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "campaign 'demo-roofing.example/roof-repair-replacement' is not registered" in failure.to_string()


@pytest.mark.parametrize("status", ["archived"])
def test_registry_keys_skip_archived_campaigns(engine, status):
    from spark_assets.records.registry import active_campaign_keys

    _import(engine, yaml.safe_load(DEMO_BLUEPRINT.read_text()))
    with engine.begin() as conn:
        assert active_campaign_keys(conn) == [KEY]
        conn.execute(sa.text("UPDATE campaign_masters SET status = :s"), {"s": status})
        assert active_campaign_keys(conn) == []
