"""Where a site's releases live in the bucket, and what a release manifest and the live pointer say. Plain Python: no
dagster, no database, no boto3. The Cloudflare Worker (`worker/worker.js`), `spark site serve` and the publisher all
follow this module; a change here is a change of format (bump FORMAT).

Keys, under one prefix per site (`sites/<domain>/`):

- `sites/<domain>/objects/<sha256>`: a file of a build, stored once by its content hash; immutable
  (`Cache-Control: public, max-age=31536000, immutable`), `Content-Type` the file's;
- `sites/<domain>/releases/<release_id>.json`: a release's manifest, immutable: `{"format", "release_id", "domain",
  "build_id", "created_at", "files": {path: {"sha256", "content_type", "cache_control"}}, "shards": null}`; a release of
  more than SHARD_FILES files lists its files in shards instead: `"files": {}` and `"shards": [{"key", "first", "last"}]`,
  each shard `sites/<domain>/releases/<release_id>/<n>.json` = `{"files": {...}}` holding the paths from `first` to
  `last` (code-point order, the shards in order, no overlap);
- `sites/<domain>/live.json`: the pointer, the one mutable object per site: `{"format", "release_id", "manifest",
  "updated_at"}`, `Cache-Control: no-cache`, written last and only with a conditional write (If-Match the ETag read,
  or If-None-Match: * for a site's first release), so two releases cannot both win.

A path is a build-relative file path as the build's manifest has it: `index.html`, `texas/index.html`,
`assets/site.0123abcd4567.css`, `404.html`. How a URL maps to one is `lookup.resolve`.
"""

from __future__ import annotations

import re
from typing import Any

FORMAT = 1
#: files per manifest shard (a 10,000-page site is one object of ~1.5 MB; 100,000 pages are 10 shards)
SHARD_FILES = 20_000
POINTER_NAME = "live.json"

IMMUTABLE = "public, max-age=31536000, immutable"
HTML = "public, max-age=60, must-revalidate"
SHORT = "public, max-age=300"
NO_CACHE = "no-cache"

_HASHED_ASSET = re.compile(r"^assets/.+\.[0-9a-f]{8,}\.[a-z0-9]+$")


def site_prefix(domain: str) -> str:
    return f"sites/{domain.lower()}/"


def object_key(domain: str, sha256: str) -> str:
    return f"{site_prefix(domain)}objects/{sha256}"


def manifest_key(domain: str, release_id: str) -> str:
    return f"{site_prefix(domain)}releases/{release_id}.json"


def shard_key(domain: str, release_id: str, number: int) -> str:
    return f"{site_prefix(domain)}releases/{release_id}/{number}.json"


def pointer_key(domain: str) -> str:
    return f"{site_prefix(domain)}{POINTER_NAME}"


def cache_policy(path: str, content_type: str) -> str:
    """How long a browser and the edge may keep a file served at its URL: content-hashed assets for a year (their
    name changes with them), HTML a minute (a new release shows within it), the rest (sitemaps, feed, robots, the
    tracking loader) five minutes."""
    if _HASHED_ASSET.match(path):
        return IMMUTABLE
    if content_type.startswith("text/html"):
        return HTML
    return SHORT


def manifest_document(domain: str, release_id: str, build_id: str, created_at: str,
                      files: dict[str, dict[str, str]], shards: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"format": FORMAT, "release_id": release_id, "domain": domain, "build_id": build_id,
            "created_at": created_at, "files": files, "shards": shards}


def pointer_document(release_id: str, manifest: str, updated_at: str) -> dict[str, Any]:
    return {"format": FORMAT, "release_id": release_id, "manifest": manifest, "updated_at": updated_at}


def shard_for(path: str, shards: list[dict[str, str]]) -> dict[str, str] | None:
    """The shard whose [first, last] holds `path` (binary search over the ordered shards), or None."""
    low, high = 0, len(shards) - 1
    while low <= high:
        middle = (low + high) // 2
        shard = shards[middle]
        if path < shard["first"]:
            high = middle - 1
        elif path > shard["last"]:
            low = middle + 1
        else:
            return shard
    return None
