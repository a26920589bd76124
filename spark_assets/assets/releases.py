"""`site_release`: a site's last good build shipped to the bucket (R2 in production) as a release, and made live.

Thin: the release itself is `spark_assets.release.publish` (content-addressed uploads, an immutable manifest, the live
pointer written last with If-Match); this asset reads the build's manifest, calls it with the storage client, and
records the `site_deployments` row and the site's `status_deployment` (a failure: its message, never a secret). Old
releases beyond `SPARK_KEEP_RELEASES` (default 5) and older than the grace period are collected after a release.
"""

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from spark_assets.partitions import site_partitions
from spark_assets.records import releases, site_inputs
from spark_assets.release import layout, publish
from spark_assets.site.build import BuildError, check_relative_path, load_manifest
from spark_resources.database import DatabaseResource
from spark_resources.providers.http import ProviderError
from spark_resources.storage import ConditionFailed, DirectoryStorage, ObjectStorageResource

KEEP_VARIABLE = "SPARK_KEEP_RELEASES"
#: an object younger than this is never collected (a release may be uploading it right now)
GRACE = timedelta(hours=1)


def keep_releases() -> int:
    value = os.environ.get(KEEP_VARIABLE, "5").strip()
    if not value.isdigit() or int(value) < 1:
        raise Failure(f"{KEEP_VARIABLE} must be a whole number of releases to keep (1 or more), not {value!r}")
    return int(value)


def new_release_id(now: datetime, build_id: Any) -> str:
    return f"{now:%Y%m%dt%H%M%Sz}-{str(build_id).replace('-', '')[:8]}"


def _reader(tree: Path):
    def read(path: str) -> bytes:
        check_relative_path(path)
        return (tree / path).read_bytes()
    return read


@asset(
    partitions_def=site_partitions,
    group_name="sites",
    kinds={"s3"},
    owners=["team:platform"],
    deps=["site_build"],
    description="The site's last good build released to the bucket (content-addressed objects, an immutable release "
    "manifest) and made live by one conditional write of its pointer; old releases collected.",
)
def site_release(context: AssetExecutionContext, database: DatabaseResource,
                 storage: ObjectStorageResource) -> MaterializeResult:
    domain = context.partition_key
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    keep = keep_releases()
    with database.begin() as conn:
        row, _ = site_inputs.load_site(conn, domain, None)
        build = site_inputs.good_build(conn, row.id)  # the build a release ships
        if build is None:
            raise Failure(f"{domain} has no good build to release: materialize site_build (spark site build {domain})")
        release_id = new_release_id(now, build.id)
        deployment = releases.start(conn, row.id, build.id, storage.bucket, layout.site_prefix(domain), "release",
                                    release_id)
    client = None
    try:
        files, _ = load_manifest(Path(build.manifest_path))
        if not files:
            raise BuildError(f"the manifest of build {build.id} is missing or empty: build again")
        client = storage.get_client()
        if isinstance(client, DirectoryStorage):  # the offline default: a local directory, nothing to provision
            client.ensure_bucket()
            context.log.warning(f"{domain}: releasing to the local directory bucket {client.root} (the offline "
                                "default): set R2_ACCOUNT_ID (or SPARK_STORAGE_URL) to release to R2")
        result = publish.release_build(
            client, domain, str(build.id), build.manifest_hash, files.values(), _reader(Path(build.tree)),
            release_id, now, progress=lambda stage, n: context.log.info(f"{domain}: {stage}: {n:,} object(s)"))
        collected, collect_error = None, None
        if result.live:
            try:  # the release is live whatever happens here: a failed clean-up is said, and retried next release
                collected = publish.collect_garbage(client, domain, keep, GRACE, now)
            except (ProviderError, OSError) as exc:
                collect_error = str(exc)
                context.log.warning(f"{domain}: released, but old releases were not collected: {exc}")
    except ConditionFailed:
        with database.begin() as conn:
            message = releases.fail(conn, deployment, row.id, domain,
                                    "the live pointer moved while this release was being made (another release went "
                                    "live first; it stays live): release again to make this build live",
                                    int((time.perf_counter() - started) * 1000))
        raise Failure(description=message) from None
    except (BuildError, publish.ReleaseError, ProviderError, OSError) as exc:
        # what an operator can act on, as the provider or the check said it (ProviderError carries no credentials)
        with database.begin() as conn:
            message = releases.fail(conn, deployment, row.id, domain, str(exc),
                                    int((time.perf_counter() - started) * 1000))
        raise Failure(description=message) from None
    except Exception as exc:
        with database.begin() as conn:
            releases.fail(conn, deployment, row.id, domain, f"unexpected {type(exc).__name__}",
                          int((time.perf_counter() - started) * 1000))
        raise
    finally:
        if client is not None:
            client.close()
    duration_ms = int((time.perf_counter() - started) * 1000)
    live_url = f"https://{domain}/"
    with database.begin() as conn:
        # a build already live is no new release: the row says which release it is, as its previous one
        releases.finish(conn, deployment, row.id, domain, release_id=result.release_id if result.live else None,
                        previous_release=result.previous_release, objects_uploaded=result.uploaded,
                        objects_reused=result.reused, bytes_uploaded=result.bytes_uploaded, duration_ms=duration_ms,
                        live_url=live_url)
    metadata: dict[str, Any] = {
        "release_id": result.release_id,
        "already_live": not result.live,
        "build_id": str(build.id),
        "files": result.files,
        "objects_uploaded": result.uploaded,
        "objects_reused": result.reused,
        "bytes_uploaded": MetadataValue.int(result.bytes_uploaded),
        "previous_release": result.previous_release or "",
        "manifest_key": result.manifest_key,
        "seconds": round(duration_ms / 1000, 3),
        "live_url": MetadataValue.url(live_url),
        "bucket": f"{storage.bucket} at {client.endpoint_url}",
    }
    if collect_error:
        metadata["collect_error"] = collect_error
    if collected is not None:
        metadata["releases_kept"] = len(collected.releases_kept)
        metadata["releases_collected"] = len(collected.releases_deleted)
        metadata["objects_collected"] = collected.objects_deleted
    return MaterializeResult(metadata=metadata)
