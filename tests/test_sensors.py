"""The registry sensors under a real Dagster instance and a real PostgreSQL: each new site or campaign becomes exactly one
partition, once."""

from __future__ import annotations

import sqlalchemy as sa
from dagster import AddDynamicPartitionsRequest, SensorResult, SkipReason, build_sensor_context, instance_for_test

from spark_assets.automation.sensors import new_campaigns_sensor, new_sites_sensor
from spark_assets.content.blueprint import load_blueprint
from spark_assets.records.registry import add_site, import_campaign

from .conftest import DEMO_BLUEPRINT


def _tick(sensor, instance, database, cursor):
    """Evaluate one tick and apply its partition requests to the instance, as the daemon would."""
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"database": database})
    result = sensor(context)
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests or []:
            assert isinstance(request, AddDynamicPartitionsRequest)
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result, result.cursor
    return result, cursor


def _added_keys(result) -> list[str]:
    if not isinstance(result, SensorResult):
        return []
    return [key for request in result.dynamic_partitions_requests or [] for key in request.partition_keys]


def test_a_new_site_becomes_exactly_one_partition(database, engine):
    with instance_for_test() as instance:
        first, cursor = _tick(new_sites_sensor, instance, database, None)
        assert _added_keys(first) == []

        with engine.begin() as conn:
            add_site(conn, "Demo-Roofing.example", "Summit Roofing Co.")
        second, cursor = _tick(new_sites_sensor, instance, database, cursor)
        assert _added_keys(second) == ["demo-roofing.example"]
        assert instance.get_dynamic_partitions("site") == ["demo-roofing.example"]
        # its provisioning run is held to the instance's limit for provisioning runs (docker/dagster.yaml)
        assert [r.tags["spark/kind"] for r in second.run_requests] == ["provisioning"]

        third, cursor = _tick(new_sites_sensor, instance, database, cursor)
        assert isinstance(third, SkipReason)
        assert instance.get_dynamic_partitions("site") == ["demo-roofing.example"]


def test_a_new_campaign_becomes_one_partition_and_one_run(database, engine):
    blueprint = load_blueprint(DEMO_BLUEPRINT)
    with engine.begin() as conn:
        add_site(conn, "demo-roofing.example")
    with instance_for_test() as instance:
        _, cursor = _tick(new_campaigns_sensor, instance, database, None)
        with engine.begin() as conn:
            import_campaign(conn, "demo-roofing.example", blueprint)

        # a fresh database has no places yet: the tick loads them first, and leaves the campaign for a later tick
        waiting, cursor = _tick(new_campaigns_sensor, instance, database, cursor)
        assert _added_keys(waiting) == []
        assert [([k.to_user_string() for k in r.asset_selection], r.partition_key, r.run_key)
                for r in waiting.run_requests] == [(["locations"], None, "prerequisite:locations")]
        with engine.begin() as conn:  # what that run does
            conn.execute(sa.text("INSERT INTO locations_states (name, code) VALUES ('Texas', 'TX')"))

        result, cursor = _tick(new_campaigns_sensor, instance, database, cursor)
        key = "demo-roofing.example/roof-repair-replacement"
        assert _added_keys(result) == [key]
        assert [(r.partition_key, r.run_key) for r in result.run_requests] == [(key, f"new-campaign:{key}")]
        assert result.run_requests[0].tags["spark/kind"] == "content"
        assert [k.to_user_string() for k in result.run_requests[0].asset_selection] == [
            "avatars", "campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines", "articles",
            "article_quality",
        ]  # fmt: skip

        again, _ = _tick(new_campaigns_sensor, instance, database, cursor)
        assert isinstance(again, SkipReason)
        assert instance.get_dynamic_partitions("campaign") == [key]


def test_a_lost_cursor_does_not_add_a_key_twice(database, engine):
    with engine.begin() as conn:
        add_site(conn, "a.example")
    with instance_for_test() as instance:
        _tick(new_sites_sensor, instance, database, None)
        with engine.begin() as conn:
            add_site(conn, "b.example")
        result, _ = _tick(new_sites_sensor, instance, database, None)  # cursor reset, e.g. the sensor was recreated
        assert _added_keys(result) == ["b.example"]
        assert sorted(instance.get_dynamic_partitions("site")) == ["a.example", "b.example"]


def test_archived_sites_are_neither_added_nor_removed(database, engine):
    with engine.begin() as conn:
        add_site(conn, "kept.example")
        add_site(conn, "archived.example")
        conn.execute(sa.text("UPDATE sites SET status = 'archived' WHERE domain = 'archived.example'"))
    with instance_for_test() as instance:
        result, cursor = _tick(new_sites_sensor, instance, database, None)
        assert _added_keys(result) == ["kept.example"]

        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sites SET status = 'archived' WHERE domain = 'kept.example'"))
        result, cursor = _tick(new_sites_sensor, instance, database, cursor)
        assert _added_keys(result) == []
        assert instance.get_dynamic_partitions("site") == ["kept.example"], "history stays browsable"
