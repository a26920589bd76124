"""The code location as Dagster sees it: it loads and validates, and its asset graph is what the snapshot says (the layers
and the dagster-free cores are checked in test_layers.py)."""

from __future__ import annotations

import json
import os
import subprocess

from dagster import DynamicPartitionsDefinition

from spark_assets.definitions import defs

from .conftest import REPO_ROOT

SNAPSHOT = REPO_ROOT / "tests" / "snapshots" / "asset_specs.json"


def asset_spec_snapshot() -> dict:
    """Keys, deps, partitions, groups, kinds and owners of every asset, and the sensors: what a graph review looks at."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": (
                f"dynamic:{partitions.name}" if isinstance(partitions, DynamicPartitionsDefinition)
                else (type(partitions).__name__ if partitions else None)
            ),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "backfill_policy": str(node.backfill_policy.policy_type.value) if node.backfill_policy else None,
            "checks": sorted(c.name for c in node.check_keys),
        }
    sensors = {
        s.name: sorted(k.to_user_string() for k in (s.asset_selection.resolve(graph) if s.asset_selection else []))
        for s in defs.sensors
    }
    return {"assets": assets, "sensors": sensors}


def test_asset_specs_match_the_snapshot():
    """An accidental change to the graph shows here. After an intended one: SPARK_UPDATE_SNAPSHOTS=1 pytest -k snapshot."""
    current = asset_spec_snapshot()
    if os.environ.get("SPARK_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_dagster_definitions_validate_passes():
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "dagster") if (REPO_ROOT / ".venv").exists() else "dagster",
         "definitions", "validate"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_every_partitioned_asset_uses_the_shared_partition_objects():
    from spark_assets.partitions import analytics_days, campaign_partitions, site_partitions

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        if partitions is not None:
            assert partitions in (site_partitions, campaign_partitions, analytics_days), key
