"""The local Dagster instance that `spark demo` and `spark ui` share: where it lives, its config, its pool limits.

`DAGSTER_HOME` defaults to `$SPARK_HOME/dagster`, readable by its owner only (mode 0700: the event log and compute logs
hold run output). A new instance gets the repository's `dagster.yaml` (at most two runs at once, see that file); without
it Dagster would silently use its defaults. The provider pools get the limits the
provisioning assets ask for (`PROVIDER_POOLS`), because Dagster 1.13 reads per-pool limits only from the instance's
storage, not from `dagster.yaml`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dagster import DagsterInstance

from spark_assets.assets.provisioning import PROVIDER_POOLS
from spark_resources.database import private_directory, spark_home
from spark_resources.paths import LOCAL_INSTANCE_YAML


def dagster_home() -> Path:
    """The Dagster instance directory: $DAGSTER_HOME, default $SPARK_HOME/dagster."""
    return Path(os.environ.get("DAGSTER_HOME") or spark_home() / "dagster")


def prepare_dagster_home(home: Path) -> Path:
    """Point DAGSTER_HOME at `home` (unless the operator set it) and give a new instance its dagster.yaml."""
    chosen_by_operator = "DAGSTER_HOME" in os.environ
    os.environ.setdefault("DAGSTER_HOME", str(home))
    home = Path(os.environ["DAGSTER_HOME"])
    # the event log and compute logs hold run output: readable by this user only (an operator's own DAGSTER_HOME that
    # already exists keeps its mode)
    private_directory(home, tighten=not chosen_by_operator)
    config = home / "dagster.yaml"
    if not config.exists() and LOCAL_INSTANCE_YAML.exists():  # absent in a wheel install: Dagster's defaults then
        shutil.copyfile(LOCAL_INSTANCE_YAML, config)
    return home


def apply_pool_limits(instance: DagsterInstance) -> dict[str, int]:
    """Give each provider pool its limit in `instance`, unless the operator already set one (in the UI, or with
    `dagster instance concurrency set <pool> <n>`); the limits it set."""
    storage = instance.event_log_storage
    known = storage.get_concurrency_keys()
    applied = {pool: limit for pool, limit in PROVIDER_POOLS.items() if pool not in known}
    for pool, limit in applied.items():
        storage.set_concurrency_slots(pool, limit)
    return applied
