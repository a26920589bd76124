-- Run once by the postgres image, on first start with an empty data volume (/docker-entrypoint-initdb.d), as
-- POSTGRES_USER connected to POSTGRES_DB (the Dagster instance database, `dagster`). It adds the Spark Factory
-- application database; `spark db upgrade` (run by the user_code service at start) creates its schema.
-- On an existing volume this file is not run again: create the database by hand if it is missing
--   docker compose exec postgres sh -c 'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "CREATE DATABASE spark"'
CREATE DATABASE spark;
