"""Analytics backfill: N days x M sites through real Dagster runs, against the Matomo and Google simulators on loopback.

    .venv/bin/python benchmarks/analytics_backfill.py --sites 200 --days 90                # 4 GSC accounts (default)
    .venv/bin/python benchmarks/analytics_backfill.py --sites 20 --days 10 --accounts 2   # a quick check

A fresh SPARK_HOME (a temporary directory unless --home; the embedded PostgreSQL under it, or DATABASE_URL if set),
migrated; SPARK_FERNET_KEY set to the tests' fixed key (the Google refresh tokens are stored encrypted); a temporary
Dagster instance (`DagsterInstance.local_temp()`, never the user's). The Matomo and Google simulators each run in a
subprocess of their own (so their request handling does not share this process's interpreter lock): each reads its
setup as one JSON line on stdin, prints its base URL, answers its call counts so far for every further line, and its
final counts when its stdin closes. Google holds `--accounts` accounts; the sites are spread over them round-robin
(`sites.gsc_account_id`, the accounts added with `add_gsc_account`), each site's `sc-domain:` property owned by its
account, `gsc_verification_status = 'verified'`; each site has a Matomo site made through `MatomoClient.ensure_site`
against the simulator (`sites.matomo_site_id`), and `launched_on` = the backfill's first day, so every site is asked
for the whole window. Nothing is pinned: "today" is the real one (UTC) for the simulators and the assets alike.

Phases, each timed alone (wall seconds, this process's CPU seconds, each simulator's CPU seconds from /proc):

1. backfill: `run_backfill(first, yesterday, report=False)` over the `--days` days ending yesterday (runs of at most
   31 days, every site in each run);
2. report: `materialize` of `analytics_report` (the report and its charts);
3. one day: `run_backfill(yesterday, yesterday, report=False)`;
4. the daily schedule's shape: `run_backfill(today - 5, yesterday, report=False)`, five days in one run.

For each: runs launched, provider calls by kind (Matomo `VisitsSummary.get`; Google `searchAnalytics.query` and token
refreshes), rows in matomo_daily / search_console_daily / search_console_queries / daily_analytics after it, each
step's seconds from the Dagster instance's step stats, and the shared rate limiter's cost (`SharedRateLimiter.acquire`
wrapped here to count its calls and the seconds spent in them, summed over the fetching threads; nothing else is
patched). Peak RSS of this process (getrusage) at the end. The last line printed is one JSON object.

Where the time goes: the Search Console fetch runs in `GSC_WORKERS` threads, which cProfile does not follow; sample the
whole process with py-spy instead (`--idle` so waits on PostgreSQL and sockets count):

    py-spy record --rate 100 --idle --format raw -o /tmp/analytics.txt -- .venv/bin/python \\
        benchmarks/analytics_backfill.py --sites 200 --days 31
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import process_stats  # noqa: E402

#: the tests' fixed key (tests/test_analytics.py): opens nothing but this benchmark's database
FERNET_KEY = "ZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmRmZGZkZmQ="
TABLES = ("matomo_daily", "search_console_daily", "search_console_queries", "daily_analytics")
TIMEZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")

_SIMULATOR = """
import json, sys
sys.path.insert(0, sys.argv[2])
from collections import Counter
config = json.loads(sys.stdin.readline())
if sys.argv[1] == "matomo":
    from spark_resources.simulators.matomo import MatomoSimulator
    simulator = MatomoSimulator(token=config["token"])
    def counts():
        return dict(Counter(list(simulator.calls)))
else:
    from spark_resources.simulators.google import GoogleSimulator
    simulator = GoogleSimulator(client_id=config["client_id"], client_secret=config["client_secret"])
    for account in config["accounts"]:
        simulator.add_account(account["email"], account["refresh_token"])
        simulator.properties[account["email"]].update(account["properties"])
    def kind(method, path):
        if path == "/token":
            return "token"
        if path.endswith("/searchAnalytics/query"):
            return "searchAnalytics.query"
        return "other"
    def counts():
        return dict(Counter(kind(method, path) for method, path in list(simulator.calls)))
