"""Spark Factory's one entry point: every asset, sensor, schedule and resource, assembled here.

`dagster dev` finds this module through `[tool.dagster]` in pyproject.toml; the Docker deployment loads it in the
user-code gRPC server (see docker-compose.yml).
"""

from __future__ import annotations

import os

from dagster import Definitions

from spark_assets.assets.analytics import (
    analytics_fresh,
    analytics_report,
    daily_analytics,
    matomo_daily,
    search_console_daily,
)
from spark_assets.assets.dimensions import avatars, campaign_blueprint, campaign_geo, locations
from spark_assets.assets.drip_feed import published_batch
from spark_assets.assets.generation import articles, cartesian_permutations, headlines
from spark_assets.assets.provisioning import site_dns, site_matomo, site_search_console
from spark_assets.assets.publishing import article_quality
from spark_assets.assets.releases import site_release
from spark_assets.assets.sites import site_build
from spark_assets.automation.schedules import (
    analytics_schedule,
    daily_analytics_job,
    drip_feed_job,
    drip_feed_schedule,
)
from spark_assets.automation.sensors import (
    analytics_history_sensor,
    new_campaigns_sensor,
    new_sites_sensor,
    zone_activation_sensor,
)
from spark_resources.database import DatabaseResource
from spark_resources.providers import cloudflare, google, matomo, namecheap
from spark_resources.storage import storage_from_environment

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
provisioning_assets = [site_dns, site_matomo, site_search_console]
#: the sites: the drip feed's daily batches, builds of each site's published articles, and their releases to the bucket
site_assets = [published_batch, site_build, site_release]
#: daily analytics: both sources per day for every site in one run, their merge, the report
analytics_assets = [matomo_daily, search_console_daily, daily_analytics, analytics_report]
all_assets = [*content_factory_assets, *provisioning_assets, *site_assets, *analytics_assets]

defs = Definitions(
    assets=all_assets,
    asset_checks=[analytics_fresh],
    sensors=[new_sites_sensor, new_campaigns_sensor, zone_activation_sensor, analytics_history_sensor],
    schedules=[drip_feed_schedule, analytics_schedule],
    jobs=[drip_feed_job, daily_analytics_job],
    resources={
        "database": DatabaseResource(),
        # production endpoints unless SPARK_*_URL points at a simulator (the sandbox: `spark ui --sandbox` sets them);
        # credentials from the environment (read when a step needs them) or, per account and encrypted, from the
        # database (Cloudflare tokens, Google refresh tokens)
        "cloudflare": cloudflare.CloudflareResource(
            base_url=os.environ.get("SPARK_CLOUDFLARE_URL", cloudflare.DEFAULT_BASE_URL),
            hosting_target=os.environ.get("SPARK_HOSTING_TARGET", "sites.spark-factory.example"),
        ),
        "namecheap": namecheap.NamecheapResource(
            base_url=os.environ.get("SPARK_NAMECHEAP_URL", namecheap.DEFAULT_BASE_URL),
        ),
        "search_console": google.SearchConsoleResource(**google.endpoints_on(os.environ.get("SPARK_GOOGLE_URL"))),
        "matomo": matomo.MatomoResource(base_url=os.environ.get("SPARK_MATOMO_URL", matomo.DEFAULT_BASE_URL),
                                        tracker_url=os.environ.get("SPARK_MATOMO_TRACKER_URL")),
        # where the built sites go: Cloudflare R2 (S3 API); keys from R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY
        "storage": storage_from_environment(),
    },
)
