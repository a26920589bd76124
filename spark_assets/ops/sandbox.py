"""The sandbox: every provider answered by its local simulator, wired together as the real ones are, through the same
client code as production (only base URLs and credentials differ).

    with Sandbox() as sandbox:
        sandbox.register_accounts(engine)        # sandbox Cloudflare and Google accounts, active while it runs
        materialize(..., resources={**defs.resources, **sandbox.resources()})
        # or, for other processes (dagster dev and its code server, daemon, run workers): os.environ |= sandbox.env()

The wiring: Namecheap's name-server change activates the Cloudflare zone (after `activation_delay_seconds`, zero by
default), Google's Site Verification reads the TXT records published in the Cloudflare simulator, and Search Console's
pages and queries are the pages of the site's last good build. The Namecheap
simulator treats every domain asked about as one the account owns, so any site added to the registry can be provisioned.

`spark demo` and `spark ui --sandbox` use it; tests use the simulators directly or through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spark_assets.records.accounts import add_cloudflare_account, add_gsc_account
from spark_assets.records.site_inputs import good_build
from spark_assets.site.build import read_manifest
from spark_resources.providers import google
from spark_resources.providers.cloudflare import CloudflareResource
from spark_resources.providers.google import SearchConsoleResource
from spark_resources.providers.matomo import MatomoResource
from spark_resources.providers.namecheap import NamecheapResource
from spark_resources.simulators.cloudflare import CloudflareSimulator
from spark_resources.simulators.google import GoogleSimulator
from spark_resources.simulators.matomo import MatomoSimulator
from spark_resources.simulators.namecheap import NamecheapSimulator

#: the sandbox's credentials: they open nothing but the simulators
CLOUDFLARE_TOKEN = "sandbox-cloudflare-token"
CLOUDFLARE_ACCOUNT = "sandbox"  # the account's nickname in `spark account list`
NAMECHEAP = {"api_user": "sandbox", "api_key": "sandbox-namecheap-key", "username": "sandbox", "client_ip": "127.0.0.1"}
GOOGLE_ACCOUNT = "sandbox@spark-factory.example"
GOOGLE_REFRESH_TOKEN = "1//sandbox-refresh-token"
GOOGLE_CLIENT = {"client_id": "sandbox-client.apps.googleusercontent.com", "client_secret": "sandbox-client-secret"}
MATOMO_TOKEN = "sandbox-matomo-token"
HOSTING_TARGET = "sites.sandbox.example"
#: the tracker address the sandbox's pages name: fixed (the simulator's loopback port changes every run, and a
#: rebuilt loader would make every `spark demo` release something new)
MATOMO_TRACKER = "https://matomo.sandbox.example/"


class Sandbox:
    def __init__(self, *, activation_delay_seconds: float = 0.0):
        self.cloudflare = CloudflareSimulator(token=CLOUDFLARE_TOKEN, activation_delay_seconds=activation_delay_seconds)
        self.namecheap = NamecheapSimulator(api_user=NAMECHEAP["api_user"], api_key=NAMECHEAP["api_key"],
                                            auto_register=True)
        self.google = GoogleSimulator(**GOOGLE_CLIENT)
        self.matomo = MatomoSimulator(token=MATOMO_TOKEN)
        self.namecheap.on_nameservers = lambda domain, servers: self.cloudflare.activate_zone(domain)
        self.google.txt_lookup = self.cloudflare.txt_records
        self.google.add_account(GOOGLE_ACCOUNT, GOOGLE_REFRESH_TOKEN)
        self.google.site_pages = self._site_pages
        self._accounts_engine: Engine | None = None
        self._pages: dict[tuple[str, str], list[str]] = {}

    def start(self) -> "Sandbox":
        for simulator in (self.cloudflare, self.namecheap, self.google, self.matomo):
            simulator.start()
        return self

    def stop(self) -> None:
        if self._accounts_engine is not None:
            _set_accounts_status(self._accounts_engine, "disabled")
        for simulator in (self.cloudflare, self.namecheap, self.google, self.matomo):
            simulator.stop()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def register_accounts(self, engine: Engine) -> None:
        """Add (or refresh) the sandbox Cloudflare and Google accounts, active until the sandbox stops. Disabled
        otherwise, so they are never assigned to a real site."""
        with engine.begin() as conn:
            add_cloudflare_account(conn, email=GOOGLE_ACCOUNT, nickname=CLOUDFLARE_ACCOUNT,
                                   provider_account_id="sandbox-account", api_token=CLOUDFLARE_TOKEN)
            add_gsc_account(conn, email=GOOGLE_ACCOUNT, refresh_token=GOOGLE_REFRESH_TOKEN)
        _set_accounts_status(engine, "active")
        self._accounts_engine = engine

    def _site_pages(self, site_url: str) -> list[str]:
        """The pages of a site's last good build, as Search Console names them: what its simulated impressions land
        on (the home page only when nothing is built yet)."""
        domain = site_url.removeprefix("sc-domain:")
        build = None
        if self._accounts_engine is not None:
            with self._accounts_engine.connect() as conn:
                site_id = conn.execute(sa.text("SELECT id FROM sites WHERE domain = :d"), {"d": domain}).scalar()
                build = good_build(conn, site_id) if site_id else None
        if build is None:
            return [f"https://{domain}/"]
        key = (domain, build.manifest_hash)
        if key not in self._pages:
            paths = sorted(p for p in read_manifest(Path(build.manifest_path)) if p.endswith("index.html"))
            self._pages[key] = [f"https://{domain}/{p.removesuffix('index.html')}" for p in paths]
        return self._pages[key]

    def resources(self, **settings: Any) -> dict[str, Any]:
        """The provider resources of the Definitions, pointed at the simulators; `settings` (e.g. max_wait_seconds)
        go to each."""
        return {
            "cloudflare": CloudflareResource(base_url=self.cloudflare.base_url, hosting_target=HOSTING_TARGET,
                                             **settings),
            "namecheap": NamecheapResource(base_url=self.namecheap.base_url, **NAMECHEAP, **settings),
            "search_console": SearchConsoleResource(**GOOGLE_CLIENT, **google.endpoints_on(self.google.base_url),
                                                    **settings),
            "matomo": MatomoResource(base_url=self.matomo.base_url, token_auth=MATOMO_TOKEN,
                                     tracker_url=MATOMO_TRACKER, **settings),
        }

    def env(self) -> dict[str, str]:
        """The environment that makes `spark_assets.definitions` build the same resources in another process."""
        return {
            "SPARK_CLOUDFLARE_URL": self.cloudflare.base_url,
            "SPARK_HOSTING_TARGET": HOSTING_TARGET,
            "SPARK_NAMECHEAP_URL": self.namecheap.base_url,
            **{f"NAMECHEAP_{key.upper()}": value for key, value in NAMECHEAP.items()},
            "SPARK_GOOGLE_URL": self.google.base_url,
            "GOOGLE_CLIENT_ID": GOOGLE_CLIENT["client_id"],
            "GOOGLE_CLIENT_SECRET": GOOGLE_CLIENT["client_secret"],
            "SPARK_MATOMO_URL": self.matomo.base_url,
            "MATOMO_TOKEN_AUTH": MATOMO_TOKEN,
            "SPARK_MATOMO_TRACKER_URL": MATOMO_TRACKER,
        }


def _set_accounts_status(engine: Engine, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cloudflare_accounts SET status = :s WHERE account_nickname = :n"),
                     {"s": status, "n": CLOUDFLARE_ACCOUNT})
        conn.execute(sa.text("UPDATE gsc_accounts SET status = :s WHERE email = :e"), {"s": status, "e": GOOGLE_ACCOUNT})
