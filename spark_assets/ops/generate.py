"""`spark campaign generate KEY`: one campaign's content assets, materialized in dependency order into the local Dagster
instance (the one `spark demo` and `spark ui` use), so the UI shows these runs as it shows its own."""

from __future__ import annotations

from typing import Callable

from dagster import AssetKey, DagsterInstance

from spark_assets.definitions import defs
from spark_assets.ops.local_instance import dagster_home, prepare_dagster_home
from spark_assets.ops.materializing import Steps, add_missing_partitions, materializable_keys, materialize_in_order
from spark_assets.partitions import campaign_partitions
from spark_assets.records.registry import RegistryError, get_campaign, locations_loaded
from spark_resources.database import get_engine

#: a campaign's content, materialized in the asset graph's dependency order (avatars is site-wide: not partitioned)
CAMPAIGN_ASSETS = (
    "campaign_blueprint", "campaign_geo", "avatars", "cartesian_permutations", "headlines", "articles",
    "article_quality",
)


def generate_campaign(key: str, echo: Callable[[str], None] = print) -> dict[str, object]:
    """Materialize campaign `key`'s content assets (and `locations` first when no locations are loaded); returns the
    summary it printed: articles new / changed / unchanged and the quality gate's verdict."""
    engine = get_engine()
    with engine.connect() as conn:
        try:
            campaign = get_campaign(conn, key)
        except RegistryError:
            raise RegistryError(
                f"campaign '{key}' is not registered: `spark campaign list` shows the campaigns"
            ) from None
        places_loaded = locations_loaded(conn)
    key = campaign.partition_key

    prepare_dagster_home(dagster_home())
    instance = DagsterInstance.get()
    step = Steps(echo)
    with step("partition"):
        added = add_missing_partitions(instance, [(campaign_partitions.name, key)])
        step.note(f"added {key}" if added else f"{key} already present")

    # the places every campaign draws from, loaded once per database, before anything else
    keys = materializable_keys(CAMPAIGN_ASSETS) if places_loaded else [AssetKey("locations"),
                                                                          *materializable_keys(CAMPAIGN_ASSETS)]
    metadata = materialize_in_order(keys, {campaign_partitions.name: key}, instance, dict(defs.resources), step)

    articles = metadata.get(AssetKey("articles"), {})
    quality = metadata.get(AssetKey("article_quality"), {})
    summary = {name: articles[name].value if name in articles else 0 for name in ("new", "changed", "unchanged")}
    summary["verdict"] = "publishable" if quality.get("publishable") and quality["publishable"].value else "blocked"
    echo("")
    echo(f"{key}: articles {summary['new']} new, {summary['changed']} changed, {summary['unchanged']} unchanged")
    rate = quality.get("near_duplicate_rate")
    detail = f" (near-duplicate rate {rate.value:.2%})" if rate is not None else ""
    echo(f"quality gate: {summary['verdict']}{detail}")
    echo(f"next: `spark articles list --campaign {key}`; the runs are in the Dagster UI (`spark ui`)")
    return summary
