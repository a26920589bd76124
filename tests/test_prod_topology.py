"""`spark prod --sandbox`: the production topology of docker-compose.yml as processes on loopback, from the same files.

PostgreSQL (embedded) with the `dagster` and `spark` databases, the user-code gRPC server, dagster-webserver and
dagster-daemon on docker/dagster.yaml's instance. A run is launched through the webserver's GraphQL API as the UI
launches one, the daemon's run queue starts it, and the run, its events and a sensor tick are found in PostgreSQL; then
a SIGTERM stops every process and frees every port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from spark_assets.assets.provisioning import PROVIDER_POOLS
from spark_assets.ops.prod import graphql, listening

from .conftest import REPO_ROOT

LAUNCH = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on Error { message }
  }
}"""
RUN = "query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status tags { key value } } } }"
INSTANCE = """query { instance {
  concurrencyLimits { concurrencyKey slotCount }
  runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml }
  runLauncher { name }
} }"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"spark prod exited while waiting for {what}:\n{log.read_text()[-3000:]}"
        found = predicate()
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_the_production_topology_runs_a_ui_launched_run_through_the_daemon_queue():
    root = Path(tempfile.mkdtemp(prefix="spark-prod-"))
    home, log, port = root / "spark", root / "prod.log", _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME", "PGHOST")}
    env["SPARK_HOME"] = str(home)
    started = time.monotonic()
    with log.open("w") as out:
        prod = subprocess.Popen(
            [sys.executable, "-m", "spark_assets.ops.cli", "prod", "--sandbox", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url, engine = f"http://127.0.0.1:{port}", None
    try:
        _wait_for(lambda: "production topology is up" in log.read_text(), 240, "every role to be healthy", prod, log)
        text = log.read_text()
        pids = {name: int(pid) for name, pid in re.findall(r"^(user_code|webserver|daemon): .*\(.*?pid (\d+)\)", text,
                                                            re.MULTILINE)}
        assert set(pids) == {"user_code", "webserver", "daemon"}, text
        code_port = int(re.search(r"^user_code: spark_assets.definitions on 127.0.0.1:(\d+)", text, re.MULTILINE)[1])
        instance_url = re.search(r"^instance database: (\S+)", text, re.MULTILINE)[1]
        assert sa.engine.make_url(instance_url).database == "dagster"
        engine = sa.create_engine(instance_url, poolclass=sa.pool.NullPool)

        # the instance is docker/dagster.yaml's: queued runs with the tag limits; the pools got their limits at start
        instance = graphql(url, INSTANCE)["instance"]
        assert {c["concurrencyKey"]: c["slotCount"] for c in instance["concurrencyLimits"]} == PROVIDER_POOLS
        assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4
        assert "spark/kind" in instance["runQueueConfig"]["tagConcurrencyLimitsYaml"]
        assert instance["runLauncher"]["name"] == "DefaultRunLauncher"

        # launched as the UI's "Materialize" button does: the implicit asset job with an asset selection
        launched = graphql(url, LAUNCH, {"executionParams": {
            "selector": {"repositoryLocationName": "spark_factory", "repositoryName": "__repository__",
                         "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": ["locations"]}]},
            "executionMetadata": {"tags": [{"key": "spark/test", "value": "prod-topology"}]},
        }})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        # the QueuedRunCoordinator: the daemon's run queue starts it, not the webserver
        assert launched["run"]["status"] == "QUEUED"

        def finished():
            status = graphql(url, RUN, {"id": run_id})["runOrError"]["status"]
            return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

        assert _wait_for(finished, 150, "the run to finish", prod, log) == "SUCCESS"

        with engine.connect() as conn:
            status = conn.execute(sa.text("SELECT status FROM runs WHERE run_id = :r"), {"r": run_id}).scalar()
            assert status == "SUCCESS"
            events = set(conn.execute(sa.text("SELECT dagster_event_type FROM event_logs WHERE run_id = :r"),
                                      {"r": run_id}).scalars())
        # queued by the webserver, then launched by the daemon's run queue (it reports STARTING as it launches)
        assert {"PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "ASSET_MATERIALIZATION",
                "PIPELINE_SUCCESS"} <= events, events

        def sensor_ticks() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM job_ticks WHERE type = 'SENSOR'")).scalar()

        assert _wait_for(sensor_ticks, 90, "a sensor tick", prod, log) > 0
    finally:
        if engine is not None:
            engine.dispose()
        prod.send_signal(signal.SIGTERM)
        try:
            code = prod.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(prod.pid, signal.SIGKILL)
            raise
    try:
        text = log.read_text()
        assert code == 0, text[-3000:]
        assert "production topology stopped" in text and "Traceback" not in text, text[-3000:]
        assert not [name for name, pid in pids.items() if _pid_exists(pid)], "a role outlived spark prod"
        assert not listening(port) and not listening(code_port)
        assert not (home / "pgdata" / "postmaster.pid").exists(), "the embedded PostgreSQL is still running"
        assert time.monotonic() - started < 240
    finally:
        shutil.rmtree(root, ignore_errors=True)
