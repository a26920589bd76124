"""Materialize assets one at a time in dependency order, with a progress line per asset, into the local Dagster
instance: what `spark demo` and `spark campaign generate` share. Each asset is its own run, so the UI shows them as it
shows the runs it launches itself, with their metadata and checks."""

from __future__ import annotations

import time
from typing import Callable, Iterable

from dagster import AssetKey, DagsterInstance, DynamicPartitionsDefinition, materialize

from spark_assets.automation.sensors import unseen
from spark_assets.definitions import all_assets, defs

#: the caller prints its own progress; the run's full log is in the instance (and the UI)
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class MaterializeFailed(RuntimeError):
    """An asset's run failed; the message says which and why."""


def add_missing_partitions(instance: DagsterInstance, wanted: Iterable[tuple[str, str]]) -> list[str]:
    """Add each (partitions definition name, key) the instance does not have yet, as the sensors would; returns the
    keys added."""
    added: list[str] = []
    for name, key in wanted:
        new = unseen([key], instance.get_dynamic_partitions(name))
        if new:
            instance.add_dynamic_partitions(name, new)
            added += new
    return added


def materializable_keys(names: Iterable[str] | None = None) -> list[AssetKey]:
    """The Definitions' materializable asset keys in dependency order (only those named, if `names` is given)."""
    graph = defs.resolve_asset_graph()
    wanted = None if names is None else {AssetKey(name) for name in names}
    return [
        key for key in graph.toposorted_asset_keys
        if graph.get(key).is_materializable and (wanted is None or key in wanted)
    ]


def materialize_in_order(
    keys: list[AssetKey],
    partition_for: dict[str, str],
    instance: DagsterInstance,
    resources: dict,
    step: "Steps",
) -> dict[AssetKey, dict]:
    """Materialize `keys` in the given order, each for its partitions definition's key in `partition_for`; the
    metadata of each materialization. Raises MaterializeFailed at the first failed run."""
    graph = defs.resolve_asset_graph()
    metadata: dict[AssetKey, dict] = {}
    for index, asset_key in enumerate(keys, start=1):
        partitions_def = graph.get(asset_key).partitions_def
        if partitions_def is not None and not isinstance(partitions_def, DynamicPartitionsDefinition):
            raise NotImplementedError(f"no partition of {asset_key.to_user_string()} to pick")
        partition_key = partition_for[partitions_def.name] if partitions_def else None
        label = asset_key.to_user_string() + (f" [{partition_key}]" if partition_key else "")
        with step(f"materialize {index}/{len(keys)} {label}"):
            result = materialize(
                all_assets,
                selection=[asset_key],
                partition_key=partition_key,
                instance=instance,
                resources=resources,
                run_config=QUIET_RUN,
                raise_on_error=False,
            )
            if not result.success:
                raise MaterializeFailed(
                    f"{label} failed: {failure_of(result)} (the full log is in the Dagster UI: `spark ui`)"
                )
            events = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_key]
            metadata[asset_key] = events[-1].materialization.metadata if events else {}
            step.note(_headline(metadata[asset_key]) if events else "no materialization recorded")
            for check in result.get_asset_check_evaluations():
                if not check.passed:
                    why = f": {check.description}" if check.description else ""
                    step.note(f"check {check.check_name} did not pass ({check.severity.value}){why}")
                    step.failed_checks.append((asset_key.to_user_string(), check.check_name, check.severity.value))
    return metadata


def failure_of(result) -> str:
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
            error = error.cause
        if error is not None:
            # one line on the terminal, however many the exception had (a validation error lists one per field)
            message = " ".join(line.strip() for line in error.message.splitlines() if line.strip())
            return message if len(message) <= 400 else message[:399] + "…"
    return "unknown error"


def _headline(metadata: dict) -> str:
    """A one-line digest of a materialization's numeric metadata."""
    shown = []
    for key, entry in metadata.items():
        value = entry.value
        if key == "seconds" or not isinstance(value, (int, float, str, bool)):
            continue
        if isinstance(value, str) and (len(value) > 40 or "\n" in value):
            continue
        shown.append(f"{key}={value:.2%}" if key.endswith("_rate") else f"{key}={value}")
    return ", ".join(shown[:8])


class Steps:
    """Prints `-> name ... done in 0.4s` around each step, and the notes a step adds."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        #: (asset, check, severity) of every check that did not pass in the runs made through these steps
        self.failed_checks: list[tuple[str, str, str]] = []
        self._name = ""
        self._started = 0.0

    def __call__(self, name: str) -> "Steps":
        self._name = name
        return self

    def __enter__(self) -> "Steps":
        self._started = time.perf_counter()
        self.echo(f"-> {self._name}")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        elapsed = time.perf_counter() - self._started
        self.echo(f"   {'done' if exc is None else 'FAILED'} in {elapsed:.1f}s")

    def note(self, text: str) -> None:
        self.echo(f"   {text}")
