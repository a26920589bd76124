"""Spark Factory's one entry point: every asset, sensor, schedule and resource, assembled here.

`dagster dev` finds this module through `[tool.dagster]` in pyproject.toml; the Docker deployment loads it in the
user-code gRPC server (see docker-compose.yml).
"""

from __future__ import annotations

from dagster import Definitions

from spark_assets.dimensions import avatars, campaign_blueprint, campaign_geo, locations
from spark_assets.generation import article_quality, articles, cartesian_permutations, headlines
from spark_assets.sensors import new_campaigns_sensor, new_sites_sensor
from spark_resources.database import DatabaseResource

all_assets = [
    locations,
    avatars,
    campaign_blueprint,
    campaign_geo,
    cartesian_permutations,
    headlines,
    articles,
    article_quality,
]

defs = Definitions(
    assets=all_assets,
    sensors=[new_sites_sensor, new_campaigns_sensor],
    resources={"database": DatabaseResource()},
)
