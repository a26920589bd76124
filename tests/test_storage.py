"""Object storage against a real S3 server: moto's server mode (`ThreadedMotoServer`) on loopback, spoken to over HTTP
by the same boto3 code that talks to R2 in production. Each test gets a bucket of its own."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from spark_resources.providers.http import AuthenticationError, ProviderError, TransientProviderError
from spark_resources.storage import (
    ObjectStorage,
    ObjectStorageResource,
    guess_content_type,
    storage_error,
)

KEY = "testing"  # moto accepts any keys unless IAM authentication is switched on
REGION = "us-east-1"  # moto requires a location constraint for any other region, and R2's "auto" is not one


def _storage(endpoint: str, bucket: str | None = None, **kwargs) -> ObjectStorage:
    kwargs.setdefault("access_key_id", KEY)
    kwargs.setdefault("secret_access_key", KEY)
    return ObjectStorage(
        endpoint, bucket or f"test-{uuid.uuid4().hex[:12]}", region_name=REGION, connect_timeout=1.0, read_timeout=5.0,
        max_attempts=2, **kwargs,
    )


@pytest.fixture
def storage(s3_endpoint: str) -> Iterator[ObjectStorage]:
    client = _storage(s3_endpoint, public_base_url="https://sites.example/")
    assert client.ensure_bucket() is True
    yield client
    client.close()


@pytest.fixture
def raw(s3_endpoint: str):
    """A plain boto3 client, to check what the server holds independently of the code under test."""
    return boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=KEY, aws_secret_access_key=KEY,
                        region_name=REGION)


def _calls(storage: ObjectStorage, operation: str) -> list[dict]:
    """Records the parameters of every `operation` request the client sends (botocore's event hooks; nothing mocked)."""
    seen: list[dict] = []
    storage._s3.meta.events.register(f"provide-client-params.s3.{operation}", lambda params, **_: seen.append(params))
    return seen


def test_put_and_get_round_trip_with_headers(storage: ObjectStorage, raw, tmp_path: Path):
    body = b"<!doctype html><title>Roofing</title>"
    etag = storage.put_bytes("demo.example/index.html", body, "text/html; charset=utf-8", "public, max-age=300")
    assert etag == hashlib.md5(body).hexdigest()
    assert storage.get_bytes("demo.example/index.html") == body
    head = raw.head_object(Bucket=storage.bucket, Key="demo.example/index.html")
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert head["CacheControl"] == "public, max-age=300"
    assert storage.public_url("demo.example/index.html") == "https://sites.example/demo.example/index.html"

    expected = {
        "sitemap.xml": "application/xml; charset=utf-8",
        "robots.txt": "text/plain; charset=utf-8",
        "data.json": "application/json",
        "site.css": "text/css; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "page.html": "text/html; charset=utf-8",
    }
    for name, content_type in expected.items():
        (tmp_path / name).write_bytes(name.encode())
        storage.put_file(f"demo.example/{name}", tmp_path / name)
        assert raw.head_object(Bucket=storage.bucket, Key=f"demo.example/{name}")["ContentType"] == content_type
    assert guess_content_type("logo.png") == "image/png"
    assert guess_content_type("no-suffix") == "application/octet-stream"

    with pytest.raises(ProviderError) as missing:
        storage.get_bytes("demo.example/nope.html")
    assert missing.value.code == "NoSuchKey" and not isinstance(missing.value, TransientProviderError)
    assert storage.ensure_bucket() is False  # already there


def test_list_objects_follows_every_page(storage: ObjectStorage):
    for i in range(7):
        storage.put_bytes(f"a.example/page-{i}.html", b"x" * i, "text/html")
    storage.put_bytes("b.example/index.html", b"other site", "text/html")
    requests = _calls(storage, "ListObjectsV2")

    listed = storage.list_objects("a.example/", page_size=3)

    assert sorted(listed) == [f"a.example/page-{i}.html" for i in range(7)]
    assert len(requests) == 3 and all(r["MaxKeys"] == 3 for r in requests)
    info = listed["a.example/page-4.html"]
    assert info.size == 4 and info.etag == hashlib.md5(b"xxxx").hexdigest() and info.last_modified.tzinfo
    assert len(storage.list_objects("")) == 8


def test_delete_keys_in_batches_of_1000(storage: ObjectStorage):
    real = [f"a.example/{i}.html" for i in range(3)]
    for key in real:
        storage.put_bytes(key, b"x", "text/html")
    storage.put_bytes("b.example/index.html", b"keep", "text/html")
    requests = _calls(storage, "DeleteObjects")
    keys = real + [f"a.example/gone-{i}.html" for i in range(2_497)]  # absent keys count as deleted, as on S3

    assert storage.delete_keys(keys) == 2_500

    assert [len(r["Delete"]["Objects"]) for r in requests] == [1000, 1000, 500]
    assert list(storage.list_objects("")) == ["b.example/index.html"]
    assert storage.delete_keys([]) == 0 and len(requests) == 3


def test_sync_prefix_uploads_changes_and_deletes_stale_keys_last(storage: ObjectStorage, raw, tmp_path: Path):
    (tmp_path / "about.html").write_bytes(b"<h1>About</h1>")
    site = {
        "index.html": b"<h1>Home</h1>",
        "about/index.html": tmp_path / "about.html",
        "sitemap.xml": b"<urlset/>",
        "robots.txt": b"User-agent: *",
    }
    # another site whose name extends this one: the prefix is a directory, so it is never touched
    storage.put_bytes("a.example.org/index.html", b"neighbour", "text/html")
    neighbour = storage.list_objects("a.example.org/")

    first = storage.sync_prefix("a.example", site, cache_control=lambda name: "no-cache" if ".htm" in name else None)
    assert first.counts == {"uploaded": 4, "unchanged": 0, "deleted": 0}
    head = raw.head_object(Bucket=storage.bucket, Key="a.example/about/index.html")
    assert head["ContentType"] == "text/html; charset=utf-8" and head["CacheControl"] == "no-cache"
    sitemap = raw.head_object(Bucket=storage.bucket, Key="a.example/sitemap.xml")
    assert sitemap["ContentType"] == "application/xml; charset=utf-8" and "CacheControl" not in sitemap

    assert storage.sync_prefix("a.example/", site).counts == {"uploaded": 0, "unchanged": 4, "deleted": 0}

    site["index.html"] = b"<h1>Home, new</h1>"
    changed = storage.sync_prefix("a.example", site)
    assert changed.uploaded == ("a.example/index.html",) and len(changed.unchanged) == 3
    assert storage.get_bytes("a.example/index.html") == b"<h1>Home, new</h1>"

    del site["robots.txt"]
    site["contact.html"] = b"<h1>Contact</h1>"
    order: list[str] = []
    for operation in ("PutObject", "DeleteObjects"):
        storage._s3.meta.events.register(f"before-call.s3.{operation}", lambda op=operation, **_: order.append(op))
    removed = storage.sync_prefix("a.example", site)
    assert removed.uploaded == ("a.example/contact.html",) and removed.deleted == ("a.example/robots.txt",)
    assert order == ["PutObject", "DeleteObjects"]  # uploads first, deletions last
    assert sorted(storage.list_objects("a.example/")) == [
        "a.example/about/index.html", "a.example/contact.html", "a.example/index.html", "a.example/sitemap.xml"
    ]
    assert storage.list_objects("a.example.org/") == neighbour

    with pytest.raises(ValueError):
        storage.sync_prefix("/", site)


def test_sync_prefix_deletes_nothing_when_an_upload_fails(storage: ObjectStorage, s3_endpoint: str, iam_user):
    storage.sync_prefix("a.example", {"index.html": b"v1", "old.html": b"old"})
    # a deployer the server lets write every page but one: that upload fails halfway through the sync
    bucket = f"arn:aws:s3:::{storage.bucket}"
    key_id, secret = iam_user({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [bucket, f"{bucket}/*"]},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"{bucket}/a.example/forbidden.html"},
    ]})
    deployer = _storage(s3_endpoint, storage.bucket, access_key_id=key_id, secret_access_key=secret)
    pages = {"index.html": b"v2", "forbidden.html": b"?", "new.html": b"new"}
    with enforced_auth(s3_endpoint), pytest.raises(AuthenticationError) as failed:
        deployer.sync_prefix("a.example", pages, max_workers=1)
    assert failed.value.code == "AccessDenied"
    assert "a.example/old.html" in storage.list_objects("a.example/")  # stale page kept: the deploy did not finish
    assert storage.get_bytes("a.example/index.html") == b"v2"  # uploaded before the failure

    result = storage.sync_prefix("a.example", pages)  # the retried deploy finishes the job
    assert "a.example/forbidden.html" in result.uploaded and "a.example/index.html" in result.unchanged
    assert result.deleted == ("a.example/old.html",)


