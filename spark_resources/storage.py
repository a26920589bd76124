"""S3-compatible object storage for the generated static sites: Cloudflare R2 in production
(../shared/contracts/PROVIDERS.md, section 1, "R2").

Each site lives under a prefix of one bucket (`<domain>/index.html`, `<domain>/sitemap.xml`, ...). `ObjectStorage` is a
thin client over boto3's S3 client with what deploying a site needs: put, get, list, batch delete and `sync_prefix`,
which uploads what changed and removes what is gone.

Retries are botocore's own "standard" retry mode, the maintained retry policy for S3 (throttling such as `SlowDown`,
5xx, connection errors and timeouts; exponential back-off with jitter), not `providers.http.with_retries`. Whatever is
left when its attempts run out is raised as the shared `ProviderError` family: `AuthenticationError` for bad credentials
or missing permission, `TransientProviderError` for throttling, server and network faults, `ProviderError` otherwise,
each carrying the S3 error `Code` and `Message`. Messages are built from those and from the operation, never from the
request, so they cannot contain the secret key.

The tests run this same code over real HTTP against moto's S3 server (`moto.server.ThreadedMotoServer`) on loopback:
only `endpoint_url` and the (fake) keys differ from production.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mimetypes
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from dagster import ConfigurableResource
from pydantic import Field

from spark_resources.providers.http import AuthenticationError, ProviderError, TransientProviderError
from spark_resources.secrets import Secret

PROVIDER = "object storage"
ACCESS_KEY_VARIABLE = "R2_ACCESS_KEY_ID"
SECRET_KEY_VARIABLE = "R2_SECRET_ACCESS_KEY"
#: S3's limits: keys per ListObjectsV2 page and per DeleteObjects request
MAX_PAGE_SIZE = 1000
MAX_DELETE_BATCH = 1000

_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
               "Unauthorized", "AllAccessDisabled"}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "RequestLimitExceeded",
                    "InternalError", "ServiceUnavailable", "RequestTimeout"}
#: charset-explicit types for what a static site holds; anything else comes from `mimetypes`
_SITE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str  # without the quotes; the content's MD5 unless the object was uploaded in parts ("<md5>-<parts>")
    last_modified: datetime


@dataclass(frozen=True)
class SyncResult:
    """Full keys uploaded (new or changed), left as they were, and deleted (no longer in the site)."""

    uploaded: tuple[str, ...]
    unchanged: tuple[str, ...]
    deleted: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {"uploaded": len(self.uploaded), "unchanged": len(self.unchanged), "deleted": len(self.deleted)}


class ConditionFailed(ProviderError):
    """A conditional write (If-Match / If-None-Match) found the object changed or present: nothing was written."""


class DeleteError(ProviderError):
    """Some keys of a `delete_keys` call were not deleted: `errors` maps each to its (S3 code, message)."""

    def __init__(self, errors: dict[str, tuple[str, str]], deleted: int):
        self.errors = errors
        self.deleted = deleted
        first_key, (code, message) = next(iter(errors.items()))
        super().__init__(PROVIDER, f"{len(errors)} key(s) not deleted, e.g. {first_key}: {message}", code=code)


def guess_content_type(name: str) -> str:
    """The Content-Type for a file name: text types carry `charset=utf-8`; unknown ones `application/octet-stream`."""
    suffix = Path(name).suffix.lower()
    if suffix in _SITE_TYPES:
        return _SITE_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def storage_error(exc: Exception, operation: str, *, attempts: int | None = None) -> ProviderError:
    """The ProviderError for a botocore failure: built from the S3 error Code and Message, never from the request."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error") or {}
        meta = exc.response.get("ResponseMetadata") or {}
        status = meta.get("HTTPStatusCode")
        code = str(error.get("Code") or status or "unknown")
        message = f"{operation}: {error.get('Message') or code}"
        if code in _AUTH_CODES or status == 401:
            return AuthenticationError(PROVIDER, message, code=code, status=status)
        if code in _TRANSIENT_CODES or status == 429 or (status or 0) >= 500:
            tries = int(meta.get("RetryAttempts") or 0) + 1
            return TransientProviderError(PROVIDER, f"{message} (gave up after {tries} attempt(s))", code=code,
                                          status=status)
        return ProviderError(PROVIDER, message, code=code, status=status)
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        tries = f" after {attempts} attempt(s)" if attempts else ""
        return TransientProviderError(PROVIDER, f"{operation}: {type(exc).__name__}{tries}", code="network")
    raise TypeError(f"not a storage failure: {type(exc).__name__}")


