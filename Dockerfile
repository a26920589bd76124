# One image for every Dagster process of the Docker deployment (docker-compose.yml): the user-code gRPC server
# (`user_code`, which also runs the runs), dagster-webserver and dagster-daemon. Build context: the repository root;
# .dockerignore keeps .venv, .git, .env and local state out of it.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    SPARK_HOME=/opt/dagster/spark_home

# Processes run as an unprivileged user; only DAGSTER_HOME (instance storage, compute logs) and SPARK_HOME are writable.
RUN groupadd --system --gid 10001 dagster \
 && useradd --system --uid 10001 --gid dagster --create-home --home-dir /home/dagster --shell /usr/sbin/nologin dagster

WORKDIR /opt/dagster/app

# The package and what its wheel needs: pyproject.toml (hatchling) and README.md (its `readme`); sql/ is force-included
# into the wheel as spark_resources/sql, which is where the migration runner finds it in an installed package.
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY spark_assets ./spark_assets
COPY spark_resources ./spark_resources
COPY examples ./examples
# Then prove the installed wheel (run from /, so not the source tree) loads and carries its migrations.
RUN pip install --no-cache-dir . \
 && cd / \
 && python -c "import spark_assets.definitions, dagster_postgres; from spark_resources import migrations; assert migrations.discover()" \
 && spark --help > /dev/null

# The production instance (docker/dagster.yaml: PostgreSQL storage, queued runs) and the workspace pointing the webserver and
# daemon at the user-code server. $DAGSTER_HOME/storage is a shared volume in docker-compose.yml (compute logs).
RUN mkdir -p "$DAGSTER_HOME/storage" "$SPARK_HOME" \
 && chown -R dagster:dagster "$DAGSTER_HOME" "$SPARK_HOME"
COPY --chown=dagster:dagster docker/dagster.yaml workspace.yaml $DAGSTER_HOME/

USER dagster

EXPOSE 3000 4000

# docker-compose.yml sets each service's command; by default the image is the code server (without the migration step).
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "spark_assets.definitions"]
