"""Spark Factory's assets. The Definitions live in `spark_assets.definitions`; `spark_assets.content` is the dagster-free
content core (spintax, tokens, names, blueprints)."""

import warnings

# BackfillPolicy and friends are marked beta in dagster 1.13; we use them deliberately (see docs/ARCHITECTURE.md).
warnings.filterwarnings("ignore", message=r".* is currently in beta")