class ObjectStorage:
    """One bucket of an S3-compatible store. Keys are full object keys (`<domain>/about/index.html`)."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        access_key_id: str,
        secret_access_key: "str | Secret",
        *,
        region_name: str = "auto",
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 4,
        public_base_url: str | None = None,
    ):
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self._region = region_name
        self._max_attempts = max_attempts
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=(
                secret_access_key.reveal() if isinstance(secret_access_key, Secret) else secret_access_key
            ),
            region_name=region_name,
            config=Config(
                # total_max_attempts counts the first request too ("max_attempts" alone would count retries only)
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            ),
        )

    def close(self) -> None:
        self._s3.close()

    def public_url(self, key: str) -> str | None:
        """Where `key` is served from, when the bucket has a public base URL (for logs and metadata)."""
        return f"{self.public_base_url}/{key}" if self.public_base_url else None

    # --- bucket ---------------------------------------------------------------------------------------------------

    def ensure_bucket(self) -> bool:
        """Create the bucket unless it exists; True when it was created. Already owned by us counts as done."""
        try:
            with self._errors("HeadBucket"):
                self._s3.head_bucket(Bucket=self.bucket)
            return False
        except ProviderError as exc:
            if exc.status != 404:
                raise
        # R2 (region "auto") and us-east-1 take no location constraint; any other AWS-style region requires one
        extra: dict[str, Any] = {}
        if self._region not in ("auto", "us-east-1"):
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            with self._errors("CreateBucket"):
                self._s3.create_bucket(Bucket=self.bucket, **extra)
            return True
        except ProviderError as exc:
            if exc.code != "BucketAlreadyOwnedByYou":
                raise
            return False

    # --- objects --------------------------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str, cache_control: str | None = None, *,
                  if_match: str | None = None, if_none_match: bool = False) -> str:
        """Store `data` at `key` (replacing it); the new ETag, without quotes. Conditional (R2 and S3 honour both):
        `if_match=etag` writes only over that version, `if_none_match=True` only where nothing is; otherwise
        `ConditionFailed` (HTTP 412), and nothing is written."""
        extra: dict[str, Any] = {"CacheControl": cache_control} if cache_control else {}
        if if_match is not None:
            extra["IfMatch"] = f'"{if_match}"'
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        try:
            with self._errors("PutObject", key):
                response = self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                               **extra)
        except ProviderError as exc:
            if exc.status == 412 or exc.code in ("PreconditionFailed", "412"):
                raise ConditionFailed(PROVIDER, str(exc.provider_message), code=exc.code, status=412) from None
            raise
        return response["ETag"].strip('"')

    def exists(self, key: str) -> bool:
        """Whether the key holds an object (HeadObject: nothing downloaded)."""
        try:
            with self._errors("HeadObject", key):
                self._s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ProviderError as exc:
            if exc.status == 404 or exc.code in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag (without quotes), or None when there is no such key."""
        try:
            with self._errors("GetObject", key):
                response = self._s3.get_object(Bucket=self.bucket, Key=key)
                return response["Body"].read(), response["ETag"].strip('"')
        except ProviderError as exc:
            if exc.status == 404 or exc.code in ("NoSuchKey", "404"):
                return None
            raise

    def put_file(
        self, key: str, path: str | Path, content_type: str | None = None, cache_control: str | None = None
    ) -> str:
        """Store a local file at `key`, its Content-Type guessed from the file name unless given; the new ETag."""
        path = Path(path)
        return self.put_bytes(key, path.read_bytes(), content_type or guess_content_type(path.name), cache_control)

    def get_bytes(self, key: str) -> bytes:
        with self._errors("GetObject", key):
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def list_objects(self, prefix: str = "", *, page_size: int = MAX_PAGE_SIZE) -> dict[str, ObjectInfo]:
        """Every object whose key starts with `prefix`, page by page (S3 returns at most 1000 keys per page)."""
        paginator = self._s3.get_paginator("list_objects_v2")
        found: dict[str, ObjectInfo] = {}
        with self._errors("ListObjectsV2", prefix):
            pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size})
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"]] = ObjectInfo(int(item["Size"]), item["ETag"].strip('"'), item["LastModified"])
        return found

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Delete `keys` in batches of 1000 (S3's DeleteObjects limit); how many were deleted. Keys that do not exist
        count as deleted (S3's semantics). Every batch is attempted; keys S3 refused are then raised together as a
        `DeleteError` naming each key with its code and message."""
        pending = list(dict.fromkeys(keys))
        deleted = 0
        errors: dict[str, tuple[str, str]] = {}
        for start in range(0, len(pending), MAX_DELETE_BATCH):
            batch = pending[start : start + MAX_DELETE_BATCH]
            with self._errors("DeleteObjects", batch[0]):
                response = self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": False}
                )
            deleted += len(response.get("Deleted", []))
            for error in response.get("Errors", []):
                errors[error["Key"]] = (error.get("Code", "unknown"), error.get("Message", ""))
        if errors:
            raise DeleteError(errors, deleted)
        return deleted

    # --- sites ----------------------------------------------------------------------------------------------------

    def sync_prefix(
        self,
        prefix: str,
        files: Mapping[str, bytes | Path],
        *,
        content_types: Mapping[str, str] | None = None,
        cache_control: str | Callable[[str], str | None] | None = None,
        max_workers: int = 8,
    ) -> SyncResult:
        """Make the objects under `prefix` exactly `files` (path relative to the prefix -> content or local file).

        A file is uploaded when its key is new or its MD5 differs from the listed ETag (objects uploaded in parts have
        no MD5 ETag and are always uploaded again). A change of Content-Type or Cache-Control alone is not detected.
        `content_types` overrides the guess from the file name, per relative path; `cache_control` is one value for
        every file or a function of the relative path.

        Order: every new or changed file is uploaded first, and stale keys are deleted only once all uploads have
        succeeded. A failure halfway leaves the previous version's pages in place (some possibly already updated),
        never a site missing pages it had. The prefix is a directory (a "/" is added) and may not be empty, so a sync
        never touches another site's keys.
        """
        prefix = prefix.strip("/")
        if not prefix:
            raise ValueError("sync_prefix needs a non-empty prefix: an empty one would cover every site in the bucket")
        prefix += "/"
        for name in files:
            if not name or name.startswith("/"):
                raise ValueError(f"file paths are relative to the prefix: {name!r}")
        existing = self.list_objects(prefix)
        contents = {name: value.read_bytes() if isinstance(value, Path) else value for name, value in files.items()}
        changed = [
            name for name, data in contents.items()
            if (info := existing.get(prefix + name)) is None or info.etag != _md5(data)
        ]

        def upload(name: str) -> str:
            control = cache_control(name) if callable(cache_control) else cache_control
            content_type = (content_types or {}).get(name) or guess_content_type(name)
            self.put_bytes(prefix + name, contents[name], content_type, control)
            return prefix + name

        # boto3 clients are thread-safe. On the first failure, uploads not yet started are cancelled and it is raised
        pool = ThreadPoolExecutor(max_workers=max(1, max_workers))
        try:
            uploaded = tuple(pool.map(upload, changed))
        finally:
            pool.shutdown(cancel_futures=True)
        stale = sorted(set(existing) - {prefix + name for name in contents})
        if stale:
            self.delete_keys(stale)
        unchanged = tuple(sorted(prefix + name for name in contents.keys() - set(changed)))
        return SyncResult(uploaded=uploaded, unchanged=unchanged, deleted=tuple(stale))

    # --- errors ---------------------------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        target = f"{operation} {self.bucket}/{key}" if key is not None else f"{operation} {self.bucket}"
        try:
            yield
        except (ClientError, BotoConnectionError, HTTPClientError) as exc:
            raise storage_error(exc, target, attempts=self._max_attempts) from None


class ObjectStorageResource(ConfigurableResource):
    """Where the sites are published: an S3-compatible bucket, Cloudflare R2 by default. Keys come from the environment
    (R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY) unless set here; point `endpoint_url` at a local S3 server for tests.

    Retries are botocore's standard mode (`max_attempts` in all, first request included), the maintained retry policy
    for S3: throttling, 5xx, connection errors and timeouts, with exponential back-off and jitter."""

    bucket: str = Field(description="the bucket holding every site, one prefix (the domain) per site")
    account_id: str | None = Field(None, description="Cloudflare account id: builds the R2 endpoint URL")
    endpoint_url: str | None = Field(
        None, description="S3 endpoint; default https://<account_id>.r2.cloudflarestorage.com; file:///path: a local "
        "directory as the bucket (the offline demo)"
    )
    access_key_id: str | None = Field(None, description=f"default: ${ACCESS_KEY_VARIABLE}, read by get_client")
    secret_access_key: str | None = Field(None, description=f"default: ${SECRET_KEY_VARIABLE}, read by get_client")
    region_name: str = "auto"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = Field(4, description="attempts per request in all, botocore standard retry mode")
    public_base_url: str | None = Field(None, description="where the bucket is served (for logs and metadata)")

    def get_client(self) -> "ObjectStorage | DirectoryStorage":
        if self.endpoint_url and self.endpoint_url.startswith("file://"):  # the offline demo's bucket: a directory
            return DirectoryStorage(urlsplit(self.endpoint_url).path, self.bucket)
        endpoint = self.endpoint_url or (
            f"https://{self.account_id}.r2.cloudflarestorage.com" if self.account_id else None
        )
        if endpoint is None:
            raise ProviderError(PROVIDER, "no endpoint: set endpoint_url or account_id (for R2)", code="config")
        return ObjectStorage(
            endpoint,
            self.bucket,
            self.access_key_id or _from_environment(ACCESS_KEY_VARIABLE),
            Secret(self.secret_access_key or _from_environment(SECRET_KEY_VARIABLE)),
            region_name=self.region_name,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_attempts=self.max_attempts,
            public_base_url=self.public_base_url,
        )


class DirectoryStorage:
    """The bucket as a local directory (`file:///path` as the endpoint): for the offline demo and `spark ui
    --sandbox`, where releases must outlive the process that made them (`spark site serve` reads them later) and no
    S3 server runs. The same methods and semantics as `ObjectStorage` for what releases use: ETags are the content's
    MD5, conditional writes (If-Match / If-None-Match) are checked and made under an exclusive lock, a write is a
    temporary file renamed into place, keys cannot leave the directory. Not for production: R2 is."""

    def __init__(self, directory: str | Path, bucket: str = "local"):
        self.root = Path(directory)
        self.bucket = bucket
        self.endpoint_url = self.root.as_uri()
        self.public_base_url = None
        self._lock_path = self.root / ".lock"

    def close(self) -> None:
        pass

    def ensure_bucket(self) -> bool:
        created = not self.root.is_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        return created

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise ProviderError(PROVIDER, f"invalid key {key!r}", code="InvalidKey", status=400)
        return self.root.joinpath(*parts)

    def _missing(self, operation: str, key: str) -> ProviderError:
        if not self.root.is_dir():
            return ProviderError(PROVIDER, f"{operation} {self.bucket}/{key}: The specified bucket does not exist",
                                 code="NoSuchBucket", status=404)
        return ProviderError(PROVIDER, f"{operation} {self.bucket}/{key}: The specified key does not exist.",
                             code="NoSuchKey", status=404)

    def put_bytes(self, key: str, data: bytes, content_type: str, cache_control: str | None = None, *,
                  if_match: str | None = None, if_none_match: bool = False) -> str:
        path = self._path(key)
        if not self.root.is_dir():
            raise self._missing("PutObject", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self._etag(path)
            if (if_none_match and current is not None) or (if_match is not None and current != if_match):
                raise ConditionFailed(PROVIDER, f"PutObject {self.bucket}/{key}: At least one of the pre-conditions "
                                      "you specified did not hold", code="PreconditionFailed", status=412)
            temporary = path.with_name(f".{path.name}.tmp")
            temporary.write_bytes(data)
            meta = path.with_name(f".{path.name}.meta")
            meta_tmp = path.with_name(f".{path.name}.meta.tmp")
            meta_tmp.write_text(json.dumps({"content_type": content_type, "cache_control": cache_control}))
            os.replace(meta_tmp, meta)
            os.replace(temporary, path)
        return _md5(data)

    def _etag(self, path: Path) -> str | None:
        try:
            return _md5(path.read_bytes())
        except FileNotFoundError:
            return None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise self._missing("GetObject", key) from None

    def exists(self, key: str) -> bool:
        if not self.root.is_dir():
            raise self._missing("HeadObject", key)
        return self._path(key).is_file()

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            if not self.root.is_dir():
                raise self._missing("GetObject", key) from None
            return None
        return data, _md5(data)

    def list_objects(self, prefix: str = "", *, page_size: int = MAX_PAGE_SIZE) -> dict[str, ObjectInfo]:
        if not self.root.is_dir():
            raise self._missing("ListObjectsV2", prefix)
        found: dict[str, ObjectInfo] = {}
        for directory, _, names in os.walk(self.root):
            relative = os.path.relpath(directory, self.root)
            base = "" if relative == "." else relative.replace(os.sep, "/") + "/"
            for name in names:
                key = base + name
                if name.startswith(".") or not key.startswith(prefix):
                    continue
                stat = os.stat(os.path.join(directory, name))
                found[key] = ObjectInfo(stat.st_size, "", datetime.fromtimestamp(stat.st_mtime, timezone.utc))
        return found

    def delete_keys(self, keys: Iterable[str]) -> int:
        deleted = 0
        for key in dict.fromkeys(keys):
            path = self._path(key)
            for victim in (path, path.with_name(f".{path.name}.meta")):
                try:
                    victim.unlink()
                except FileNotFoundError:
                    pass
            deleted += 1
        return deleted

    def metadata(self, key: str) -> dict[str, str | None]:
        path = self._path(key)
        try:
            return json.loads(path.with_name(f".{path.name}.meta").read_text())
        except FileNotFoundError:
            return {"content_type": None, "cache_control": None}


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _from_environment(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ProviderError(PROVIDER, f"{variable} is not set (an R2 API token's S3 credentials)", code="config")
    return value


def local_bucket() -> Path:
    """The offline default bucket: a directory under $SPARK_HOME (like the embedded database)."""
    from spark_resources.database import spark_home

    return spark_home() / "bucket"


def storage_from_environment() -> ObjectStorageResource:
    """The `storage` resource as the environment configures it: SPARK_STORAGE_URL (an S3 endpoint such as a local test
    server, or `file:///path`), else R2 when R2_ACCOUNT_ID is set (R2_BUCKET, keys read when a client is made), else
    the offline default: the directory `$SPARK_HOME/bucket` (what `spark demo` releases to)."""
    endpoint = os.environ.get("SPARK_STORAGE_URL") or None
    account = os.environ.get("R2_ACCOUNT_ID") or None
    if endpoint is None and account is None:
        endpoint = local_bucket().as_uri()
    return ObjectStorageResource(account_id=account, bucket=os.environ.get("R2_BUCKET", "spark-sites"),
                                 endpoint_url=endpoint)
