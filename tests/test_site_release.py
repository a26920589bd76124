"""Releases against a real S3 server (moto's server mode on loopback, through the same boto3 client as R2): uploads by
content hash, the pointer written last and only conditionally, no-change and one-change releases, rollback, a failure
halfway, two releases racing for the pointer, garbage collection, and the `site_release` asset's records."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa
from dagster import instance_for_test, materialize

from spark_assets.release import layout, publish
from spark_assets.site.build import build_site
from spark_resources.storage import ConditionFailed, ObjectStorage, ObjectStorageResource

from .test_site_build import ARTICLES, SITE, _members

KEY = "testing"
REGION = "us-east-1"
DOMAIN = SITE.domain
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(s3_endpoint: str):
    client = ObjectStorage(s3_endpoint, f"sites-{uuid.uuid4().hex[:12]}", KEY, KEY, region_name=REGION,
                           connect_timeout=1.0, read_timeout=5.0, max_attempts=2)
    client.ensure_bucket()
    yield client
    client.close()


@pytest.fixture
def raw(s3_endpoint: str):
    """A plain boto3 client: what the server holds, checked independently of the code under test."""
    return boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=KEY, aws_secret_access_key=KEY,
                        region_name=REGION)


def _build(root: Path, articles=ARTICLES, previous=None):
    ordered = sorted(articles, key=lambda a: a.slug)
    return build_site(SITE, root, articles=lambda: iter(ordered), hub_members=lambda: iter(_members(articles)),
                      latest=ordered, previous=previous)


def _release(store, root: Path, result, release_id: str, build_id: str = "b1", now: datetime = NOW):
    return publish.release_build(store, DOMAIN, build_id, result.manifest_hash, list(result.files),
                                 lambda path: (root / path).read_bytes(), release_id, now)


def _puts(store: ObjectStorage) -> list[str]:
    """The key of every PutObject the client sends (botocore's event hooks: nothing is mocked)."""
    keys: list[str] = []
    store._s3.meta.events.register("provide-client-params.s3.PutObject", lambda params, **_: keys.append(params["Key"]))
    return keys


def _served(store: ObjectStorage, path: str) -> bytes:
    """What a visitor gets for a build path: the pointer, its manifest, the object (the Worker's lookup)."""
    pointer, _ = publish.live_pointer(store, DOMAIN)
    manifest = publish.read_manifest(store, pointer["manifest"])
    return store.get_bytes(layout.object_key(DOMAIN, manifest["files"][path]["sha256"]))


def test_a_release_uploads_each_content_once_and_goes_live_with_its_pointer(store, raw, tmp_path):
    build = _build(tmp_path / "site")
    puts = _puts(store)
    result = _release(store, tmp_path / "site", build, "r1")
    files = list(build.files)
    unique = {f.sha256 for f in files}
    assert result.live and result.files == len(files) and result.uploaded == len(unique) and result.reused == 0
    # the objects, then the manifest, then the pointer: last
    assert puts[-2:] == [layout.manifest_key(DOMAIN, "r1"), layout.pointer_key(DOMAIN)]
    assert len(puts) == len(unique) + 2
    home = next(f for f in files if f.path == "index.html")
    assert _served(store, "index.html") == (tmp_path / "site/index.html").read_bytes()
    head = raw.head_object(Bucket=store.bucket, Key=layout.object_key(DOMAIN, home.sha256))
    assert head["ContentType"] == "text/html; charset=utf-8" and head["CacheControl"] == layout.IMMUTABLE
    pointer = raw.head_object(Bucket=store.bucket, Key=layout.pointer_key(DOMAIN))
    assert pointer["CacheControl"] == layout.NO_CACHE
    css = next(f.path for f in files if f.path.endswith(".css"))
    manifest = publish.read_manifest(store, layout.manifest_key(DOMAIN, "r1"))
    assert manifest["files"][css]["cache_control"] == layout.IMMUTABLE
    assert manifest["files"]["index.html"]["cache_control"] == layout.HTML
    assert manifest["files"]["sitemap.xml"]["cache_control"] == layout.SHORT


def test_a_build_already_live_uploads_nothing_and_one_change_uploads_only_what_changed(store, tmp_path):
    root = tmp_path / "site"
    first = _build(root)
    _release(store, root, first, "r1")
    puts = _puts(store)
    again = _release(store, root, _build(root, previous={f.path: f for f in first.files}), "r2")
    assert not again.live and again.release_id == "r1" and puts == []

    changed = [replace(ARTICLES[0], title="Austin Roof Help, Revised")] + ARTICLES[1:]
    second = _build(root, changed, previous={f.path: f for f in first.files})
    before = {f.sha256 for f in first.files}
    new = {f.sha256 for f in second.files} - before
    result = _release(store, root, second, "r3", build_id="b2")
    assert result.live and result.uploaded == len(new) and 0 < len(new) <= second.written
    assert sorted(puts) == sorted([layout.object_key(DOMAIN, sha) for sha in new]
                                  + [layout.manifest_key(DOMAIN, "r3"), layout.pointer_key(DOMAIN)])
    assert result.previous_release == "r1" and result.reused == len(list(second.files)) - len(new)
    page = f"{ARTICLES[0].slug}/index.html"
    assert b"Austin Roof Help, Revised" in _served(store, page)

    # rollback: one pointer write, and the old page is served again
    puts.clear()
    assert publish.point_to(store, DOMAIN, "r1", NOW) == "r3"
    assert puts == [layout.pointer_key(DOMAIN)] and b"Revised" not in _served(store, page)
    with pytest.raises(publish.ReleaseError, match="has no release r9"):
        publish.point_to(store, DOMAIN, "r9", NOW)
    assert [r for r, _ in publish.releases(store, DOMAIN)] in (["r3", "r1"], ["r1", "r3"])


def test_an_upload_failing_halfway_leaves_the_live_release_and_the_retry_uploads_only_what_is_missing(store, tmp_path):
    root = tmp_path / "site"
    first = _build(root)
    _release(store, root, first, "r1")
    changed = [replace(a, title=a.title + " (2027)") for a in ARTICLES]
    second = _build(root, changed, previous={f.path: f for f in first.files})
    new = {f.sha256 for f in second.files} - {f.sha256 for f in first.files}
    sent: list[str] = []

    def fail_after_two(params, **_):
        if params["Key"].startswith(layout.site_prefix(DOMAIN) + "objects/"):
            sent.append(params["Key"])
            if len(sent) > 2:
                raise ConnectionError("the network went away")

    store._s3.meta.events.register("provide-client-params.s3.PutObject", fail_after_two)
    with pytest.raises(ConnectionError):
        publish.release_build(store, DOMAIN, "b2", second.manifest_hash, list(second.files),
                              lambda path: (root / path).read_bytes(), "r2", NOW, workers=1)
    store._s3.meta.events.unregister("provide-client-params.s3.PutObject", fail_after_two)
    assert publish.live_pointer(store, DOMAIN)[0]["release_id"] == "r1"
    assert b"(2027)" not in _served(store, f"{ARTICLES[0].slug}/index.html")

    retry = _release(store, root, second, "r3", build_id="b2")
    assert retry.live and retry.uploaded == len(new) - 2  # the two that made it are not sent again
    assert b"(2027)" in _served(store, f"{ARTICLES[0].slug}/index.html")


def test_two_releases_racing_for_the_pointer_cannot_both_win(store, tmp_path):
    root = tmp_path / "site"
    first = _build(root)
    _release(store, root, first, "r1")
    second = _build(tmp_path / "b", [replace(a, title=a.title + " B") for a in ARTICLES])
    third = _build(tmp_path / "c", [replace(a, title=a.title + " C") for a in ARTICLES])

    class Interleaved:
        """The store as release C sees it: right after C reads the pointer, release B runs to the end."""

        def __init__(self, inner):
            self.inner, self.raced = inner, False

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def get_versioned(self, key):
            found = self.inner.get_versioned(key)
            if key == layout.pointer_key(DOMAIN) and not self.raced:
                self.raced = True
                _release(self.inner, tmp_path / "b", second, "r2", build_id="b2")
            return found

    with pytest.raises(ConditionFailed):
        publish.release_build(Interleaved(store), DOMAIN, "b3", third.manifest_hash, list(third.files),
                              lambda path: (tmp_path / "c" / path).read_bytes(), "r3", NOW)
    assert publish.live_pointer(store, DOMAIN)[0]["release_id"] == "r2"
    assert b" B</" in _served(store, f"{ARTICLES[0].slug}/index.html")


def test_garbage_collection_keeps_the_newest_the_live_and_the_young(store, tmp_path):
    builds = []
    for n in range(4):
        root = tmp_path / f"b{n}"
        result = _build(root, [replace(a, title=f"{a.title} v{n}") for a in ARTICLES])
        _release(store, root, result, f"r{n}", build_id=f"b{n}", now=NOW + timedelta(minutes=n))
        builds.append(result)
    publish.point_to(store, DOMAIN, "r0", NOW)  # rolled back to the oldest: it is live, so it stays
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    collected = publish.collect_garbage(store, DOMAIN, keep=2, grace=timedelta(hours=1), now=later)
    assert set(collected.releases_kept) == {"r3", "r2", "r0"} and collected.releases_deleted == ("r1",)
    only_r1 = {f.sha256 for f in builds[1].files} - set().union(*({f.sha256 for f in builds[i].files} for i in (0, 2, 3)))
    stored = {k.rsplit("/", 1)[1] for k in store.list_objects(layout.site_prefix(DOMAIN) + "objects/")}
    assert only_r1 and not (only_r1 & stored)
    for i in (0, 2, 3):
        assert {f.sha256 for f in builds[i].files} <= stored
    # within the grace period nothing is collected, whatever `keep` says
    assert publish.collect_garbage(store, DOMAIN, keep=1, grace=timedelta(hours=1),
                                   now=datetime.now(timezone.utc)).releases_deleted == ()


def test_the_asset_releases_the_last_good_build_and_records_it(database, database_url, engine, s3_endpoint, tmp_path,
                                                               monkeypatch):
    from spark_assets.assets.releases import site_release
    from spark_assets.assets.sites import site_build
    from spark_assets.definitions import content_factory_assets
    from spark_resources.providers.matomo import MatomoResource

    from .test_site_build import _import, _publish

    monkeypatch.setenv("R2_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "not-a-real-secret-42")
    bucket = f"sites-{uuid.uuid4().hex[:12]}"
    storage = ObjectStorageResource(bucket=bucket, endpoint_url=s3_endpoint, region_name=REGION, max_attempts=1)
    domain = "gutters.example"
    resources = {"database": database, "storage": storage,
                 "matomo": MatomoResource(base_url="https://matomo.example/index.php")}
    with instance_for_test() as instance:
        key = _import(engine, domain, "Gutter Pros")
        materialize(content_factory_assets, selection=["locations", "avatars"], instance=instance,
                    resources={"database": database})
        _publish(database, instance, key)
        instance.add_dynamic_partitions("site", [domain])

        # no bucket yet: the release fails, says why, and the site records it without the secret
        materialize([site_build], partition_key=domain, instance=instance, resources=resources)
        failed = materialize([site_release], partition_key=domain, instance=instance, resources=resources,
                             raise_on_error=False)
        assert not failed.success
        with engine.connect() as conn:
            site = conn.execute(sa.text("SELECT status_deployment, error_message FROM sites WHERE domain = :d"),
                                {"d": domain}).one()
        assert site.status_deployment == "failed" and site.error_message.startswith(f"Release for {domain}: ")
        assert "NoSuchBucket" in site.error_message and "not-a-real-secret-42" not in site.error_message

        storage.get_client().ensure_bucket()
        first = materialize([site_release], partition_key=domain, instance=instance, resources=resources)
        meta = {k: v.value for k, v in first.get_asset_materialization_events()[0].materialization.metadata.items()}
        again = materialize([site_release], partition_key=domain, instance=instance, resources=resources)
        meta2 = {k: v.value for k, v in again.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert meta["objects_uploaded"] > 0 and meta["already_live"] is False and meta["live_url"] == f"https://{domain}/"
    assert meta2["already_live"] is True and meta2["objects_uploaded"] == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            """SELECT d.status, d.release_id, d.objects_uploaded, d.build_id IS NOT NULL AS has_build
               FROM site_deployments d JOIN sites s ON s.id = d.site_id WHERE s.domain = :d
               ORDER BY d.date_created"""), {"d": domain}).all()
        site = conn.execute(sa.text("SELECT status_deployment, error_message FROM sites WHERE domain = :d"),
                            {"d": domain}).one()
    assert [r.status for r in rows] == ["failed", "deployed", "deployed"]
    assert rows[1].release_id == meta["release_id"] and rows[2].release_id is None and rows[1].has_build
    assert site.status_deployment == "deployed" and site.error_message is None
    client = storage.get_client()
    pointer, _ = publish.live_pointer(client, domain)
    assert pointer["release_id"] == meta["release_id"]
    assert json.loads(client.get_bytes(pointer["manifest"]))["domain"] == domain

    # what a visitor sees, served from the bucket with the Worker's lookup; then a change released, and rolled back
    from click.testing import CliRunner

    from spark_assets.ops.cli import main
    from spark_assets.ops.site_ops import ReleaseSource, serve_in_background

    monkeypatch.setenv("DATABASE_URL", database_url)  # the CLI's database
    monkeypatch.setenv("SPARK_STORAGE_URL", s3_endpoint)
    monkeypatch.setenv("R2_BUCKET", bucket)
    monkeypatch.setattr(ReleaseSource, "POINTER_SECONDS", 0.0)
    server, _ = serve_in_background(ReleaseSource(client, domain))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with engine.connect() as conn:
            slug = conn.execute(sa.text("""SELECT a.slug FROM generated_articles a JOIN sites s ON s.id = a.site_id
                                           WHERE s.domain = :d AND a.is_published ORDER BY a.slug LIMIT 1"""),
                                {"d": domain}).scalar_one()
        with urllib.request.urlopen(f"{base}/{slug}/") as answer:
            assert answer.status == 200 and answer.headers["Cache-Control"] == layout.HTML
            before = answer.read()
        with urllib.request.urlopen(f"{base}/texas/") as answer:
            assert answer.status == 200 and b"Texas" in answer.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/no-such-page/")
        assert missing.value.code == 404 and b"Page not found" in missing.value.read()

        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE generated_articles SET title = title || ' (2027 edition)', "
                                 "content_updated_at = now() WHERE slug = :s"), {"s": slug})
        with instance_for_test() as instance:
            instance.add_dynamic_partitions("site", [domain])
            materialize([site_build, site_release], partition_key=domain, instance=instance, resources=resources)
        with urllib.request.urlopen(f"{base}/{slug}/") as answer:
            assert b"(2027 edition)" in answer.read()
        runner = CliRunner()
        rolled = runner.invoke(main, ["site", "rollback", domain])
        assert rolled.exit_code == 0, rolled.output
        assert f"{meta['release_id']} is live" in rolled.output
        with urllib.request.urlopen(f"{base}/{slug}/") as answer:
            assert answer.read() == before
        listed = runner.invoke(main, ["site", "releases", domain])
        assert listed.exit_code == 0 and f"live: {meta['release_id']}" in listed.output
        assert "rollback" in listed.output and "already live" in listed.output
    finally:
        server.shutdown()
        server.server_close()


