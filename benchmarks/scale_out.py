"""Scale-out simulation: N sites x campaigns x articles on W run workers (Kubernetes pods), from measured per-partition
costs. A simulation, not a measurement of Kubernetes: nothing is launched; runs are list-scheduled onto W workers
with the queue's per-kind limits and the pools' per-provider limits, each run's steps taking the time BENCHMARKS.md
measured for them (or an assumption, marked as one below).

    .venv/bin/python benchmarks/scale_out.py                       # 200 / 1,000 / 5,000 sites x 1 / 4 / 16 workers
    .venv/bin/python benchmarks/scale_out.py --sites 1000 --workers 16 --sites-per-account 20

Two cycles per (sites, workers):
- onboarding: every site from nothing: its provisioning run, its campaign runs (content factory), its first site run
  (full build + full release, after its campaigns), then one analytics day-run for every site;
- a steady day: every site's drip-feed run (the day's batch published, the site rebuilt and released) and the daily
  analytics run.

Per-partition costs, with where they come from (BENCHMARKS.md section, 2026-11-30 rows):
- content factory, per article of a campaign: 0.154 ms geo + permutations + headlines (0.6 + 3.9 + 3.2 s for 50,016),
  0.83 ms articles stage (41.5 s for 50,016: "Content factory", "the content as landed"), 1.1 ms near-duplicate check
  (5.0 to 6.1 s for 5,000 documents: "Near-duplicate detection"); PostgreSQL's side 0.47 ms (23.4 s of raw COPY for
  the same 50,016 rows), counted as database load, not run time (it overlaps, on the server's core).
- site build, per article of the site: cold 0.42 ms (3.5 to 4.4 s for 10,000, "Site builds", runs 6 to 9, two
  processes); after a day's batch 0.21 ms per article of the site (one change: 1.8 to 2.4 s at 10,000, 18.3 s at
  100,000) plus 0.42 ms per new article.
- release: full, 100 objects a second (95 to 117 s for 10,470 objects against moto, "Site releases"; CPU-bound there,
  not a prediction for R2), 1.047 objects per article (10,470 files for 10,000 articles); a day's batch 0.33 s (one
  change: 0.33 s, 4 PutObjects) plus 10 ms per further object (the new pages, their place hubs, sitemap, feed, home).
- analytics day-run for every site: 3 Search Console calls per site and run, 1 Matomo call per run ("Analytics
  backfill"); against Google ~0.3 s a call over the step's 8 threads (that section's own estimate for Google; the
  simulator answered in ~1 ms), plus 0.5 s for the rest of the run.
- rate limiter: 1.43 ms of PostgreSQL per provider call alone, 512 acquires a second at most from 8 threads on one
  budget ("Shared rate limiter", issue 13, after).
- provisioning calls per site (counted from spark_assets/assets/provisioning.py's client calls, each ensure_* a look-up
  then a create; not measured): site_dns 11 Cloudflare (zone 2, apex and www CNAME 4, worker script 1, two routes 3,
  zone status 1) and 2 Namecheap; site_matomo 2 Matomo; site_search_console 3 Google and 2 Cloudflare (the TXT record).

Assumptions, not measurements: a provider call takes 0.3 s; a run costs 10 s before its first step (measured: ~2.5 s
interpreter and imports, ~2 s Dagster's run setup; assumed: ~5 s for Kubernetes to start a pod with the image cached);
publishing a day's batch 0.2 s (one UPDATE).

Provider budgets (docs/PROVIDERS.md): Cloudflare 1,200 calls per 5 minutes per token, Namecheap 20 a minute, 700 an
hour and 8,000 a day per key, Search Console 1,200 queries a minute per account
(and 40,000 a minute per project: one OAuth client for all), Matomo none. Cloudflare and Google
accounts scale with sites (--sites-per-account, default 40); Namecheap is one key (--namecheap-keys). Pools as
PROVIDER_POOLS (namecheap 1, google 2, matomo 2); queue limits as deploy/helm/values.yaml (provisioning 2, releases 8,
analytics 1; campaign runs unlimited; a site's drip/build/release run counts as `releases`).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
from collections import defaultdict, deque
from dataclasses import dataclass, field

# --- measured costs (seconds), see the docstring -----------------------------------------------------------------------
CONTENT_PER_ARTICLE = 0.154e-3 + 0.83e-3 + 1.1e-3
CONTENT_DB_PER_ARTICLE = 0.47e-3
BUILD_COLD_PER_ARTICLE = 0.42e-3
BUILD_CHANGED_PER_SITE_ARTICLE = 0.21e-3
RELEASE_OBJECTS_PER_SECOND = 100.0
OBJECTS_PER_ARTICLE = 1.047
RELEASE_SMALL = 0.33
RELEASE_PER_EXTRA_OBJECT = 0.010
GSC_CALLS_PER_SITE = 3
GSC_THREADS = 8
LIMITER_DB_SECONDS = 1.43e-3
LIMITER_MAX_PER_SECOND = 512
# --- assumptions -------------------------------------------------------------------------------------------------------
CALL_SECONDS = 0.3
RUN_START = 10.0
PUBLISH_BATCH = 0.2
# --- provider budgets (calls per hour per key/account) and the pools ------------------------------------------------
CLOUDFLARE_PER_HOUR = 1200 * 12
NAMECHEAP_PER_HOUR, NAMECHEAP_PER_DAY = 700, 8000
GSC_PER_HOUR = 1200 * 60
GSC_PROJECT_PER_HOUR = 40_000 * 60  # one OAuth client (project) for every account
POOLS = {"namecheap": 1, "google": 2, "matomo": 2}
KIND_LIMITS = {"provisioning": 2, "releases": 8, "analytics": 1}
PROVISIONING_STEPS = (  # (pool, {provider: calls})
    ("namecheap", {"cloudflare": 11, "namecheap": 2}),
    ("matomo", {"matomo": 2}),
    ("google", {"google": 3, "cloudflare": 2}),
)


@dataclass
class Step:
    seconds: float
    pool: str | None = None
    calls: dict[str, int] = field(default_factory=dict)


@dataclass
class Run:
    kind: str
    steps: list[Step]
    site: int = -1
    db_seconds: float = 0.0
    after: int = 0  # runs that must finish first
    then: list["Run"] = field(default_factory=list)


class Namecheap:
    """One key's budget: calls spaced to 700 an hour (tighter than 20 a minute), at most 8,000 a UTC day."""

    def __init__(self, keys: int) -> None:
        self.spacing = 3600 / (NAMECHEAP_PER_HOUR * keys)
        self.per_day = NAMECHEAP_PER_DAY * keys
        self.next = 0.0
        self.used: dict[int, int] = defaultdict(int)

    def call(self, now: float) -> float:
        t = max(now, self.next)
        while self.used[int(t // 86400)] >= self.per_day:
            t = (int(t // 86400) + 1) * 86400
        self.used[int(t // 86400)] += 1
        self.next = t + self.spacing
        return t + CALL_SECONDS


def simulate(runs: list[Run], workers: int, namecheap_keys: int) -> dict:
    """List scheduling: ready runs in arrival order onto free workers (skipping a kind at its limit); within a run its
    steps in order, a pooled step waiting (holding its worker) for a slot."""
    arrival = itertools.count()
    ready: dict[str, deque] = defaultdict(deque)
    for run in runs:
        if run.after == 0:
            ready[run.kind].append((next(arrival), run))
    running_kind: dict[str, int] = defaultdict(int)
    pool_free = dict(POOLS)
    pool_wait: dict[str, deque] = {pool: deque() for pool in POOLS}
    namecheap = Namecheap(namecheap_keys)
    events: list = []
    order = itertools.count()
    free = workers
    calls_by_minute: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    content_running = content_peak = 0
    end = 0.0

    def launch(now: float) -> None:
        nonlocal free, content_running, content_peak
        while free:
            # the oldest ready run of a kind below its limit (Dagster's queue skips a kind at its limit)
            open_kinds = [k for k, q in ready.items() if q and running_kind[k] < KIND_LIMITS.get(k, workers)]
            if not open_kinds:
                return
            kind = min(open_kinds, key=lambda k: ready[k][0][0])
            _, run = ready[kind].popleft()
            free -= 1
            running_kind[run.kind] += 1
            if run.kind == "content":
                content_running += 1
                content_peak = max(content_peak, content_running)
            heapq.heappush(events, (now + RUN_START, next(order), run, 0))

    def start_step(now: float, run: Run, index: int) -> None:
        step = run.steps[index]
        finish = now + step.seconds
        if "namecheap" in step.calls:
            for _ in range(step.calls["namecheap"]):
                finish = max(finish, namecheap.call(now))
        minutes = range(int(now // 60), int(finish // 60) + 1)
        for provider, count in step.calls.items():  # spread evenly over the step's minutes
            for minute in minutes:
                calls_by_minute[provider][minute] += count / len(minutes)
        heapq.heappush(events, (finish, next(order), run, index + 1))

    def enter_step(now: float, run: Run, index: int) -> None:
        nonlocal free, content_running, end
        if index == len(run.steps):  # the run is over
            free += 1
            running_kind[run.kind] -= 1
            content_running -= run.kind == "content"
            end = max(end, now)
            for follower in run.then:
                follower.after -= 1
                if follower.after == 0:
                    ready[follower.kind].append((next(arrival), follower))
            launch(now)
            return
        pool = run.steps[index].pool
        if pool is None:
            start_step(now, run, index)
        elif pool_free[pool]:
            pool_free[pool] -= 1
            start_step(now, run, index)
        else:
            pool_wait[pool].append((run, index))

    launch(0.0)
    while events:
        now, _, run, index = heapq.heappop(events)
        if index > 0 and run.steps[index - 1].pool:  # a pooled step ended: its slot to the next waiter
            pool = run.steps[index - 1].pool
            if pool_wait[pool]:
                waiter, waiting_index = pool_wait[pool].popleft()
                start_step(now, waiter, waiting_index)
            else:
                pool_free[pool] += 1
        enter_step(now, run, index)
    assert not any(ready.values()) and free == workers, "runs left unscheduled"
    peak_hour, total = {}, {}
    for provider, minutes in calls_by_minute.items():
        by_hour: dict[int, float] = defaultdict(float)
        for minute, count in minutes.items():
            by_hour[minute // 60] += count
        peak_hour[provider] = round(max(by_hour.values()))
        total[provider] = round(sum(minutes.values()))
    every_minute: dict[int, float] = defaultdict(float)
    for minutes in calls_by_minute.values():
        for minute, count in minutes.items():
            every_minute[minute] += count
    return {"seconds": end, "runs": len(runs), "peak_calls_per_hour": peak_hour, "calls": total,
            "peak_calls_per_second": max(every_minute.values()) / 60,
            "content_runs_at_once": content_peak, "db_seconds": sum(run.db_seconds for run in runs)}


def analytics_run(sites: int) -> Run:
    gsc = sites * GSC_CALLS_PER_SITE
    return Run("analytics", [Step(CALL_SECONDS, "matomo", {"matomo": 1}),
                             Step(gsc * CALL_SECONDS / GSC_THREADS, "google", {"google": gsc}), Step(0.5)])


def onboarding(sites: int, campaigns: int, articles: int) -> list[Run]:
    runs: list[Run] = []
    site_articles = campaigns * articles
    objects = site_articles * OBJECTS_PER_ARTICLE + 5
    site_runs = [Run("releases", [Step(site_articles * BUILD_COLD_PER_ARTICLE),
                                  Step(objects / RELEASE_OBJECTS_PER_SECOND)], site=s, after=campaigns)
                 for s in range(sites)]
    for s in range(sites):
        runs.append(Run("provisioning", [Step(sum(c.values()) * CALL_SECONDS if pool != "namecheap"
                                              else c["cloudflare"] * CALL_SECONDS, pool, dict(c))
                                         for pool, c in PROVISIONING_STEPS], site=s))
        for _ in range(campaigns):
            runs.append(Run("content", [Step(articles * CONTENT_PER_ARTICLE)], site=s,
                            db_seconds=articles * CONTENT_DB_PER_ARTICLE, then=[site_runs[s]]))
    analytics = analytics_run(sites)
    analytics.after = sites
    for site_run in site_runs:
        site_run.then.append(analytics)
    return runs + site_runs + [analytics]


def steady_day(sites: int, campaigns: int, articles: int, batch: int) -> list[Run]:
    site_articles = campaigns * articles
    extra_objects = max(0, 2 * batch + 3 - 2)  # the new pages and their hubs, sitemap, feed, home; 2 in RELEASE_SMALL
    runs = [Run("releases", [Step(PUBLISH_BATCH),
                             Step(site_articles * BUILD_CHANGED_PER_SITE_ARTICLE + batch * BUILD_COLD_PER_ARTICLE),
                             Step(RELEASE_SMALL + extra_objects * RELEASE_PER_EXTRA_OBJECT)], site=s)
            for s in range(sites)]
    return runs + [analytics_run(sites)]


def budgets(sites: int, sites_per_account: int, namecheap_keys: int) -> dict[str, float]:
    accounts = math.ceil(sites / sites_per_account)
    return {"cloudflare": CLOUDFLARE_PER_HOUR * accounts, "namecheap": NAMECHEAP_PER_HOUR * namecheap_keys,
            "google": min(GSC_PER_HOUR * accounts, GSC_PROJECT_PER_HOUR), "matomo": math.inf}


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--campaigns", type=int, default=2, help="campaigns per site")
    parser.add_argument("--articles", type=int, default=2000, help="articles per campaign")
    parser.add_argument("--batch", type=int, default=20, help="articles a site publishes a day (drip feed)")
    parser.add_argument("--sites-per-account", type=int, default=40, help="sites per Cloudflare and Google account")
    parser.add_argument("--namecheap-keys", type=int, default=1)
    args = parser.parse_args()

    rows = []
    print(f"{args.campaigns} campaigns x {args.articles:,} articles per site, {args.batch} published a day per site, "
          f"{args.sites_per_account} sites per Cloudflare/Google account, {args.namecheap_keys} Namecheap key(s)")
    print(f"{'sites':>6} {'W':>3} | {'onboarding':>10} {'runs':>6} {'Namecheap/h':>12} {'CF/h':>13} {'GSC/h':>15}"
          f" {'PG cores':>8} | {'day':>7} {'runs':>6} {'limiter/s':>9}")
    for sites in args.sites:
        budget = budgets(sites, args.sites_per_account, args.namecheap_keys)
        for workers in args.workers:
            first = simulate(onboarding(sites, args.campaigns, args.articles), workers, args.namecheap_keys)
            day = simulate(steady_day(sites, args.campaigns, args.articles, args.batch), workers, args.namecheap_keys)
            # the one PostgreSQL: content COPYs (cores busy while content runs overlap) and the limiter's transactions
            pg_cores = first["content_runs_at_once"] * CONTENT_DB_PER_ARTICLE / CONTENT_PER_ARTICLE
            limiter_rate = max(first["peak_calls_per_second"], day["peak_calls_per_second"])  # every call acquires
            peak = first["peak_calls_per_hour"]
            row = {
                "sites": sites, "workers": workers,
                "onboarding_runs": first["runs"], "onboarding_seconds": round(first["seconds"]),
                "day_runs": day["runs"], "day_seconds": round(day["seconds"]),
                "peak_calls_per_hour": {p: peak.get(p, 0) for p in budget},
                "budget_per_hour": {p: (None if math.isinf(b) else b) for p, b in budget.items()},
                "calls": first["calls"], "day_calls": day["calls"],
                "postgres_cores_for_content": round(pg_cores, 2), "limiter_acquires_per_second": round(limiter_rate, 1),
                "database_seconds": round(first["db_seconds"] + sum(first["calls"].values()) * LIMITER_DB_SECONDS),
            }
            rows.append(row)
            print(f"{sites:>6} {workers:>3} | {hours(first['seconds']):>10} {first['runs']:>6} "
                  f"{peak.get('namecheap', 0):>5}/{budget['namecheap']:<6.0f} "
                  f"{peak.get('cloudflare', 0):>5}/{budget['cloudflare']:<7.0f} "
                  f"{peak.get('google', 0):>6}/{budget['google']:<8.0f} {pg_cores:>8.2f} | "
                  f"{hours(day['seconds']):>7} {day['runs']:>6} {limiter_rate:>9.1f}")
    print(json.dumps({"benchmark": "scale_out", "simulation": True, "limiter_max_per_second": LIMITER_MAX_PER_SECOND,
                      "inputs": {k: v for k, v in vars(args).items() if k not in ("sites", "workers")},
                      "rows": rows}))


if __name__ == "__main__":
    main()
