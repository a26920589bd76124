"""Resources: the only doors from Spark Factory's assets to the outside (database, providers, object storage).

Import what you need from its module (`spark_resources.database`, `spark_resources.providers.cloudflare`, ...): this
package imports nothing itself, so the dagster-free layers (`spark_assets.records`) can use `secrets` or `bulk`
without loading dagster.
"""