simulator.start()
print(simulator.base_url, flush=True)
for _ in sys.stdin:  # one line: the counts so far
    print(json.dumps(counts()), flush=True)
print(json.dumps(counts()), flush=True)
simulator.stop()
"""


class Simulator:
    """A simulator in a subprocess: its base URL, its call counts on demand, its CPU seconds from /proc."""

    def __init__(self, kind: str, config: dict) -> None:
        self.kind = kind
        self.process = subprocess.Popen([sys.executable, "-c", _SIMULATOR, kind, str(REPO)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.process.stdin.write(json.dumps(config) + "\n")
        self.process.stdin.flush()
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise SystemExit(f"the {kind} simulator did not start")
        self.final: dict[str, int] | None = None

    def counts(self) -> Counter:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return Counter(json.loads(self.process.stdout.readline()))

    def cpu_seconds(self) -> float:
        return process_stats.cpu_seconds(self.process.pid)

    def rss_mb(self) -> float:
        return process_stats.rss_mb(self.process.pid)

    def stop(self) -> None:
        try:
            self.process.stdin.close()
            line = self.process.stdout.readline()
            self.final = json.loads(line) if line.strip() else None
            self.process.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


class AcquireMeter:
    """`SharedRateLimiter.acquire` wrapped: how many calls and the seconds spent in them (summed over threads)."""

    def __init__(self) -> None:
        from spark_resources.providers.http import SharedRateLimiter

        self.calls, self.seconds = 0, 0.0
        self._lock = threading.Lock()
        original = SharedRateLimiter.acquire
        meter = self

        def acquire(limiter) -> None:
            started = time.perf_counter()
            try:
                original(limiter)
            finally:
                elapsed = time.perf_counter() - started
                with meter._lock:
                    meter.calls += 1
                    meter.seconds += elapsed

        SharedRateLimiter.acquire = acquire

    def take(self) -> tuple[int, float]:
        with self._lock:
            taken, self.calls, self.seconds = (self.calls, self.seconds), 0, 0.0
        return taken


def _rows(engine) -> dict[str, int]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() for table in TABLES}


def _step_seconds(instance, seen: set[str]) -> tuple[list[dict], dict[str, float]]:
    """The runs not in `seen` (added to it): each run's wall seconds, and the seconds of each step summed."""
    runs, steps = [], Counter()
    for record in reversed(instance.get_run_records()):
        run_id = record.dagster_run.run_id
        if run_id in seen:
            continue
        seen.add(run_id)
        stats = instance.get_run_stats(run_id)
        runs.append({"run": run_id[:8], "seconds": round((stats.end_time or 0) - (stats.start_time or 0), 2)})
        for step in instance.get_run_step_stats(run_id):
            if step.start_time and step.end_time:
                steps[step.step_key] += step.end_time - step.start_time
    return runs, {key: round(value, 2) for key, value in sorted(steps.items())}


def _setup(engine, sites: int, accounts: int, first, matomo: Simulator) -> list[str]:
    import sqlalchemy as sa

    from spark_assets.records.accounts import add_gsc_account
    from spark_assets.records.registry import add_site
    from spark_resources.providers.matomo import MatomoClient

    domains = _domains(sites)
    client = MatomoClient(matomo.base_url, "bench-matomo-token")
    try:
        with engine.begin() as conn:
            account_ids = [add_gsc_account(conn, email=email, refresh_token=token)[0].id
                           for email, token in _accounts(accounts)]
            for index, domain in enumerate(domains):
                site, _ = add_site(conn, domain, timezone=TIMEZONES[index % len(TIMEZONES)], launched_on=first)
                matomo_id, _ = client.ensure_site(domain, f"https://{domain}")
                conn.execute(
                    sa.text("""UPDATE sites SET gsc_account_id = :a, gsc_verification_status = 'verified',
                               matomo_site_id = :m WHERE id = :s"""),
                    {"a": account_ids[index % accounts], "m": matomo_id, "s": site.id},
                )
    finally:
        client.close()
    return domains


def _domains(sites: int) -> list[str]:
    return [f"bench-roofing-{i:04d}.example" for i in range(sites)]


