"""Spark Factory's one entry point: every asset, sensor, schedule and resource, assembled here.

`dagster dev` finds this module through `[tool.dagster]` in pyproject.toml; the Docker deployment loads it in the
user-code gRPC server (see docker-compose.yml).
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from spark_assets.dimensions import avatars, campaign_blueprint, campaign_geo, locations
from spark_assets.generation import article_quality, articles, cartesian_permutations, headlines
from spark_assets.provisioning import site_dns
from spark_assets.sensors import new_campaigns_sensor, new_sites_sensor
from spark_resources.database import DatabaseResource
from spark_resources.providers import cloudflare, namecheap

#: the content factory: needs only the database
content_factory_assets = [
    locations,
    avatars,
    campaign_blueprint,
    campaign_geo,
    cartesian_permutations,
    headlines,
    articles,
    article_quality,
]
#: per-site provisioning: needs the provider resources too
provisioning_assets = [site_dns]
all_assets = [*content_factory_assets, *provisioning_assets]

defs = Definitions(
    assets=all_assets,
    sensors=[new_sites_sensor, new_campaigns_sensor],
    resources={
        "database": DatabaseResource(),
        # production endpoints unless SPARK_*_URL points at a simulator (the sandbox); credentials from the
        # environment (Namecheap) or, per account and encrypted, from the database (Cloudflare)
        "cloudflare": cloudflare.CloudflareResource(
            base_url=os.environ.get("SPARK_CLOUDFLARE_URL", cloudflare.DEFAULT_BASE_URL),
            hosting_target=os.environ.get("SPARK_HOSTING_TARGET", "sites.spark-factory.example"),
        ),
        "namecheap": namecheap.NamecheapResource(
            api_user=EnvVar("NAMECHEAP_API_USER"),
            api_key=EnvVar("NAMECHEAP_API_KEY"),
            username=EnvVar("NAMECHEAP_USERNAME"),
            client_ip=EnvVar("NAMECHEAP_CLIENT_IP"),
            base_url=os.environ.get("SPARK_NAMECHEAP_URL", namecheap.DEFAULT_BASE_URL),
        ),
    },
)
