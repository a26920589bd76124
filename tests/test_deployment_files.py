"""The Docker deployment files, checked without a Docker engine.

docker-compose.yml, Dockerfile, dagster.yaml, workspace.yaml, .env.example and docker/postgres-init.sql must agree with
each other and with the package: service names and ports with the workspace, variables with .env.example, the instance
config with Dagster's own schema (and, on the embedded test PostgreSQL, with a real DagsterInstance), the image with
pyproject.toml. Compose's `${VAR}` interpolation is reimplemented here for the forms the compose file uses.
"""

from __future__ import annotations

import re
import shlex
import tomllib
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DAGSTER_YAML = REPO_ROOT / "docker" / "dagster.yaml"
WORKSPACE_YAML = REPO_ROOT / "workspace.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
POSTGRES_INIT = REPO_ROOT / "docker" / "postgres-init.sql"
PYPROJECT = REPO_ROOT / "pyproject.toml"

SERVICES = {"postgres", "user_code", "webserver", "daemon"}
DAGSTER_SERVICES = ("user_code", "webserver", "daemon")
DAGSTER_HOME = "/opt/dagster/dagster_home"
APP_DATABASE = "spark"
PG_ENV = {
    "DAGSTER_PG_HOST": "db.invalid",
    "DAGSTER_PG_PORT": "5433",
    "DAGSTER_PG_USER": "dummy_user",
    "DAGSTER_PG_PASSWORD": "dummy-password",
    "DAGSTER_PG_DB": "dummy_db",
}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, and bare $VAR; $$ is a
# literal dollar sign.
_INTERPOLATION_RE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(KeyError):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """A compose value with ${...} substituted from `env`, as `docker compose config` would."""

    def replace(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-"):
            return arg if unset else value
        if op and op.endswith("+"):
            return "" if unset else arg
        return value or ""

    return _INTERPOLATION_RE.sub(replace, text)


def referenced_variables(text: str) -> set[str]:
    """Every variable name Compose would interpolate in `text` (comments are stripped first)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    names = set()
    for match in _INTERPOLATION_RE.finditer("\n".join(lines)):
        if not match.group("escaped"):
            names.add(match.group("braced") or match.group("bare"))
    return names


def env_file_entries(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped; quotes around a value removed)."""
    entries = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path.name}:{number}: not KEY=VALUE: {raw!r}"
        assert key not in entries, f"{path.name}:{number}: {key} assigned twice"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        entries[key] = value
    return entries


def env_references(node: Any) -> Iterator[str]:
    """Every `{env: VAR}` in a loaded dagster.yaml."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            yield node["env"]
        else:
            for value in node.values():
                yield from env_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from env_references(value)


def command_args(service: Mapping[str, Any]) -> list[str]:
    """The service's command as an argument list; `sh -c "..."` is split into the words of its script."""
    command = service.get("command")
    assert command, "service has no command"
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if len(args) == 3 and args[0] in ("sh", "bash", "/bin/sh", "/bin/bash") and args[1] == "-c":
        return shlex.split(args[2])
    return args


