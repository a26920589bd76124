"""Benchmark: releasing a site of N published articles to an S3 server (moto's, on loopback) with the publisher.

    .venv/bin/python benchmarks/site_release.py --pages 10000
    .venv/bin/python benchmarks/site_release.py --pages 10000 --home /tmp/bh    # reuse a kept SPARK_HOME

The site and its builds are benchmarks/site_build.py's (imported: `make_site`, `run_build` = the functions the
`site_build` asset calls, in a subprocess; `change_one_article`), the tree on tmpfs (/dev/shm) so the disk stays out of
the numbers. moto's S3 server (`ThreadedMotoServer`, 127.0.0.1, port 0) runs in a subprocess of its own (so its
request handling does not share this process's interpreter lock), one bucket. Then, each through
`spark_resources.storage.ObjectStorage` (the boto3 client used against R2) and `spark_assets.release.publish`:

1. full release: `release_build` of the build's files: seconds, objects and bytes uploaded, PutObject requests
   (counted with botocore's `provide-client-params.s3.PutObject` event hook, as tests/test_site_release.py does);
2. no-change release: the same build again (goal: zero uploads, under 2 s);
3. one-article change: one article updated, rebuilt over the same tree with the previous manifest, released: objects
   uploaded (and their paths), PutObject requests (objects + manifest + pointer), seconds;
4. rollback: `point_to` the full release (goal: under 1 s); then forward again to the one-change release;
5. garbage collection, keep=1, grace=0: seconds and objects deleted (report only).

Between 3 and 4, one `list_objects` of the site's `objects/` prefix is timed alone (what every release that uploads
starts with). ListObjectsV2 and GetObject requests are counted with the same hooks.

moto's server CPU seconds are read from /proc for each step. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import process_stats  # noqa: E402
import site_build as site_bench  # noqa: E402  (after the paths above: the worktree's code, not the installed one)

DOMAIN = site_bench.DOMAIN
KEY = "bench"
REGION = "us-east-1"
BUCKET = "spark-release-bench"

_MOTO = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""


class Moto:
    """moto's S3 server in a subprocess; its CPU seconds so far from /proc (0 where /proc is missing)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.stop()
            raise SystemExit("moto's server did not start")
        self.endpoint = f"http://127.0.0.1:{port}"

    def cpu_seconds(self) -> float:
        return process_stats.cpu_seconds(self.process.pid)

    def rss_mb(self) -> float:
        return process_stats.rss_mb(self.process.pid)

    def stop(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


class Puts:
    """Every PutObject the client sends: its key and body size; and how many ListObjectsV2 and GetObject requests
    (botocore's event hooks; nothing is mocked)."""

    def __init__(self, store) -> None:
        self.calls: list[tuple[str, int]] = []
        self.others = {"ListObjectsV2": 0, "GetObject": 0}
        self._lock = threading.Lock()
        events = store._s3.meta.events
        events.register("provide-client-params.s3.PutObject", self._seen)
        for name in self.others:
            events.register(f"provide-client-params.s3.{name}", lambda name=name, **_: self._count(name))

    def _seen(self, params, **_) -> None:
        with self._lock:
            self.calls.append((params["Key"], len(params.get("Body") or b"")))

    def _count(self, name: str) -> None:
        with self._lock:
            self.others[name] += 1

    def take(self) -> list[tuple[str, int]]:
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def requests(self) -> dict[str, int]:
        """ListObjectsV2 and GetObject requests since the last call."""
        with self._lock:
            counts, self.others = self.others, dict.fromkeys(self.others, 0)
        return counts


def _files(manifest: str):
    from spark_assets.site.build import load_manifest

    files, header = load_manifest(Path(manifest))
    return files, header["manifest_hash"]


def _timed(moto: Moto, step):
    cpu, moto_cpu, started = os.times(), moto.cpu_seconds(), time.perf_counter()
    value = step()
    seconds = time.perf_counter() - started
    end = os.times()
    return value, round(seconds, 3), round(end[0] + end[1] - cpu[0] - cpu[1], 2), round(moto.cpu_seconds() - moto_cpu, 2)


def run(pages: int, workers: int, keep: bool) -> dict:
    from spark_assets.release import layout, publish
    from spark_resources.database import get_engine
    from spark_resources.storage import ObjectStorage

    engine, site_id = site_bench.make_site(pages)
    database_url = get_engine().url.render_as_string(hide_password=False)
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="spark-release-bench-", dir=shm if shm.is_dir() else None))
    root = work / "site"
    moto = None
    store = None
    try:
        full_build = site_bench.run_build(database_url, root, work, "full")
        files, manifest_hash = _files(full_build["manifest"])
        read = lambda path: (root / path).read_bytes()  # noqa: E731

        moto = Moto()
        store = ObjectStorage(moto.endpoint, BUCKET, KEY, KEY, region_name=REGION, read_timeout=120.0)
        store.ensure_bucket()
        puts = Puts(store)
        base = datetime.now(timezone.utc)
        stamp = f"{base:%Y%m%dt%H%M%Sz}"

        # 1. full release
        marks: dict[str, float] = {}
        started = time.perf_counter()
        full, full_seconds, full_cpu, full_moto_cpu = _timed(moto, lambda: publish.release_build(
            store, DOMAIN, "full", manifest_hash, files.values(), read, f"{stamp}-1-full", base, workers=workers,
            progress=lambda stage, n: marks.setdefault(stage, time.perf_counter() - started)))
        full_puts = puts.take()
        manifest_bytes = next(size for key, size in full_puts if key == layout.manifest_key(DOMAIN, full.release_id))
        puts.requests()
        print(f"full release: {full.uploaded} objects, {full.bytes_uploaded / 1e6:.1f} MB, {len(full_puts)} PUTs in "
              f"{full_seconds:.2f}s (uploads done at {marks.get('uploaded', 0):.2f}s; client CPU {full_cpu}s, "
              f"moto CPU {full_moto_cpu}s)", file=sys.stderr)

        # 2. the same build again
        again, nochange_seconds, _, nochange_moto_cpu = _timed(moto, lambda: publish.release_build(
            store, DOMAIN, "full", manifest_hash, files.values(), read, f"{stamp}-2-again", base, workers=workers))
        nochange_puts = puts.take()
        print(f"no-change release: live={again.live}, {again.uploaded} objects, {len(nochange_puts)} PUTs in "
              f"{nochange_seconds:.3f}s", file=sys.stderr)

        # 3. one article changed, rebuilt incrementally, released
        slug = site_bench.change_one_article(engine, site_id)
        changed_build = site_bench.run_build(database_url, root, work, "one-change", Path(full_build["manifest"]))
        changed_files, changed_hash = _files(changed_build["manifest"])
        changed_paths = sorted(p for p, f in changed_files.items() if p not in files or files[p].sha256 != f.sha256)
        removed_paths = sorted(set(files) - set(changed_files))
        one, one_seconds, _, one_moto_cpu = _timed(moto, lambda: publish.release_build(
            store, DOMAIN, "one-change", changed_hash, changed_files.values(), read, f"{stamp}-3-change",
            base + timedelta(seconds=1), workers=workers))
        one_puts = puts.take()
        one_requests = puts.requests()
        by_sha: dict[str, list[str]] = {}
        for path, f in changed_files.items():
            by_sha.setdefault(f.sha256, []).append(path)
        objects_prefix = layout.site_prefix(DOMAIN) + "objects/"
        uploaded_paths = sorted(p for key, _ in one_puts if key.startswith(objects_prefix)
                                for p in by_sha.get(key.rsplit("/", 1)[1], []))
        other_puts = [key[len(layout.site_prefix(DOMAIN)):] for key, _ in one_puts if not key.startswith(objects_prefix)]
        served = store.get_bytes(layout.object_key(DOMAIN, changed_files[f"{slug}/index.html"].sha256))
        print(f"one change ({slug}): {one.uploaded} objects ({', '.join(uploaded_paths)}) + {', '.join(other_puts)}: "
              f"{len(one_puts)} PUTs in {one_seconds:.3f}s (moto CPU {one_moto_cpu}s)", file=sys.stderr)

        # what one listing of the stored objects costs (release_build lists them all on every release that uploads)
        listed, list_seconds, _, list_moto_cpu = _timed(moto, lambda: store.list_objects(objects_prefix))
        list_requests = puts.requests()["ListObjectsV2"]
        print(f"one listing of {objects_prefix}: {len(listed)} keys, {list_requests} ListObjectsV2 requests in "
              f"{list_seconds:.3f}s (moto CPU {list_moto_cpu}s)", file=sys.stderr)

        # 4. rollback to the full release, then forward again
        previous, rollback_seconds, _, rollback_moto_cpu = _timed(moto, lambda: publish.point_to(
            store, DOMAIN, full.release_id, datetime.now(timezone.utc)))
        rollback_puts = puts.take()
        pointer, _ = publish.live_pointer(store, DOMAIN)
        assert previous == one.release_id and pointer["release_id"] == full.release_id
        _, forward_seconds, _, _ = _timed(moto, lambda: publish.point_to(
            store, DOMAIN, one.release_id, datetime.now(timezone.utc)))
        puts.take()
        puts.requests()
        print(f"rollback: {rollback_seconds:.3f}s ({len(rollback_puts)} PUT), forward again {forward_seconds:.3f}s",
              file=sys.stderr)

        # 5. garbage collection: keep the newest (live) release only, no grace
        time.sleep(1.0)  # moto's LastModified has whole seconds: every object strictly older than `now`
        collected, gc_seconds, _, gc_moto_cpu = _timed(moto, lambda: publish.collect_garbage(
            store, DOMAIN, 1, timedelta(0), datetime.now(timezone.utc)))
        gc_requests = puts.requests()
        print(f"garbage collection: kept {list(collected.releases_kept)}, deleted {list(collected.releases_deleted)} "
              f"and {collected.objects_deleted} objects in {gc_seconds:.3f}s", file=sys.stderr)
        moto_rss = moto.rss_mb()
    finally:
        if store is not None:
            store.close()
        if moto is not None:
            moto.stop()
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    import boto3
    import moto as moto_package

    return {
        "pages": pages,
        "files": len(files),
        "unique_objects": len({f.sha256 for f in files.values()}),
        "full_seconds": full_seconds,
        "full_upload_seconds": round(marks.get("uploaded", 0.0), 3),
        "full_objects": full.uploaded,
        "full_bytes": full.bytes_uploaded,
        "full_puts": len(full_puts),
        "full_put_bytes": sum(size for _, size in full_puts),
        "full_objects_per_second": round(full.uploaded / full_seconds, 1),
        "manifest_bytes": manifest_bytes,
        "full_client_cpu_seconds": full_cpu,
        "full_moto_cpu_seconds": full_moto_cpu,
        "nochange_seconds": nochange_seconds,
        "nochange_puts": len(nochange_puts),
        "nochange_live": again.live,
        "nochange_moto_cpu_seconds": nochange_moto_cpu,
        "one_change_slug": slug,
        "one_change_build_written": changed_build["written"],
        "one_change_changed_paths": changed_paths,
        "one_change_removed_paths": removed_paths,
        "one_change_objects": one.uploaded,
        "one_change_puts": len(one_puts),
        "one_change_paths": uploaded_paths + other_puts,
        "one_change_seconds": one_seconds,
        "one_change_moto_cpu_seconds": one_moto_cpu,
        "one_change_list_requests": one_requests["ListObjectsV2"],
        "one_change_get_requests": one_requests["GetObject"],
        "list_objects_seconds": list_seconds,
        "list_objects_keys": len(listed),
        "list_objects_requests": list_requests,
        "list_objects_moto_cpu_seconds": list_moto_cpu,
        "one_change_served_updated": b"(updated)" in served,
        "rollback_seconds": rollback_seconds,
        "rollback_puts": len(rollback_puts),
        "rollback_moto_cpu_seconds": rollback_moto_cpu,
        "forward_seconds": forward_seconds,
        "gc_seconds": gc_seconds,
        "gc_objects_deleted": collected.objects_deleted,
        "gc_releases_deleted": len(collected.releases_deleted),
        "gc_list_requests": gc_requests["ListObjectsV2"],
        "gc_get_requests": gc_requests["GetObject"],
        "gc_moto_cpu_seconds": gc_moto_cpu,
        "moto_rss_mb": moto_rss,
        "workers": workers,
        "moto": moto_package.__version__,
        "boto3": boto3.__version__,
        "machine": (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                    f"load average {os.getloadavg()[0]:.2f}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--home", type=Path, help="SPARK_HOME to keep and reuse (generation skipped when it has the site)")
    parser.add_argument("--workers", type=int, default=8, help="upload threads of each release")
    parser.add_argument("--keep", action="store_true", help="keep the build tree and manifests (under /dev/shm)")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="spark-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SPARK_HOME"] = str(home)
    try:
        result = run(args.pages, args.workers, args.keep)
    finally:
        from spark_resources.database import stop_embedded_servers

        stop_embedded_servers()
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
