"""The production topology of docker-compose.yml, run as processes on one host: `spark prod`.

The same four roles as the compose services, from the same files the containers use:

    postgres   the embedded PostgreSQL under $SPARK_HOME/pgdata (or the server in DATABASE_URL), holding the `dagster`
               instance database and the `spark` application database (as docker/postgres-init.sql makes them)
    user_code  `dagster code-server start -m spark_assets.definitions`, after the app schema is migrated
    webserver  `dagster-webserver -w workspace.yaml`
    daemon     `dagster-daemon run -w workspace.yaml`

All of them use docker/dagster.yaml's instance (PostgreSQL storage, queued runs, run limits and retries, run monitoring,
retention), copied verbatim into $SPARK_HOME/prod/dagster: its `{env: DAGSTER_PG_*}` values come from the environment
set here, as docker-compose.yml sets them. The one override is the workspace: workspace.yaml names the compose host
`user_code`, so a copy of it with `host: 127.0.0.1` (and another port when 4000 is taken) is written beside the instance
file. Per-pool limits cannot be set in dagster.yaml in Dagster 1.13: they are applied at start (`apply_pool_limits`).

The database server is started here, before any thread exists (see `spark ui`), and every child is given
DATABASE_URL pointing at the `spark` database, so they never start one of their own. `sandbox=True` starts the
provider simulators in this process and gives their addresses to the children (and so to the run workers).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml
from sqlalchemy.engine import make_url

from spark_assets.ops.local_instance import apply_pool_limits
from spark_resources import migrations
from spark_resources.database import (
    EMBEDDED_DATABASE,
    configured_url,
    describe_url,
    embedded_url,
    ensure_database,
    get_engine,
    normalize_url,
    open_engine,
    private_directory,
    spark_home,
    stop_embedded_servers,
)
from spark_resources.paths import REPOSITORY_ROOT

#: the files the containers use (docker-compose.yml, Dockerfile)
INSTANCE_YAML = REPOSITORY_ROOT / "docker" / "dagster.yaml"
WORKSPACE_YAML = REPOSITORY_ROOT / "workspace.yaml"
#: the instance database: POSTGRES_DB in .env.example; the app database is created beside it by postgres-init.sql
INSTANCE_DATABASE = "dagster"
APP_DATABASE = EMBEDDED_DATABASE
CODE_MODULE = "spark_assets.definitions"
#: seconds to wait for every role to be healthy, and for each to stop after SIGTERM
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0
#: the daemons a deployment needs: sensors, schedules and the run queue
REQUIRED_DAEMONS = ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR")


class TopologyFailed(RuntimeError):
    """A role did not start, or stopped on its own."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` (binding it to find out could race the server)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def workspace_override(code_port: int | None = None) -> dict:
    """workspace.yaml with its code server on this host: `host` is 127.0.0.1 and `port` is `code_port` (default: the
    file's own); everything else, `location_name` included, as the file says."""
    workspace = yaml.safe_load(WORKSPACE_YAML.read_text())
    (entry,) = workspace["load_from"]
    server = dict(entry["grpc_server"], host="127.0.0.1")
    if code_port is not None:
        server["port"] = code_port
    return {**workspace, "load_from": [{"grpc_server": server}]}


