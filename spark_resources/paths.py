"""Where the repository's own files are: the one module that knows the source tree's layout.

`REPOSITORY_ROOT` is the checkout holding `spark_assets/` and `spark_resources/` (this file is
`<root>/spark_resources/paths.py`). Everything found beside the packages is named here, so moving a module never
changes what it finds. In an installed wheel the root is site-packages, where none of these exist: each user says what
it does then (the migrations use the copy of `sql/` inside the wheel; the local instance falls back to Dagster's
defaults; the demo needs a source checkout).
"""

from __future__ import annotations

from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

#: the SQL migrations in a source checkout (a wheel carries them as spark_resources/sql, see pyproject.toml)
SQL_DIRECTORY = REPOSITORY_ROOT / "sql"
#: the local Dagster instance config (2 runs at once, ...), copied into a new DAGSTER_HOME by `spark demo` / `spark ui`
LOCAL_INSTANCE_YAML = REPOSITORY_ROOT / "dagster.yaml"
#: the blueprint `spark demo` imports by default
DEMO_BLUEPRINT = REPOSITORY_ROOT / "examples" / "demo-roofing.yaml"
