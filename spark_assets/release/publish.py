"""Releasing a site build to the bucket, switching the live pointer, rolling back and collecting garbage, against any
store with the `Store` methods (`spark_resources.storage.ObjectStorage` in production: R2; moto's S3 server in tests).
Plain Python: no dagster, no database, no boto3 here; the layout is `layout.py`.

A release, in order (so a visitor sees the old release or the new one, never a mix):
1. upload the build's files whose content hash is not stored yet (each checked against the hash the build recorded:
   a tree changed since its build is refused);
2. write the release's manifest (immutable, sharded when large), only where none is (If-None-Match);
3. write the live pointer last, only over the version read before (If-Match): if another release moved it meanwhile,
   the store refuses (its `ConditionFailed`), and the other release stays live.
A failure before 3 leaves the pointer, and so the live site, untouched; a retry finds the objects already uploaded
and uploads only what is missing. A build that is already live is not released again (nothing is uploaded).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Protocol

from spark_assets.release import layout


class Store(Protocol):
    def list_objects(self, prefix: str = "") -> dict[str, Any]: ...  # key -> info with .size, .etag, .last_modified

    def put_bytes(self, key: str, data: bytes, content_type: str, cache_control: str | None = None, *,
                  if_match: str | None = None, if_none_match: bool = False) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_versioned(self, key: str) -> tuple[bytes, str] | None: ...

    def exists(self, key: str) -> bool: ...

    def delete_keys(self, keys: Iterable[str]) -> int: ...


#: above this many files not in the live release, the site's objects are listed rather than asked about one by one
LIST_ABOVE = 500


class ReleaseError(ValueError):
    """What an operator can fix (a tree changed since its build, a release that does not exist): nothing went live."""


class BuildFile(Protocol):
    path: str
    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True)
class ReleaseResult:
    release_id: str
    live: bool  # False: the build was already live, nothing was written
    files: int
    uploaded: int
    reused: int
    bytes_uploaded: int
    previous_release: str | None
    manifest_key: str


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def live_pointer(store: Store, domain: str) -> tuple[dict[str, Any], str] | None:
    """The site's pointer document and its ETag, or None before its first release."""
    found = store.get_versioned(layout.pointer_key(domain))
    return (json.loads(found[0]), found[1]) if found else None


def read_manifest(store: Store, key: str) -> dict[str, Any]:
    """A release manifest with every shard's files merged into `files`."""
    document = json.loads(store.get_bytes(key))
    for shard in document.get("shards") or []:
        document["files"].update(json.loads(store.get_bytes(shard["key"]))["files"])
    return document


def release_build(store: Store, domain: str, build_id: str, build_manifest_hash: str, files: Iterable[BuildFile],
                  read: Callable[[str], bytes], release_id: str, now: datetime, *, workers: int = 8,
                  progress: Callable[[str, int], None] | None = None) -> ReleaseResult:
    """Release one build (its manifest's `files`, their bytes from `read(path)`) as `release_id`."""
    pointer_key = layout.pointer_key(domain)
    current = live_pointer(store, domain)
    previous_release = current[0]["release_id"] if current else None
    stored: set[str] = set()  # content hashes known to be in the bucket
    if current:
        live = read_manifest(store, current[0]["manifest"])
        if live.get("build_manifest_hash") == build_manifest_hash:
            return ReleaseResult(previous_release, False, 0, 0, 0, 0, previous_release, current[0]["manifest"])
        stored = {entry["sha256"] for entry in live["files"].values()}  # what the live release serves is stored

    entries: dict[str, dict[str, str]] = {}
    candidates: dict[str, tuple[str, str]] = {}  # sha256 -> (a path with that content, its content type)
    for f in files:
        entries[f.path] = {"sha256": f.sha256, "content_type": f.content_type,
                           "cache_control": layout.cache_policy(f.path, f.content_type)}
        if f.sha256 not in stored and f.sha256 not in candidates:
            candidates[f.sha256] = (f.path, f.content_type)
    # the others may be stored too (a release that failed halfway, an older release): a few are asked about one by
    # one (HEAD), many by listing the site's objects once (1,000 keys a request)
    if len(candidates) > LIST_ABOVE:
        listed = {key.rsplit("/", 1)[1] for key in store.list_objects(layout.site_prefix(domain) + "objects/")}
    else:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            found = pool.map(lambda sha: store.exists(layout.object_key(domain, sha)), list(candidates))
            listed = {sha for sha, present in zip(list(candidates), found) if present}
    stored |= listed & candidates.keys()
    missing = {sha: where for sha, where in candidates.items() if sha not in listed}

    def upload(item: tuple[str, tuple[str, str]]) -> int:
        sha, (path, content_type) = item
        data = read(path)
        if hashlib.sha256(data).hexdigest() != sha:
            raise ReleaseError(f"{domain}: /{path} changed since build {build_id} was made: build again, then release")
        store.put_bytes(layout.object_key(domain, sha), data, content_type, layout.IMMUTABLE)
        return len(data)

    # boto3 clients are thread-safe; the first failure cancels the uploads not started and is raised
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        sizes = list(pool.map(upload, missing.items()))
    finally:
        pool.shutdown(cancel_futures=True)
    if progress:
        progress("uploaded", len(sizes))

    manifest_key = layout.manifest_key(domain, release_id)
    paths = sorted(entries)
    shards = None
    if len(paths) > layout.SHARD_FILES:
        shards = []
        for number, start in enumerate(range(0, len(paths), layout.SHARD_FILES), start=1):
            chunk = paths[start:start + layout.SHARD_FILES]
            key = layout.shard_key(domain, release_id, number)
            store.put_bytes(key, _json({"files": {p: entries[p] for p in chunk}}), "application/json",
                            layout.IMMUTABLE, if_none_match=True)
            shards.append({"key": key, "first": chunk[0], "last": chunk[-1]})
    created = now.isoformat(timespec="seconds")
    document = layout.manifest_document(domain, release_id, build_id, created, {} if shards else entries, shards)
    document["build_manifest_hash"] = build_manifest_hash
    store.put_bytes(manifest_key, _json(document), "application/json", layout.IMMUTABLE, if_none_match=True)

    pointer = _json(layout.pointer_document(release_id, manifest_key, created))
    store.put_bytes(pointer_key, pointer, "application/json", layout.NO_CACHE,
                    if_match=current[1] if current else None, if_none_match=current is None)
    reused = sum(1 for entry in entries.values() if entry["sha256"] in stored)
    return ReleaseResult(release_id, True, len(entries), len(sizes), reused, sum(sizes), previous_release, manifest_key)