def instance_environment(app_url: str) -> dict[str, str]:
    """What the instance file and the user code read, for the server of `app_url` (the app database, `spark` on the
    embedded server): the DAGSTER_PG_* of docker/dagster.yaml naming the `dagster` database beside it, and
    DATABASE_URL. A server reached
    through a Unix socket (the embedded one) gets an empty host and PGHOST, which libpq then uses."""
    url = make_url(normalize_url(app_url))
    socket_dir = url.query.get("host")
    env = {
        "DAGSTER_PG_HOST": "" if socket_dir else (url.host or "localhost"),
        "DAGSTER_PG_PORT": str(url.port or url.query.get("port") or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": INSTANCE_DATABASE,
        "DATABASE_URL": url.render_as_string(hide_password=False),
    }
    if socket_dir:
        env["PGHOST"] = str(socket_dir)
    return env


@dataclass
class Role:
    name: str
    args: list[str]
    cwd: Path
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            # a session of its own: a Ctrl-C in the terminal reaches `spark prod`, which stops the roles in order
            self.process = subprocess.Popen(self.args, cwd=self.cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL to its whole session (run workers included) if it has not exited in `timeout`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


def _executable(name: str) -> str:
    found = Path(sys.executable).with_name(name)  # the venv's, even when the venv is not activated
    return str(found) if found.exists() else name


class Topology:
    """The four roles on loopback. `start()` returns once all are healthy; `stop()` stops them in reverse order."""

    def __init__(self, *, port: int = 3000, code_port: int | None = None, sandbox: bool = False,
                 echo: Callable[[str], None] = print):
        self.port = port
        self.sandbox = sandbox
        self.echo = echo
        default_code_port = int(workspace_override()["load_from"][0]["grpc_server"]["port"])
        self.code_port = code_port or (default_code_port if port_is_free(default_code_port) else free_port())
        self.home = spark_home() / "prod"
        self.dagster_home = self.home / "dagster"
        self.roles: list[Role] = []
        self.env: dict[str, str] = {}
        self._providers = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- start ---------------------------------------------------------------------------------------------------

    def start(self) -> None:
        for taken in {self.port, self.code_port}:
            if not port_is_free(taken):
                raise TopologyFailed(f"port {taken} on 127.0.0.1 is in use: choose another with --port")
        if self.sandbox and configured_url():
            raise TopologyFailed("--sandbox is for the embedded database: it gives sites sandbox accounts. "
                                 "Unset DATABASE_URL.")
        app_url = self._database()
        env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PGHOST")}
        env |= instance_environment(app_url)
        env["DAGSTER_HOME"] = str(self._instance_files())
        # the children load this checkout's code (an installed package would be found anyway)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH")) if p)
        if self.sandbox:
            from spark_assets.ops.sandbox import Sandbox

            self._providers = Sandbox().start()
            self._providers.register_accounts(get_engine(env["DATABASE_URL"]))
            env |= self._providers.env()
            self.echo("sandbox: Cloudflare, Namecheap, Google and Matomo answer from local simulators")
        self.env = env
        self._instance(env)

        logs = private_directory(self.home / "logs")
        workspace = str(self.dagster_home / "workspace.yaml")
        self.roles = [
            Role("user_code", [_executable("dagster"), "code-server", "start", "-h", "127.0.0.1",
                               "-p", str(self.code_port), "-m", CODE_MODULE], REPOSITORY_ROOT, logs / "user_code.log"),
            Role("webserver", [_executable("dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                               "-w", workspace], self.dagster_home, logs / "webserver.log"),
            Role("daemon", [_executable("dagster-daemon"), "run", "-w", workspace], self.dagster_home,
                 logs / "daemon.log"),
        ]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        user_code, webserver, daemon = self.roles
        user_code.start(env)
        self._wait(deadline, "the code server to answer", self._code_server_serving)
        self.echo(f"user_code: {CODE_MODULE} on 127.0.0.1:{self.code_port} (pid {user_code.process.pid})")
        webserver.start(env)
        daemon.start(env)
        self._wait(deadline, "the webserver", self._webserver_up)
        self._wait(deadline, "the webserver to load the code location", self._location_loaded)
        self.echo(f"webserver: {self.url} (pid {webserver.process.pid})")
        self._wait(deadline, "the daemon's sensors, schedules and run queue", self._daemons_healthy)
        self.echo(f"daemon: {', '.join(REQUIRED_DAEMONS)} healthy (pid {daemon.process.pid})")
        self.echo(f"logs: {logs}")

    def _database(self) -> str:
        """The `spark` database's URL, migrated, with the `dagster` database beside it."""
        url = configured_url()
        if url is None:
            # starts (or joins) the server and creates `spark`, as docker/postgres-init.sql does on a first start
            url = embedded_url()
        ensure_database(normalize_url(url), INSTANCE_DATABASE)
        engine = open_engine(url)
        try:
            applied = migrations.upgrade(engine)
        finally:
            engine.dispose()
        self.echo(f"postgres: {describe_url(url)} (+ {INSTANCE_DATABASE} beside it)"
                  + (f", {len(applied)} migration(s) applied" if applied else ""))
        self.echo(f"instance database: {describe_url(make_url(normalize_url(url)).set(database=INSTANCE_DATABASE))}")
        return url

    def _instance_files(self) -> Path:
        """DAGSTER_HOME with docker/dagster.yaml (verbatim) and the workspace override."""
        home = private_directory(self.dagster_home)
        shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")
        override = workspace_override(self.code_port)
        header = ("# Written by `spark prod` from workspace.yaml on every start: the same code location, with the code "
                  "server\n# on this host (host 127.0.0.1, and port the one `spark prod` serves it on). Edit "
                  "workspace.yaml instead.\n")
        (home / "workspace.yaml").write_text(header + yaml.safe_dump(override, sort_keys=False))
        return home

    def _instance(self, env: dict[str, str]) -> None:
        """Create the instance's tables (once, before three processes race to) and give the pools their limits."""
        from dagster import DagsterInstance

        saved = dict(os.environ)
        os.environ.update(env)  # docker/dagster.yaml reads DAGSTER_PG_* when the instance is built
        try:
            instance = DagsterInstance.from_config(str(self.dagster_home))
            try:
                for pool, limit in apply_pool_limits(instance).items():
                    self.echo(f"pool {pool}: at most {limit} step(s) at once")
            finally:
                instance.dispose()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        last_error = ""
        while True:
            for role in self.roles:
                if role.process is not None and not role.running():
                    raise TopologyFailed(f"{role.name} exited ({role.process.returncode}) while waiting for {what}; "
                                         f"{role.log}:\n{role.log_tail()}")
            try:
                if ready():
                    return
            except (OSError, ValueError, KeyError, TypeError) as exc:
                last_error = f" (last answer: {str(exc)[:300]})"
            if time.monotonic() > deadline:
                raise TopologyFailed(f"timed out after {START_TIMEOUT_SECONDS:.0f} s waiting for {what}{last_error}")
            time.sleep(1)

    # --- health --------------------------------------------------------------------------------------------------

    def _code_server_serving(self) -> bool:
        from dagster._grpc.client import DagsterGrpcClient

        if not listening(self.code_port):  # asking gRPC before it listens would print its connection errors
            return False
        try:
            return DagsterGrpcClient(port=self.code_port, host="127.0.0.1").health_check_query() == "SERVING"
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def _webserver_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The webserver's GraphQL answer's `data` (what the UI asks)."""
        return graphql(self.url, query, variables)

    def _location_loaded(self) -> bool:
        data = self.graphql(LOCATIONS_QUERY)
        entries = data["workspaceOrError"]["locationEntries"]
        return bool(entries) and all(
            e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    def _daemons_healthy(self) -> bool:
        daemons = self.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {d["daemonType"] for d in daemons if d["healthy"]}
        return set(REQUIRED_DAEMONS) <= healthy

    # --- run, stop -----------------------------------------------------------------------------------------------

    def wait(self) -> Role:
        """Block until a role exits on its own; that role."""
        while True:
            for role in self.roles:
                if not role.running():
                    return role
            time.sleep(1)

    def stop(self) -> None:
        """Daemon, webserver, code server (SIGTERM, then SIGKILL), then the simulators and the database."""
        for role in reversed(self.roles):
            if role.process is None:
                continue
            code = role.stop(STOP_TIMEOUT_SECONDS)
            self.echo(f"{role.name}: stopped ({code})")
        if self._providers is not None:
            self._providers.stop()
            self._providers = None
        stop_embedded_servers()  # the embedded server stops when its last user (this process) lets go
        self.echo("production topology stopped")


LOCATIONS_QUERY = """
query { workspaceOrError { ... on Workspace {
  locationEntries { name loadStatus locationOrLoadError { __typename } } } } }
"""
DAEMONS_QUERY = "query { instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


def graphql(base_url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST `query` to the webserver at `base_url`; the answer's `data` (errors raise ValueError)."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # a query the schema refuses: its message is in the body
        answer = json.loads(exc.read() or b"{}") or {"errors": [str(exc)]}
    if answer.get("errors"):
        raise ValueError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]