def _accounts(accounts: int) -> list[tuple[str, str]]:
    return [(f"bench-gsc-{j}@spark-factory.example", f"1//bench-refresh-token-{j}") for j in range(accounts)]


def run(sites: int, days: int, accounts: int) -> dict:
    from dagster import AssetKey, DagsterInstance, materialize
    from dagster import __version__ as dagster_version

    from spark_assets.analytics.days import utc_now
    from spark_assets.definitions import all_assets, defs
    from spark_assets.ops.analytics_ops import run_backfill
    from spark_assets.ops.materializing import QUIET_RUN
    from spark_assets.ops.sandbox import GOOGLE_CLIENT
    from spark_resources.database import get_engine
    from spark_resources.providers import google
    from spark_resources.providers.google import SearchConsoleResource
    from spark_resources.providers.matomo import MatomoResource

    started = time.perf_counter()
    engine = get_engine()  # the embedded server started and migrated (or DATABASE_URL, already current)
    today = utc_now().date()
    yesterday = today - timedelta(days=1)
    first = yesterday - timedelta(days=days - 1)

    google_config = {**GOOGLE_CLIENT, "accounts": [
        {"email": email, "refresh_token": token,
         "properties": [f"sc-domain:{d}" for i, d in enumerate(_domains(sites)) if i % accounts == j]}
        for j, (email, token) in enumerate(_accounts(accounts))]}
    simulators: dict[str, Simulator] = {}
    try:
        simulators["matomo"] = Simulator("matomo", {"token": "bench-matomo-token"})
        simulators["google"] = Simulator("google", google_config)
        _setup(engine, sites, accounts, first, simulators["matomo"])
        setup_seconds = time.perf_counter() - started
        print(f"setup: {sites} sites over {accounts} GSC accounts, days {first} to {yesterday}: "
              f"{setup_seconds:.1f} s", file=sys.stderr)
        resources = {
            **defs.resources,
            "search_console": SearchConsoleResource(**GOOGLE_CLIENT, **google.endpoints_on(simulators["google"].base_url)),
            "matomo": MatomoResource(base_url=simulators["matomo"].base_url, token_auth="bench-matomo-token",
                                     tracker_url="https://matomo.bench.example/"),
        }
        meter = AcquireMeter()
        instance = DagsterInstance.local_temp(overrides={"telemetry": {"enabled": False}})
        seen: set[str] = set()
        baseline = {name: sim.counts() for name, sim in simulators.items()}

        def phase(name: str, action) -> dict:
            nonlocal baseline
            cpu = os.times()
            sim_cpu = {n: s.cpu_seconds() for n, s in simulators.items()}
            meter.take()
            t0 = time.perf_counter()
            value = action()
            seconds = time.perf_counter() - t0
            end = os.times()
            acquires, acquire_seconds = meter.take()
            counts = {n: s.counts() for n, s in simulators.items()}
            delta = {n: counts[n] - baseline[n] for n in counts}
            baseline = counts
            runs, steps = _step_seconds(instance, seen)
            result = {
                "seconds": round(seconds, 2),
                "cpu_seconds": round(end[0] + end[1] - cpu[0] - cpu[1], 2),
                "simulator_cpu_seconds": {n: round(s.cpu_seconds() - sim_cpu[n], 2) for n, s in simulators.items()},
                "runs": len(runs),
                "run_seconds": [r["seconds"] for r in runs],
                "step_seconds": steps,
                "calls": {
                    "matomo_visits_summary": delta["matomo"].get("VisitsSummary.get", 0),
                    "matomo_other": sum(v for k, v in delta["matomo"].items() if k != "VisitsSummary.get"),
                    "google_search_analytics": delta["google"].get("searchAnalytics.query", 0),
                    "google_token": delta["google"].get("token", 0),
                    "google_other": delta["google"].get("other", 0),
                },
                "limiter_acquires": acquires,
                "limiter_seconds": round(acquire_seconds, 2),
                "rows": _rows(engine),
            }
            if value is not None and hasattr(value, "runs"):
                result["backfill_runs"] = len(value.runs)
                result["failed_sites"] = len(value.failed_sites)
            print(f"{name}: {result['seconds']} s, {result['runs']} run(s), calls {result['calls']}, "
                  f"steps {steps}", file=sys.stderr)
            return result

        quiet = lambda line: print(line, file=sys.stderr)  # noqa: E731
        phases = {
            "backfill": phase("backfill", lambda: run_backfill(first, yesterday, resources=resources,
                                                               instance=instance, echo=quiet, report=False)),
            "report": phase("report", lambda: materialize(
                all_assets, selection=[AssetKey("analytics_report")], instance=instance, resources=resources,
                run_config=QUIET_RUN)),
            "one_day": phase("one_day", lambda: run_backfill(yesterday, yesterday, resources=resources,
                                                             instance=instance, echo=quiet, report=False)),
            "five_days": phase("five_days", lambda: run_backfill(today - timedelta(days=5), yesterday,
                                                                 resources=resources, instance=instance, echo=quiet,
                                                                 report=False)),
        }
        simulator_rss = {n: s.rss_mb() for n, s in simulators.items()}
    finally:
        for simulator in simulators.values():
            simulator.stop()
    totals = {n: s.final for n, s in simulators.items()}
    backfill = phases["backfill"]
    return {
        "sites": sites,
        "days": days,
        "accounts": accounts,
        "first_day": first.isoformat(),
        "last_day": yesterday.isoformat(),
        "runs": backfill["runs"],
        "calls": backfill["calls"],
        "rows": backfill["rows"],
        "seconds": {name: p["seconds"] for name, p in phases.items()},
        "goals": {
            "backfill_runs_le_10": backfill["runs"] <= 10,
            "backfill_le_180_s": backfill["seconds"] <= 180,
            "one_day_le_10_s": phases["one_day"]["seconds"] <= 10,
        },
        "phases": phases,
        "simulator_calls_total": totals,
        "simulator_rss_mb": simulator_rss,
        "setup_seconds": round(setup_seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "dagster": dagster_version,
                    "arch": platform.machine(), "load_average": round(os.getloadavg()[0], 2)},
    }