def test_the_demos_directory_bucket_behaves_as_the_s3_server_does_for_releases(tmp_path):
    """`file://` storage (the offline demo's bucket, which outlives the demo's process): the same releases, the same
    conditional pointer writes, the same refusals."""
    from spark_resources.storage import DirectoryStorage, ObjectStorageResource

    store = ObjectStorageResource(bucket="demo", endpoint_url=(tmp_path / "bucket").as_uri()).get_client()
    assert isinstance(store, DirectoryStorage)
    root = tmp_path / "site"
    first = _build(root)
    with pytest.raises(Exception, match="NoSuchBucket"):
        _release(store, root, first, "r1")
    store.ensure_bucket()
    assert _release(store, root, first, "r1").uploaded == len({f.sha256 for f in first.files})
    assert not _release(store, root, first, "r2").live
    changed = [replace(ARTICLES[0], title="Austin Roof Help, Revised")] + ARTICLES[1:]
    second = _build(root, changed, previous={f.path: f for f in first.files})
    result = _release(store, root, second, "r3", build_id="b2")
    assert result.live and 0 < result.uploaded < result.files
    assert b"Revised" in _served(store, f"{ARTICLES[0].slug}/index.html")
    assert store.metadata(layout.pointer_key(DOMAIN))["cache_control"] == layout.NO_CACHE
    _, etag = store.get_versioned(layout.pointer_key(DOMAIN))
    publish.point_to(store, DOMAIN, "r1", NOW)
    with pytest.raises(ConditionFailed):  # the pointer moved since that ETag was read
        store.put_bytes(layout.pointer_key(DOMAIN), b"{}", "application/json", if_match=etag)
    with pytest.raises(ConditionFailed):
        store.put_bytes(layout.manifest_key(DOMAIN, "r1"), b"{}", "application/json", if_none_match=True)
    assert b"Revised" not in _served(store, f"{ARTICLES[0].slug}/index.html")
    with pytest.raises(Exception, match="invalid key"):
        store.put_bytes("sites/../../etc/passwd", b"x", "text/plain")
    collected = publish.collect_garbage(store, DOMAIN, keep=1, grace=timedelta(0),
                                        now=datetime.now(timezone.utc) + timedelta(seconds=1))
    assert set(collected.releases_kept) == {"r3", "r1"} and collected.releases_deleted == ()  # the newest, the live


