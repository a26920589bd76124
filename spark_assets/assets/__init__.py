"""The thin Dagster layer: one module per capability, each asset reading rows, calling a pure core and writing its
results in one transaction.

    dimensions    locations, avatars, campaign_blueprint, campaign_geo
    generation    cartesian_permutations, headlines, articles
    publishing    article_quality (the publishing gate)
    provisioning  site_dns, site_matomo, site_search_console

May import: `spark_assets.partitions`, `spark_assets.records`, `spark_assets.content`, `spark_resources` (see
docs/ARCHITECTURE.md, "Layers").
"""
