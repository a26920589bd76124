"""The rows operators register and move along, in SQL and without dagster: sites and campaigns (`registry`), provider
accounts with their encrypted tokens (`accounts`), and the publishing workflow (`publishing`).

May import `spark_assets.content` and `spark_resources`; the assets, sensors and CLI build on it.
"""
