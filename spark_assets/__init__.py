"""Spark Factory's assets, in layers (docs/ARCHITECTURE.md draws them):

    ops/            the operator's entry points: cli, demo, sandbox, the local instance
    definitions.py  the one Definitions object
    automation/     sensors
    assets/         the thin Dagster layer, one module per capability
    partitions.py   the site and campaign partition definitions
    records/        sites, campaigns, provider accounts and the publishing workflow, in SQL (no dagster)
    content/        the pure content core (no dagster, no database)

Each layer imports only from its own and the ones below it (and from `spark_resources`, the doors to the outside);
tests/test_layers.py checks that.
"""

import warnings

# BackfillPolicy and friends are marked beta in dagster 1.13; we use them deliberately (see docs/ARCHITECTURE.md).
warnings.filterwarnings("ignore", message=r".* is currently in beta")
