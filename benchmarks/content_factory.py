"""Benchmark: one campaign of N articles from imported blueprint to committed rows, against raw PostgreSQL COPY.

    .venv/bin/python benchmarks/content_factory.py --articles 50000
    .venv/bin/python benchmarks/content_factory.py --articles 500000 --stages permutations,headlines

The campaign is the demo blueprint, scaled: more personas and patterns per geo target so N fits the ~3,400 cities of the
dataset. Each stage runs as the assets do (same functions, one transaction per stage). Then the article rows are exported
with COPY TO and, after deleting them, loaded again with COPY FROM: the same bytes with no generation, which is the
floor. The last line printed is one JSON object: articles, seconds (geo to articles), articles_seconds, copy_seconds,
ratio (articles_seconds / copy_seconds), content_fingerprint (md5 over
the articles' content hashes: a speed change that keeps it kept the articles byte for byte), peak_rss_mb (of this process, all stages), and per-stage times.

Runs on the embedded server in a temporary SPARK_HOME unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def scaled_blueprint(articles: int) -> tuple[dict, int]:
    """The demo blueprint with personas x patterns per geo target raised so `articles` needs at most ~2,000 cities."""
    data = yaml.safe_load((REPO / "examples" / "demo-roofing.yaml").read_text())
    per_geo_needed = max(1, math.ceil(articles / 2000))
    avatars, patterns = data["avatars"], data["patterns"]
    # more variants per avatar, then more patterns, until one geo target holds enough permutations
    variant_copies = 1
    while sum(len(a["variants"]) for a in avatars) * variant_copies * len(patterns) < per_geo_needed and variant_copies < 8:
        variant_copies += 1
    for avatar in avatars:
        base = list(avatar["variants"])
        avatar["variants"] = [
            {**v, "slug": f"{v['slug']}-v{i}" if i else v["slug"], "name": f"{v['name']} {i}" if i else v["name"]}
            for i in range(variant_copies) for v in base
        ]
    personas = sum(len(a["variants"]) for a in avatars)
    pattern_copies = max(1, math.ceil(per_geo_needed / (personas * len(patterns))))
    data["patterns"] = [
        {**p, "slug": f"{p['slug']}-p{i}" if i else p["slug"]} for i in range(pattern_copies) for p in patterns
    ]
    per_geo = personas * len(data["patterns"])
    geos = math.ceil(articles / per_geo)
    # the headline must vary with everything that varies within one place
    data["headline_spintax_root"] = (
        "{Roof Repair|Roof Replacement|Roofing Help|Roof Inspections|Roof Leak Repair|Roofers} in {{city}}, "
        "{{state_code}} for {the|a|every} {{variant}}"
    )
    data["location"] = {"mode": "city", "min_population": 0, "limit": geos}
    data["slug"] = "benchmark"
    return data, geos * per_geo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--stages", default="permutations,headlines,articles",
                        help="comma-separated: permutations, headlines, articles (copy runs with articles)")
    args = parser.parse_args()
    stages = set(args.stages.split(","))

    home = Path(tempfile.mkdtemp(prefix="spark-bench-"))
    os.environ.setdefault("SPARK_HOME", str(home))
    try:
        result = run(args.articles, stages)
    finally:
        from spark_resources.database import stop_embedded_servers

        stop_embedded_servers()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


def run(articles: int, stages: set[str]) -> dict:
    from dagster import materialize

    from spark_assets.assets.generation import (
        ArticleStats,
        load_inputs,
        write_articles,
        write_headlines,
        write_permutations,
    )
    from spark_assets.content.blueprint import parse_blueprint
    from spark_assets.definitions import content_factory_assets
    from spark_assets.records.registry import add_site, import_campaign
    from spark_resources.database import DatabaseResource, get_engine

    data, expected = scaled_blueprint(articles)
    engine = get_engine()
    database = DatabaseResource()
    with engine.begin() as conn:
        site, _ = add_site(conn, "bench.example", "Bench Roofing")
        campaign, _ = import_campaign(conn, site.domain, parse_blueprint(yaml.safe_dump(data)))
    key = campaign.partition_key
    timings: dict[str, float] = {}

    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("campaign", [key])
        for name, partition in (("locations", None), ("avatars", None), ("campaign_blueprint", key)):
            materialize(content_factory_assets, selection=[name], partition_key=partition, instance=instance,
                        resources={"database": database})
        started = time.perf_counter()
        materialize(content_factory_assets, selection=["campaign_geo"], partition_key=key, instance=instance,
                    resources={"database": database})
        timings["campaign_geo"] = time.perf_counter() - started

    def timed(name: str, work) -> None:
        started = time.perf_counter()
        with engine.begin() as conn:
            work(conn)
        timings[name] = time.perf_counter() - started
        print(f"{name}: {timings[name]:.2f}s", file=sys.stderr)

    counts: dict[str, int] = {}
    if "permutations" in stages:
        timed("permutations", lambda conn: counts.__setitem__("permutations", write_permutations(conn, load_inputs(conn, key))))
    if "headlines" in stages:
        timed("headlines", lambda conn: counts.__setitem__("headlines", write_headlines(conn, load_inputs(conn, key))[0]))
    result: dict = {"articles": 0, "expected_permutations": expected}
    if "articles" in stages:
        stats = ArticleStats()
        timed("articles", lambda conn: write_articles(conn, load_inputs(conn, key), stats))
        result["articles"] = stats.written
        with engine.connect() as conn:  # equal across two runs of the same code and day: the same articles, byte for byte
            result["content_fingerprint"] = conn.execute(
                sa.text("SELECT md5(string_agg(content_hash, '' ORDER BY id)) FROM generated_articles WHERE campaign_id = :c"),
                {"c": campaign.id},
            ).scalar_one()
        result["copy_seconds"], result["copy_bytes"] = raw_copy(engine, campaign.id)
        result["articles_seconds"] = round(timings["articles"], 3)
        result["ratio"] = round(timings["articles"] / result["copy_seconds"], 3)
    result["seconds"] = round(sum(timings.values()), 3)
    result["stage_seconds"] = {k: round(v, 3) for k, v in timings.items()}
    result["permutations"] = counts.get("permutations", 0)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return result


def raw_copy(engine: sa.engine.Engine, campaign_id) -> tuple[float, int]:
    """Export the campaign's article rows, delete them, and time COPY FROM of the same bytes into the same table."""
    from spark_assets.assets.generation import _ARTICLE_COLUMNS

    columns = ", ".join(_ARTICLE_COLUMNS)
    with tempfile.TemporaryFile() as dump:
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            with cursor.copy(
                f"COPY (SELECT {columns} FROM generated_articles WHERE campaign_id = '{campaign_id}') TO STDOUT"
            ) as copy:
                for chunk in copy:
                    dump.write(chunk)
        size = dump.tell()
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM generated_articles WHERE campaign_id = :c"), {"c": campaign_id})
        dump.seek(0)
        started = time.perf_counter()
        with engine.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            with cursor.copy(f"COPY generated_articles ({columns}) FROM STDIN") as copy:
                while chunk := dump.read(1 << 20):
                    copy.write(chunk)
        elapsed = time.perf_counter() - started
    print(f"raw COPY of {size / 1e6:.0f} MB: {elapsed:.2f}s", file=sys.stderr)
    return round(elapsed, 3), size


if __name__ == "__main__":
    main()