def option_value(args: list[str], *names: str) -> str:
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    raise AssertionError(f"none of {names} in {args}")


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def service_env_files(service: Mapping[str, Any]) -> list[str]:
    env_file = service.get("env_file") or []
    items = [env_file] if isinstance(env_file, (str, dict)) else env_file
    return [item["path"] if isinstance(item, dict) else item for item in items]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, with line continuations joined and comments dropped."""
    joined, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends with a line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in joined]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def workspace_server() -> dict:
    entries = yaml.safe_load(WORKSPACE_YAML.read_text())["load_from"]
    assert len(entries) == 1 and set(entries[0]) == {"grpc_server"}, entries
    return entries[0]["grpc_server"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return env_file_entries(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def tool_dagster() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["dagster"]


# --- every file parses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE_FILE, DAGSTER_YAML, WORKSPACE_YAML], ids=lambda p: p.name)
def test_yaml_files_parse_to_mappings(path: Path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_env_example_is_key_value_lines(env_example: dict[str, str]):
    assert env_example, ".env.example assigns nothing"


# --- docker-compose.yml -----------------------------------------------------------------------------------------------


def test_compose_has_exactly_the_four_services(services: dict):
    assert set(services) == SERVICES


@pytest.mark.parametrize("name", DAGSTER_SERVICES)
def test_dagster_services_wait_for_a_healthy_postgres(services: dict, name: str):
    depends_on = services[name].get("depends_on")
    assert isinstance(depends_on, dict), f"{name}: depends_on must be the long form, with conditions"
    assert depends_on.get("postgres", {}).get("condition") == "service_healthy"


def test_postgres_service(services: dict, compose: dict):
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    test = postgres["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    named = dict(v.split(":")[:2] for v in postgres["volumes"] if not v.startswith((".", "/")))
    data_volumes = [volume for volume, target in named.items() if target == "/var/lib/postgresql/data"]
    assert data_volumes and data_volumes[0] in (compose.get("volumes") or {}), "data must live in a named volume"
    assert "ports" not in postgres, "the database is reachable from the compose network only"


def test_postgres_init_script_creates_the_app_database(services: dict):
    mounts = [v.split(":") for v in services["postgres"]["volumes"] if v.startswith((".", "/"))]
    init = [m for m in mounts if m[1].startswith("/docker-entrypoint-initdb.d/")]
    assert len(init) == 1, mounts
    host_path, container_path = init[0][0], init[0][1]
    assert (REPO_ROOT / host_path).resolve() == POSTGRES_INIT
    assert container_path.endswith(".sql")
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", POSTGRES_INIT.read_text()).split(";") if s.strip()]
    assert statements == [f"CREATE DATABASE {APP_DATABASE}"]


def test_postgres_healthcheck_leaves_variables_to_the_container(services: dict):
    test = services["postgres"]["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    # `$${POSTGRES_USER}` reaches the container as `${POSTGRES_USER}`; a single `$` would be filled in by Compose.
    assert referenced_variables(text) == set(), "healthcheck variables must be escaped as $$"


def test_user_code_migrates_then_serves_the_definitions(services: dict, tool_dagster: dict):
    command = services["user_code"]["command"]
    script = command[2] if isinstance(command, list) and command[:2] == ["sh", "-c"] else str(command)
    upgrade, serve = script.split("&&", 1)
    assert shlex.split(upgrade) == ["spark", "db", "upgrade"], "the schema must be upgraded before the server starts"
    args = command_args(services["user_code"])
    start = args.index("dagster")
    assert args[start:start + 3] in (["dagster", "code-server", "start"], ["dagster", "api", "grpc"]), args
    assert option_value(args, "-h", "--host") == "0.0.0.0"
    assert option_value(args, "-m", "--module-name") == tool_dagster["module_name"] == "spark_assets.definitions"
    assert "exec" in shlex.split(serve), "exec, so the code server receives the container's stop signal"


def test_user_code_has_the_app_database_url_and_secrets(services: dict, env_example: dict[str, str]):
    user_code = services["user_code"]
    assert service_env_files(user_code) == [".env"]
    url = make_url(interpolate(service_environment(user_code)["DATABASE_URL"], env_example))
    assert url.host == "postgres" and url.port in (None, 5432)
    assert url.database == APP_DATABASE
    assert url.username == env_example["POSTGRES_USER"] and url.password == env_example["POSTGRES_PASSWORD"]
    from spark_resources.database import normalize_url

    assert make_url(normalize_url(url.render_as_string(hide_password=False))).drivername == "postgresql+psycopg"


def test_only_user_code_receives_the_whole_env_file(services: dict):
    # Runs execute in user_code (DefaultRunLauncher); the other services need no app secret.
    for name in SERVICES - {"user_code"}:
        assert service_env_files(services[name]) == [], f"{name} should not get .env wholesale"


def test_webserver_command_and_port(services: dict):
    webserver = services["webserver"]
    args = command_args(webserver)
    assert args[0] == "dagster-webserver"
    assert option_value(args, "-h", "--host") == "0.0.0.0"
    assert option_value(args, "-p", "--port") == "3000"
    assert option_value(args, "-w", "--workspace") == "workspace.yaml"
    published = [str(p).rsplit(":", 1) for p in webserver["ports"]]
    assert ["127.0.0.1:3000", "3000"] in published, "the UI has no authentication: publish it on localhost only"


def test_daemon_command(services: dict):
    args = command_args(services["daemon"])
    assert args[:2] == ["dagster-daemon", "run"]
    assert option_value(args, "-w", "--workspace") == "workspace.yaml"


@pytest.mark.parametrize("name", ["webserver", "daemon"])
def test_webserver_and_daemon_load_the_workspace_from_dagster_home(services: dict, name: str):
    # In the app directory, pyproject.toml's [tool.dagster] would win and load the code in-process.
    assert services[name]["working_dir"] == DAGSTER_HOME


def test_dagster_services_share_one_image_and_dagster_home(services: dict):
    images = {services[name]["image"] for name in DAGSTER_SERVICES}
    builds = {(services[n]["build"]["context"], services[n]["build"].get("dockerfile", "Dockerfile")) for n in DAGSTER_SERVICES}
    assert len(images) == 1 and builds == {(".", "Dockerfile")}
    for name in DAGSTER_SERVICES:
        assert service_environment(services[name])["DAGSTER_HOME"] == DAGSTER_HOME
        assert f"dagster_storage:{DAGSTER_HOME}/storage" in services[name]["volumes"], "compute logs must be shared"


# --- workspace.yaml ---------------------------------------------------------------------------------------------------


def test_workspace_points_at_the_user_code_server(services: dict, workspace_server: dict, tool_dagster: dict):
    assert workspace_server["host"] == "user_code" and workspace_server["host"] in services
    port = int(option_value(command_args(services["user_code"]), "-p", "--port"))
    assert workspace_server["port"] == port
    assert workspace_server["location_name"] == tool_dagster["code_location_name"]
    health = services["user_code"]["healthcheck"]["test"]
    assert int(option_value([str(a) for a in health], "-p", "--port")) == port


def test_workspace_is_a_valid_dagster_workspace_file():
    from dagster._core.workspace.config_schema import ensure_workspace_config

    ensure_workspace_config(yaml.safe_load(WORKSPACE_YAML.read_text()), str(WORKSPACE_YAML))


# --- dagster.yaml -----------------------------------------------------------------------------------------------------


def test_dagster_yaml_is_a_valid_postgres_instance_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef

    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    config, custom_instance_class = dagster_instance_config(str(DAGSTER_YAML.parent))
    assert custom_instance_class is None
    assert set(config["storage"]) == {"postgres"}
    postgres_db = config["storage"]["postgres"]["postgres_db"]
    assert set(postgres_db) == {"scheme", "hostname", "port", "username", "password", "db_name"}
    # dagster-postgres needs psycopg2: under SQLAlchemy 2.1 a plain postgresql:// means psycopg 3, which breaks it
    assert postgres_db["scheme"] == "postgresql+psycopg2"

    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DAGSTER_YAML.parent))
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    assert ref.settings["telemetry"] == {"enabled": False}
    assert ref.settings["run_monitoring"]["enabled"] is True
    assert ref.settings["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert "pools" not in ref.settings["concurrency"]
    assert ref.settings["retention"]["sensor"]["purge_after_days"]["skipped"] > 0


def test_dagster_yaml_classes_load_without_a_database(tmp_path: Path):
    from dagster import DefaultRunLauncher
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.scheduler import DagsterDaemonScheduler

    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DAGSTER_YAML.parent))
    assert isinstance(ref.run_coordinator_data.rehydrate(QueuedRunCoordinator), QueuedRunCoordinator)
    assert isinstance(ref.run_launcher_data.rehydrate(DefaultRunLauncher), DefaultRunLauncher)
    assert isinstance(ref.scheduler_data.rehydrate(DagsterDaemonScheduler), DagsterDaemonScheduler)


def test_dagster_yaml_postgres_connection_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from dagster._config import process_config
    from dagster._core.instance.ref import InstanceRef
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DAGSTER_YAML.parent))
    storage_config = yaml.safe_load(ref.storage_data.config_yaml)
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    resolved = process_config(DagsterPostgresStorage.config_type(), storage_config)
    assert resolved.success, resolved.errors
    url = "postgresql+psycopg2://dummy_user:dummy-password@db.invalid:5433/dummy_db"
    assert pg_url_from_config(resolved.value) == url

    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    assert not process_config(DagsterPostgresStorage.config_type(), storage_config).success


def test_dagster_yaml_env_vars_match_the_compose_services(services: dict, env_example: dict[str, str]):
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    needed = set(env_references(config))
    assert needed == set(PG_ENV)
    for name in DAGSTER_SERVICES:
        environment = service_environment(services[name])
        from_env_file = set(env_example) if ".env" in service_env_files(services[name]) else set()
        missing = needed - set(environment) - from_env_file
        assert not missing, f"{name} does not get {sorted(missing)}"
        resolved = {var: interpolate(environment[var], env_example) for var in needed if var in environment}
        assert resolved.get("DAGSTER_PG_HOST", "postgres") in services
        assert resolved.get("DAGSTER_PG_PORT", "5432") == "5432"
        assert resolved.get("DAGSTER_PG_DB") == env_example["POSTGRES_DB"] != APP_DATABASE


@pytest.mark.slow
def test_dagster_yaml_builds_a_working_instance(admin_url: str, monkeypatch: pytest.MonkeyPatch):
    """The real thing on the test PostgreSQL: Dagster creates its tables and the instance has the configured parts."""
    from dagster import DagsterInstance, DefaultRunLauncher
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.scheduler.instigation import TickStatus
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    name = f"dagster_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url)
    socket_dir = url.query.get("host")
    if socket_dir:  # the embedded server listens on a Unix socket only: an empty host makes libpq use PGHOST
        monkeypatch.setenv("PGHOST", socket_dir)
    monkeypatch.setenv("DAGSTER_PG_HOST", "" if socket_dir else url.host or "localhost")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_USER", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    try:
        instance = DagsterInstance.from_config(str(DAGSTER_YAML.parent))
        try:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert instance.get_runs() == []
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
            assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4
            assert isinstance(instance.run_launcher, DefaultRunLauncher)
            assert instance.run_monitoring_enabled and not instance.telemetry_enabled
            limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
            assert {limit["value"] for limit in limits} == {"provisioning", "releases", "analytics"}
            assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
            assert not instance.run_retries_retry_on_asset_or_op_failure
            retention = instance.get_tick_retention_settings(InstigatorType.SENSOR)
            assert retention[TickStatus.SKIPPED] == 7 and retention[TickStatus.FAILURE] > retention[TickStatus.SKIPPED]
        finally:
            instance.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_dagster_yaml_limits_the_runs_that_call_providers():
    """Each limited kind of run has a limit on the tag the automation sets, below the instance-wide one."""
    from spark_assets.automation.run_kinds import LIMITED_RUN_KINDS, RUN_KIND_TAG, RUN_KINDS

    runs = yaml.safe_load(DAGSTER_YAML.read_text())["concurrency"]["runs"]
    limits = {(limit["key"], limit["value"]): limit["limit"] for limit in runs["tag_concurrency_limits"]}
    assert len(limits) == len(runs["tag_concurrency_limits"]), "a kind is limited twice"
    assert set(limits) == {(RUN_KIND_TAG, kind) for kind in LIMITED_RUN_KINDS}
    assert set(LIMITED_RUN_KINDS) <= set(RUN_KINDS)
    assert all(0 < limit < runs["max_concurrent_runs"] for limit in limits.values())


def test_dagster_yaml_retries_runs_whose_worker_failed(tmp_path: Path):
    from dagster._core.instance.ref import InstanceRef

    retries = InstanceRef.from_dir(str(tmp_path), config_dir=str(DAGSTER_YAML.parent)).settings["run_retries"]
    assert retries == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}


def test_every_automated_run_says_its_kind():
    """Every RunRequest of the sensors and schedules passes tags, and every job has run tags naming a kind, so the
    instance's tag limits see them (the tags' values are checked by the sensor and schedule tests)."""
    import ast

    from spark_assets.automation.run_kinds import RETRY_STRATEGY_TAG, RUN_KIND_TAG, RUN_KINDS
    from spark_assets.definitions import defs

    for module in sorted((REPO_ROOT / "spark_assets" / "automation").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RunRequest":
                assert "tags" in {k.arg for k in node.keywords}, f"{module.name}:{node.lineno}: RunRequest without tags"
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert jobs
    for job in jobs:
        assert job.run_tags.get(RUN_KIND_TAG) in RUN_KINDS, job.name
        assert job.run_tags.get(RETRY_STRATEGY_TAG) == "FROM_FAILURE", job.name


# --- spark prod: the same topology as processes (tests/test_prod_topology.py runs it) ---------------------------------


def test_prod_uses_the_compose_files_and_overrides_only_the_workspace_host_and_port(services: dict):
    from spark_assets.ops import prod

    assert prod.INSTANCE_YAML == DAGSTER_YAML and prod.WORKSPACE_YAML == WORKSPACE_YAML
    original = yaml.safe_load(WORKSPACE_YAML.read_text())
    override = prod.workspace_override(45678)
    server = override["load_from"][0]["grpc_server"]
    assert server == dict(original["load_from"][0]["grpc_server"], host="127.0.0.1", port=45678)
    rest = {k: v for k, v in original.items() if k != "load_from"}
    assert {k: v for k, v in override.items() if k != "load_from"} == rest
    assert prod.workspace_override()["load_from"][0]["grpc_server"]["port"] == server_port(services)
    assert command_args(services["user_code"])[-2:] == ["-m", prod.CODE_MODULE]


def server_port(services: dict) -> int:
    return int(option_value(command_args(services["user_code"]), "-p", "--port"))


def test_prod_databases_are_the_compose_ones(env_example: dict[str, str]):
    from spark_assets.ops import prod

    assert prod.INSTANCE_DATABASE == env_example["POSTGRES_DB"]
    assert f"CREATE DATABASE {prod.APP_DATABASE}" in POSTGRES_INIT.read_text()


def test_prod_instance_environment_for_a_socket_and_for_a_host():
    from spark_assets.ops.prod import instance_environment

    embedded = instance_environment("postgresql+psycopg://postgres@/spark?host=%2Ftmp%2Fpg%20data")
    assert embedded["DAGSTER_PG_HOST"] == "" and embedded["PGHOST"] == "/tmp/pg data"
    assert (embedded["DAGSTER_PG_USER"], embedded["DAGSTER_PG_DB"]) == ("postgres", "dagster")
    remote = instance_environment("postgresql://spark:s3cret@db.internal:5433/spark")
    assert "PGHOST" not in remote
    assert {k: remote[k] for k in PG_ENV} == {
        "DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5433", "DAGSTER_PG_USER": "spark",
        "DAGSTER_PG_PASSWORD": "s3cret", "DAGSTER_PG_DB": "dagster"}
    assert make_url(remote["DATABASE_URL"]).database == "spark"


# --- .env.example -----------------------------------------------------------------------------------------------------


def test_every_compose_variable_is_in_env_example(env_example: dict[str, str]):
    referenced = referenced_variables(COMPOSE_FILE.read_text())
    assert referenced, "docker-compose.yml interpolates nothing?"
    assert referenced <= set(env_example), f"missing from .env.example: {sorted(referenced - set(env_example))}"


def test_compose_interpolates_cleanly_from_env_example(compose: dict, env_example: dict[str, str]):
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            interpolate(node, env_example)  # raises on a required variable left unset

    walk(compose)
    # Without a .env, Compose refuses to start rather than run PostgreSQL with an empty password.
    with pytest.raises(MissingVariable):
        interpolate(compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"], {})


def test_every_dagster_yaml_variable_is_documented_in_env_example():
    text = ENV_EXAMPLE.read_text()
    for var in env_references(yaml.safe_load(DAGSTER_YAML.read_text())):
        assert re.search(rf"\b{var}\b", text), f"{var} is not mentioned in .env.example"


_SECRET_NAME_RE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
_PLACEHOLDER_RE = re.compile(r"change[-_]?me|placeholder|replace[-_]?me|example|your[-_]|<.*>|^x+$", re.IGNORECASE)
_REAL_SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    "Fernet key / 32 base64 bytes": re.compile(r"^[A-Za-z0-9_\-]{43}=$"),
    "long hex string": re.compile(r"\b[0-9a-fA-F]{24,}\b"),
    "long base64/token string": re.compile(r"[A-Za-z0-9+/_\-]{32,}={0,2}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "password in a URL": re.compile(r"://[^/\s:@]+:[^/\s@]+@"),
}


def test_env_example_holds_placeholders_only(env_example: dict[str, str]):
    for key, value in env_example.items():
        for label, pattern in _REAL_SECRET_PATTERNS.items():
            assert not pattern.search(value), f".env.example {key}: looks like a real secret ({label})"
        if _SECRET_NAME_RE.search(key) and value:
            assert _PLACEHOLDER_RE.search(value), f".env.example {key}: secret values must be placeholders, got {value!r}"


def test_env_example_lists_the_app_secrets(env_example: dict[str, str]):
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "SPARK_FERNET_KEY"} <= set(env_example)
    assert env_example["POSTGRES_DB"] != APP_DATABASE, "the init script creates `spark` beside the instance database"


def test_real_env_files_stay_out_of_the_image():
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"}
    assert ".env" in ignored
    assert {".venv", ".git", ".spark"} <= ignored


# --- Dockerfile -------------------------------------------------------------------------------------------------------


def test_dockerfile_base_image_and_workdir():
    instructions = dockerfile_instructions()
    froms = [args for op, args in instructions if op == "FROM"]
    assert froms == ["python:3.11-slim"]
    assert ("WORKDIR", "/opt/dagster/app") in instructions


def test_dockerfile_copies_the_package_sources_including_sql():
    instructions = dockerfile_instructions()
    copied: set[str] = set()
    for op, args in instructions:
        if op == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            copied.update(src.rstrip("/") for src in words[:-1])
    assert {"pyproject.toml", "README.md", "sql", "spark_assets", "spark_resources", "examples"} <= copied
    for src in copied:
        assert (REPO_ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.strip()}
    assert not copied & ignored, f".dockerignore excludes what the Dockerfile copies: {copied & ignored}"


def test_dockerfile_installs_the_package_after_copying_it():
    instructions = dockerfile_instructions()
    install = next(i for i, (op, args) in enumerate(instructions) if op == "RUN" and "pip install" in args)
    words = shlex.split(instructions[install][1].split("&&")[0])
    assert words[:2] in (["pip", "install"], ["python", "-m"]) and words[-1] == ".", words
    assert "--no-cache-dir" in words
    copies_before = " ".join(args for op, args in instructions[:install] if op == "COPY")
    for src in ("pyproject.toml", "README.md", "sql", "spark_assets", "spark_resources"):
        assert src in copies_before, f"{src} must be in the build context before pip install"


def test_wheel_carries_the_migrations():
    # The installed package finds its migrations at spark_resources/sql: the Dockerfile relies on this force-include.
    wheel = tomllib.loads(PYPROJECT.read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"]["sql"] == "spark_resources/sql"
    assert set(wheel["packages"]) == {"spark_assets", "spark_resources"}


def test_dockerfile_sets_up_dagster_home_and_runs_as_non_root(services: dict):
    instructions = dockerfile_instructions()
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert f"DAGSTER_HOME={DAGSTER_HOME}" in env
    copies = [shlex.split(args) for op, args in instructions if op == "COPY"]
    home_copy = [c for c in copies if c[-1].rstrip("/") in ("$DAGSTER_HOME", "${DAGSTER_HOME}", DAGSTER_HOME)]
    assert home_copy and {"docker/dagster.yaml", "workspace.yaml"} <= set(home_copy[0])
    users = [(i, args) for i, (op, args) in enumerate(instructions) if op == "USER"]
    assert users, "the image must not run as root"
    last_index, last_user = users[-1]
    assert last_user.split(":")[0] not in ("root", "0")
    install = next(i for i, (op, args) in enumerate(instructions) if op == "RUN" and "pip install" in args)
    assert last_index > install


def test_the_root_dagster_yaml_is_a_local_instance_that_needs_no_environment(tmp_path: Path):
    """`dagster dev` in the repo root without DAGSTER_HOME builds its instance from ./dagster.yaml: it must not need
    PostgreSQL or any variable."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert "storage" not in config and not list(env_references(config))
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path), config_dir=str(REPO_ROOT)))
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.get_settings("telemetry") == {"enabled": False}
    finally:
        instance.dispose()
