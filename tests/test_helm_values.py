"""deploy/helm/values.yaml against the official Dagster Helm chart's schema, and the settings Spark Factory relies on.

The chart's schema (`helm/dagster/values.schema.json` of dagster-io/dagster at the tag we pin, 1.13.27) ships in no
package and cannot be downloaded here (no internet); deploy/helm/vendor/README.md says how to vendor it. Until it is,
the tests that apply it skip, saying so, and the settings Spark Factory relies on are checked by hand below. It
declares no `$schema`; its keywords are Draft 7's, so it is applied as Draft 7. Its Kubernetes object shapes are
`$ref`s to kubernetesjsonschema.dev: they resolve to an empty schema here, and the Kubernetes shapes that matter to us
(secret references, resources) are checked by hand.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPO_ROOT = Path(__file__).resolve().parent.parent
VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"
SCHEMA = REPO_ROOT / "deploy" / "helm" / "vendor" / "dagster-1.13.27" / "values.schema.json"
KUBERNETES_DEFINITIONS = "https://kubernetesjsonschema.dev/"

#: the kinds of run the queue limits, by the `spark/kind` tag on the jobs
RUN_KINDS = {"provisioning", "releases", "analytics"}
#: every key the runs need from the app's Secret (names as in .env.example)
SECRET_VARIABLES = ("DATABASE_URL", "SPARK_FERNET_KEY", "R2_SECRET_ACCESS_KEY", "NAMECHEAP_API_KEY",
                    "GOOGLE_CLIENT_SECRET", "MATOMO_TOKEN_AUTH")


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _kubernetes_stand_in(schema: dict) -> dict:
    """An empty schema at every JSON pointer the chart schema asks of the Kubernetes definitions."""
    document: dict = {}
    for reference in _references(schema):
        if not reference.startswith(KUBERNETES_DEFINITIONS):
            continue
        node = document
        for part in reference.partition("#/")[2].split("/"):
            node = node.setdefault(part, {})
    return document


def _validator(schema: dict) -> jsonschema.Draft7Validator:
    stand_in = _kubernetes_stand_in(schema)

    def retrieve(uri: str) -> Resource:
        if not uri.startswith(KUBERNETES_DEFINITIONS):  # anything else would be a network fetch: refuse
            raise LookupError(uri)
        return Resource(contents=stand_in, specification=DRAFT7)

    return jsonschema.Draft7Validator(schema, registry=Registry(retrieve=retrieve))


@pytest.fixture(scope="module")
def schema() -> dict:
    if not SCHEMA.is_file():
        pytest.skip(f"the chart's values.schema.json for 1.13.27 is not vendored at {SCHEMA.relative_to(REPO_ROOT)}: "
                    "no internet here, and it ships in no package (deploy/helm/vendor/README.md: how to add it)")
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="module")
def validator(schema: dict) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)
    return _validator(schema)


@pytest.fixture()
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _errors(validator: jsonschema.Draft7Validator, values: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(values)]


def test_schema_is_the_vendored_chart_schema(schema: dict) -> None:
    assert "$schema" not in schema  # hence Draft 7, the draft its keywords belong to
    assert schema["title"] == "DagsterHelmValues"
    assert {"dagster-user-deployments", "runLauncher", "dagsterDaemon", "postgresql"} <= set(schema["required"])


def test_values_validate_against_the_chart_schema(validator: jsonschema.Draft7Validator, values: dict) -> None:
    assert _errors(validator, values) == []


def _queued(values: dict) -> dict:
    return values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a string where the schema wants an integer (anyOf integer, {env: ...}, null)
        (lambda v: _queued(v).__setitem__("maxConcurrentRuns", "sixteen"), "dagsterDaemon.runCoordinator"),
        # an unknown key where additionalProperties is false
        (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].__setitem__("cpuLimit", "2"), "is not valid"),
        # a launcher the chart does not know
        (lambda v: v["runLauncher"].__setitem__("type", "DockerRunLauncher"), "DockerRunLauncher"),
        # a tag limit without its limit (required)
        (lambda v: _queued(v)["tagConcurrencyLimits"][0].pop("limit"), "runCoordinator"),
        # the user code deployment without its port (required)
        (lambda v: v["dagster-user-deployments"]["deployments"][0].pop("port"), "'port' is a required property"),
        # a misspelt daemon setting (additionalProperties false)
        (lambda v: v["dagsterDaemon"].__setitem__("runMonitor", {"enabled": True}), "runMonitor"),
    ],
    ids=["string-for-int", "unknown-launcher-key", "unknown-launcher", "tag-limit-without-limit", "no-port",
         "misspelt-daemon-key"],
)
def test_the_schema_rejects_a_planted_mistake(validator: jsonschema.Draft7Validator, values: dict, change,
                                              expected: str) -> None:
    bad = copy.deepcopy(values)
    change(bad)
    errors = _errors(validator, bad)
    assert errors, "the schema accepted a planted mistake: it is not being applied"
    assert any(expected in error for error in errors), errors


def test_user_code_is_this_image_and_module(values: dict) -> None:
    user = values["dagster-user-deployments"]
    assert user["enabled"] and user["enableSubchart"]
    (deployment,) = user["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "spark_assets.definitions"]
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert deployment["port"] == workspace["load_from"][0]["grpc_server"]["port"] == 4000
    assert deployment["image"]["repository"].endswith("/spark-factory")
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_runs_go_to_kubernetes_with_their_own_resources(values: dict) -> None:
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    resources = launcher["config"]["k8sRunLauncher"]["resources"]
    assert set(resources) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def test_the_queue_limits_runs_in_all_and_per_kind(values: dict) -> None:
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert isinstance(queued["maxConcurrentRuns"], int) and queued["maxConcurrentRuns"] > 1
    limits = {limit["value"]: limit["limit"] for limit in queued["tagConcurrencyLimits"]
              if limit["key"] == "spark/kind"}
    assert set(limits) == RUN_KINDS
    assert all(0 < limit <= queued["maxConcurrentRuns"] for limit in limits.values())
    assert limits["analytics"] == 1  # one run covers every site; two would share the same Google budgets


def test_no_secret_value_only_secret_references(values: dict) -> None:
    text = VALUES.read_text()
    for variable in SECRET_VARIABLES:
        assert f"{variable}:" not in text and f"{variable}=" not in text, f"{variable} has a value in values.yaml"
    assert values["postgresql"]["postgresqlPassword"] == ""
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    assert values["postgresql"]["enabled"] is False
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for holder in (deployment, launcher):
        assert holder["envSecrets"] == [{"name": "spark-factory-env"}]
        assert not holder.get("env") and not holder.get("envVars")  # nothing inline that could hold a value


def test_every_secret_variable_is_one_the_app_reads(values: dict) -> None:
    """The Secret's keys named in values.yaml's comments are .env.example's, so an operator can build it from .env."""
    example = {line.split("=", 1)[0] for line in (REPO_ROOT / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    for variable in SECRET_VARIABLES:
        assert variable in VALUES.read_text()
        assert variable == "DATABASE_URL" or variable in example  # DATABASE_URL is derived by compose from POSTGRES_*