def test_a_large_release_lists_its_files_in_shards_that_the_lookup_reads_one_at_a_time(store, tmp_path, monkeypatch):
    from spark_assets.release import lookup

    monkeypatch.setattr(layout, "SHARD_FILES", 4)
    root = tmp_path / "site"
    build = _build(root)
    _release(store, root, build, "r1")
    top = json.loads(store.get_bytes(layout.manifest_key(DOMAIN, "r1")))
    files = sorted(f.path for f in build.files)
    assert top["files"] == {} and len(top["shards"]) == -(-len(files) // 4)
    assert [s["first"] for s in top["shards"]] == files[::4] and top["shards"][-1]["last"] == files[-1]
    loaded: list[str] = []
    view = lookup.ManifestView(top, lambda key: loaded.append(key) or json.loads(store.get_bytes(key)))
    page = f"{ARTICLES[0].slug}/index.html"
    found = lookup.resolve(f"/{ARTICLES[0].slug}/", view.has)
    assert found.status == 200 and found.path == page and len(loaded) == 1
    assert store.get_bytes(layout.object_key(DOMAIN, view.entry(page)["sha256"])) == (root / page).read_bytes()
    assert publish.read_manifest(store, layout.manifest_key(DOMAIN, "r1"))["files"].keys() == set(files)
