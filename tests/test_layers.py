"""The package's layers hold: each module imports only from its own layer or the ones below it, the pure cores import
no dagster (nor, for content, a database), and no two modules import each other, even lazily inside a function.

The layers, top to bottom (docs/ARCHITECTURE.md, "Layers"):

    ops            spark_assets.ops.*           the operator's entry points
    definitions    spark_assets.definitions     the one Definitions object
    automation     spark_assets.automation.*    sensors, schedules
    assets         spark_assets.assets.*        the thin Dagster layer
    partitions     spark_assets.partitions      partition definitions
    records        spark_assets.records.*       rows in SQL, no dagster
    resources      spark_resources.*            the doors to the outside
    analytics      spark_assets.analytics.*     which analytics days are final, the report and its charts (pure)
    release        spark_assets.release.*       where releases live in the bucket, how a URL finds its file (pure)
    site           spark_assets.site.*          the pure site renderer (uses content's URL scheme)
    content        spark_assets.content.*       the pure core
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

LAYERS = ["content", "site", "release", "analytics", "resources", "records", "partitions", "assets", "automation", "definitions", "ops"]
PACKAGES = ("spark_assets", "spark_resources")


def layer_of(module: str) -> str:
    if module.startswith("spark_resources"):
        return "resources"
    parts = module.split(".")
    if parts == ["spark_assets"]:
        return "package"  # the package's __init__: a warnings filter, imports nothing of ours
    name = parts[1]
    assert name in LAYERS, f"{module} belongs to no layer: add it to a layer's folder (or to LAYERS here)"
    return name


def package_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours that `path` imports, at the top or inside a function (TYPE_CHECKING-only ones excluded)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_checking_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_checking_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from spark_assets.ops import sandbox` imports the module spark_assets.ops.sandbox
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name.startswith(PACKAGES):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    graph = {}
    for module, path in modules.items():
        # a package's own __init__ is imported with every module in it: not an arrow worth checking
        graph[module] = {m for m in imports_of(path, modules) if m != module and not module.startswith(m + ".")}
    return graph


def test_every_module_imports_only_from_its_own_layer_or_below():
    graph = import_graph()
    upward = []
    for module, imported in graph.items():
        here = layer_of(module)
        for target in imported:
            there = layer_of(target)
            if "package" in (here, there):
                continue
            if LAYERS.index(there) > LAYERS.index(here):
                upward.append(f"{module} ({here}) imports {target} ({there})")
    assert not upward, "imports that reach up a layer:\n" + "\n".join(sorted(upward))


def test_the_package_has_no_import_circles():
    graph = import_graph()
    state: dict[str, str] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The checker itself: an asset module that imported the CLI would be caught."""
    modules = package_modules()
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from spark_assets.ops.cli import main\n")
    assert imports_of(planted, modules) == {"spark_assets.ops.cli"}
    assert LAYERS.index(layer_of("spark_assets.ops.cli")) > LAYERS.index(layer_of("spark_assets.assets.generation"))


@pytest.mark.parametrize(
    "core, forbidden",
    [
        ("spark_assets.content", ("dagster", "sqlalchemy", "psycopg")),
        ("spark_assets.site", ("dagster", "sqlalchemy", "psycopg")),
        ("spark_assets.release", ("dagster", "sqlalchemy", "psycopg", "boto3")),
        ("spark_assets.analytics", ("dagster", "sqlalchemy", "psycopg", "httpx")),
        ("spark_assets.records", ("dagster",)),
    ],
)
def test_the_pure_cores_do_not_import_dagster(core, forbidden):
    """Imported for real, in a fresh interpreter: what the modules pull in, directly or through others."""
    names = sorted(m for m in package_modules() if m == core or m.startswith(core + "."))
    code = (
        f"import sys; import {', '.join(names)}; "
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r})); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, f"{core} pulls in {result.stdout}{result.stderr}"


def test_files_beside_the_packages_are_found_from_the_one_repository_root(tmp_path, monkeypatch):
    """What `spark demo` and `spark ui` find through spark_resources.paths: moving a module must not lose them. Without
    the local dagster.yaml a new instance would silently run with Dagster's defaults instead of two runs at once."""
    from dagster import DagsterInstance

    from spark_assets.ops.local_instance import prepare_dagster_home
    from spark_resources import migrations, paths

    assert paths.REPOSITORY_ROOT == REPO_ROOT
    assert paths.DEMO_BLUEPRINT.is_file()
    assert migrations.sql_directory() == REPO_ROOT / "sql" and migrations.discover()

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))  # restored afterwards; prepare_dagster_home keeps it
    home = prepare_dagster_home(tmp_path / "unused")
    assert home == tmp_path / "dagster"
    assert (home / "dagster.yaml").read_text() == (REPO_ROOT / "dagster.yaml").read_text()
    instance = DagsterInstance.from_config(str(home))
    try:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
    finally:
        instance.dispose()