def _table(result: dict) -> str:
    names = list(result["phases"])
    rows = [
        ("seconds (wall)", lambda p: f"{p['seconds']:.2f}"),
        ("runs", lambda p: str(p["runs"])),
        ("this process CPU s", lambda p: f"{p['cpu_seconds']:.1f}"),
        ("simulators CPU s (matomo/google)",
         lambda p: f"{p['simulator_cpu_seconds']['matomo']:.1f} / {p['simulator_cpu_seconds']['google']:.1f}"),
        ("Matomo VisitsSummary.get", lambda p: str(p["calls"]["matomo_visits_summary"])),
        ("Google searchAnalytics.query", lambda p: str(p["calls"]["google_search_analytics"])),
        ("Google token", lambda p: str(p["calls"]["google_token"])),
        ("limiter acquires / s (summed)", lambda p: f"{p['limiter_acquires']} / {p['limiter_seconds']:.1f}"),
        *[(f"rows {table}", lambda p, t=table: f"{p['rows'][t]:,}") for table in TABLES],
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{n:>14}" for n in names)]
    lines += [f"{label:{width}}  " + "  ".join(f"{fmt(result['phases'][n]):>14}" for n in names) for label, fmt in rows]
    lines.append(f"peak RSS {result['peak_rss_mb']} MB; simulators RSS {result['simulator_rss_mb']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--accounts", type=int, default=4, help="GSC accounts the sites are spread over")
    parser.add_argument("--home", type=Path, help="SPARK_HOME to use (must hold no sites; kept afterwards)")
    args = parser.parse_args()
    if args.sites < 1 or args.days < 1 or args.accounts < 1:
        parser.error("--sites, --days and --accounts must be 1 or more")

    home = args.home or Path(tempfile.mkdtemp(prefix="spark-analytics-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SPARK_HOME"] = str(home)
    os.environ["SPARK_FERNET_KEY"] = FERNET_KEY
    try:
        result = run(args.sites, args.days, args.accounts)
    finally:
        from spark_resources.database import stop_embedded_servers

        stop_embedded_servers()
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    print(_table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
