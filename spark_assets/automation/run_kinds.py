"""What kind of work a run is, as a tag the instance's run queue limits (docker/dagster.yaml,
`concurrency.runs.tag_concurrency_limits`), and how a failed run is retried.

Every job and every run request of the sensors and schedules carries `spark/kind`: provisioning (Namecheap, Cloudflare,
Google, Matomo), releases (uploads to the bucket), analytics (Matomo and Search Console reports) or content (local
work only, not limited). A run launched by hand from the UI carries no kind and is limited by `max_concurrent_runs`
only; the steps that call a provider are still held to their pool's limit.

`dagster/retry_strategy` says how the daemon re-executes a run that failed when `run_retries` is on in the instance:
from the failed steps, so what succeeded is not done (and paid for at a provider) twice.
"""

from __future__ import annotations

#: the tag the instance's tag_concurrency_limits name
RUN_KIND_TAG = "spark/kind"
#: the kinds of run, and which of them the instance limits (docker/dagster.yaml; tests/test_deployment_files.py)
RUN_KINDS = ("provisioning", "releases", "analytics", "content")
LIMITED_RUN_KINDS = ("provisioning", "releases", "analytics")
#: Dagster's tag for the re-execution strategy of an automatic retry
RETRY_STRATEGY_TAG = "dagster/retry_strategy"


def run_kind_tags(kind: str) -> dict[str, str]:
    """The tags of a run of `kind`: its kind, and a retry from the failed steps."""
    if kind not in RUN_KINDS:
        raise ValueError(f"unknown run kind {kind!r}: one of {', '.join(RUN_KINDS)}")
    return {RUN_KIND_TAG: kind, RETRY_STRATEGY_TAG: "FROM_FAILURE"}