def test_missing_bucket_is_a_provider_error_with_the_s3_code(s3_endpoint: str):
    storage = _storage(s3_endpoint, bucket="no-such-bucket-here")
    calls = (lambda: storage.put_bytes("a.example/index.html", b"x", "text/html"), lambda: storage.list_objects("a"))
    for call in calls:
        with pytest.raises(ProviderError) as missing:
            call()
        error = missing.value
        assert error.code == "NoSuchBucket" and error.status == 404
        assert not isinstance(error, (TransientProviderError, AuthenticationError))
        assert "no-such-bucket-here" in str(error) and "does not exist" in str(error)


def test_resource_reads_keys_from_the_environment(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("R2_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("R2_SECRET_ACCESS_KEY", raising=False)
    resource = ObjectStorageResource(endpoint_url=s3_endpoint, bucket=f"env-{uuid.uuid4().hex[:8]}", region_name=REGION)
    with pytest.raises(ProviderError, match="R2_ACCESS_KEY_ID"):
        resource.get_client()
    monkeypatch.setenv("R2_ACCESS_KEY_ID", "env-key-id")
    with pytest.raises(ProviderError, match="R2_SECRET_ACCESS_KEY") as no_secret:
        resource.get_client()
    assert "env-key-id" not in str(no_secret.value)

    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "env-secret")
    client = resource.get_client()
    assert client.ensure_bucket() is True
    assert client.put_bytes("a.example/index.html", b"ok", "text/html")

    r2 = ObjectStorageResource(account_id="0123abcd", bucket="sites").get_client()
    assert r2.endpoint_url == "https://0123abcd.r2.cloudflarestorage.com"
    with pytest.raises(ProviderError, match="endpoint_url or account_id"):
        ObjectStorageResource(bucket="sites").get_client()


@pytest.fixture
def iam_user(s3_endpoint: str):
    """Creates an IAM user on the server with a key pair and an inline policy (none: nothing allowed); its keys."""
    iam = boto3.client("iam", endpoint_url=s3_endpoint, aws_access_key_id=KEY, aws_secret_access_key=KEY,
                       region_name=REGION)

    def create(policy: dict | None = None) -> tuple[str, str]:
        user = f"deployer-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        if policy:
            iam.put_user_policy(UserName=user, PolicyName="sites", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    return create


@contextmanager
def enforced_auth(endpoint: str) -> Iterator[None]:
    """moto's IAM authentication on for every request (its `/moto-api/reset-auth` endpoint), off again afterwards."""

    def reset_auth(count: str) -> None:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(),
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request).close()

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


def test_bad_credentials_are_authentication_errors_without_the_secret(s3_endpoint: str, iam_user):
    key_id, secret = iam_user()
    wrong_secret = "wrong-secret-" + uuid.uuid4().hex
    unknown_key = "AKIAUNKNOWN000000000"
    cases = {
        "SignatureDoesNotMatch": _storage(s3_endpoint, access_key_id=key_id, secret_access_key=wrong_secret),
        "InvalidAccessKeyId": _storage(s3_endpoint, access_key_id=unknown_key, secret_access_key=wrong_secret),
        "AccessDenied": _storage(s3_endpoint, access_key_id=key_id, secret_access_key=secret),  # signed, not allowed
    }
    for code, storage in cases.items():
        with enforced_auth(s3_endpoint), pytest.raises(AuthenticationError) as denied:
            storage.put_bytes("a.example/index.html", b"x", "text/html")
        assert denied.value.code == code and denied.value.status == 403
        assert wrong_secret not in str(denied.value) and secret not in str(denied.value)


def test_error_mapping_of_s3_responses():
    def client_error(code: str, status: int, retries: int = 0) -> ClientError:
        response = {"Error": {"Code": code, "Message": f"{code} says no"},
                    "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries}}
        return ClientError(response, "PutObject")  # type: ignore[arg-type]

    slow = storage_error(client_error("SlowDown", 503, retries=3), "PutObject b/k")
    assert isinstance(slow, TransientProviderError) and slow.code == "SlowDown" and "4 attempt(s)" in str(slow)
    assert isinstance(storage_error(client_error("InternalError", 500), "x"), TransientProviderError)
    assert isinstance(storage_error(client_error("AccessDenied", 403), "x"), AuthenticationError)
    other = storage_error(client_error("InvalidRange", 416), "x")
    assert type(other) is ProviderError and other.code == "InvalidRange" and "InvalidRange says no" in str(other)


def test_unreachable_endpoint_is_transient_and_fails_fast():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = ObjectStorage(f"http://127.0.0.1:{port}", "sites", KEY, KEY, region_name=REGION, connect_timeout=0.5,
                            read_timeout=0.5, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(TransientProviderError) as unreachable:
        storage.get_bytes("a.example/index.html")
    assert unreachable.value.code == "network" and "EndpointConnectionError" in str(unreachable.value)
    assert time.monotonic() - started < 3