def releases(store: Store, domain: str) -> list[tuple[str, datetime]]:
    """(release id, when its manifest was written) of every release in the bucket, newest first."""
    prefix = layout.site_prefix(domain) + "releases/"
    found = [(key[len(prefix):-len(".json")], info.last_modified) for key, info in store.list_objects(prefix).items()
             if key.endswith(".json") and "/" not in key[len(prefix):]]
    return sorted(found, key=lambda item: (item[1], item[0]), reverse=True)


def point_to(store: Store, domain: str, release_id: str, now: datetime) -> str | None:
    """Make `release_id` live (one conditional write of the pointer); the release that was live before."""
    manifest_key = layout.manifest_key(domain, release_id)
    if not store.exists(manifest_key):
        raise ReleaseError(f"{domain} has no release {release_id}: `spark site releases {domain}` lists them")
    current = live_pointer(store, domain)
    pointer = _json(layout.pointer_document(release_id, manifest_key, now.isoformat(timespec="seconds")))
    store.put_bytes(layout.pointer_key(domain), pointer, "application/json", layout.NO_CACHE,
                    if_match=current[1] if current else None, if_none_match=current is None)
    return current[0]["release_id"] if current else None


@dataclass(frozen=True)
class Collected:
    releases_kept: tuple[str, ...]
    releases_deleted: tuple[str, ...]
    objects_deleted: int


def collect_garbage(store: Store, domain: str, keep: int, grace: timedelta, now: datetime) -> Collected:
    """Delete the releases beyond the `keep` newest (never the live one, never one younger than `grace`), then every
    object no kept release names and older than `grace` (an object a release is uploading right now is younger)."""
    prefix = layout.site_prefix(domain)
    listing = store.list_objects(prefix)
    pointer = live_pointer(store, domain)
    live = pointer[0]["release_id"] if pointer else None
    every = releases(store, domain)
    kept = [r for i, (r, when) in enumerate(every) if i < keep or r == live or now - when < grace]
    gone = [r for r, _ in every if r not in kept]
    referenced: set[str] = set()
    for release_id in kept:
        manifest = read_manifest(store, layout.manifest_key(domain, release_id))
        referenced.update(entry["sha256"] for entry in manifest["files"].values())
    doomed = [layout.manifest_key(domain, r) for r in gone]
    for release_id in gone:
        shard_prefix = f"{prefix}releases/{release_id}/"
        doomed.extend(key for key in listing if key.startswith(shard_prefix))
    objects = [key for key, info in listing.items() if key.startswith(prefix + "objects/")
               and key.rsplit("/", 1)[1] not in referenced and now - info.last_modified >= grace]
    if doomed or objects:
        store.delete_keys(doomed + objects)
    return Collected(tuple(kept), tuple(gone), len(objects))
