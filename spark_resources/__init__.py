"""Resources: the only doors from Spark Factory's assets to the outside (database, providers, object storage)."""

from spark_resources.database import DatabaseResource

__all__ = ["DatabaseResource"]
