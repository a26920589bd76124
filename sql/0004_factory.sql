-- What the factory adds to the design: the permutation table that links every article to its dimension rows, and the
-- record of each static build and deployment of a site.

-- One row per geo target x avatar x variant x pattern of a campaign. The id is derived from the combination (uuid5 in the
-- application), so the same combination keeps its id across runs.
CREATE TABLE cartesian_permutations (
    id              uuid PRIMARY KEY,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    campaign_id     uuid NOT NULL REFERENCES campaign_masters (id) ON DELETE CASCADE,
    geo_id          uuid NOT NULL REFERENCES geo_intelligence (id) ON DELETE CASCADE,
    avatar_id       uuid NOT NULL REFERENCES avatar_intelligence (id) ON DELETE CASCADE,
    variant_id      uuid NOT NULL REFERENCES avatar_variants (id) ON DELETE CASCADE,
    pattern_id      uuid NOT NULL REFERENCES cartesian_patterns (id) ON DELETE CASCADE,
    combination_key text NOT NULL,
    ordinal         bigint NOT NULL CHECK (ordinal >= 0),
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, combination_key)
);
CREATE INDEX cartesian_permutations_status_idx ON cartesian_permutations (status);
CREATE INDEX cartesian_permutations_campaign_id_idx ON cartesian_permutations (campaign_id, ordinal);
CREATE INDEX cartesian_permutations_geo_id_idx ON cartesian_permutations (geo_id);
CREATE INDEX cartesian_permutations_avatar_id_idx ON cartesian_permutations (avatar_id);
CREATE INDEX cartesian_permutations_variant_id_idx ON cartesian_permutations (variant_id);
CREATE INDEX cartesian_permutations_pattern_id_idx ON cartesian_permutations (pattern_id);

ALTER TABLE headline_inventory
    ADD COLUMN permutation_id uuid REFERENCES cartesian_permutations (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX headline_inventory_permutation_id_idx ON headline_inventory (permutation_id);

ALTER TABLE generated_articles
    ADD COLUMN permutation_id uuid REFERENCES cartesian_permutations (id) ON DELETE SET NULL;
CREATE INDEX generated_articles_permutation_id_idx ON generated_articles (permutation_id);

-- A static build of one site: what was rendered, from which content, with what outcome.
CREATE TABLE site_builds (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'building', 'built', 'failed')),
    site_id        uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    article_count  integer NOT NULL DEFAULT 0 CHECK (article_count >= 0),
    page_count     integer NOT NULL DEFAULT 0 CHECK (page_count >= 0),
    total_bytes    bigint NOT NULL DEFAULT 0 CHECK (total_bytes >= 0),
    manifest_hash  text,
    output_path    text,
    error_message  text,
    started_at     timestamptz,
    finished_at    timestamptz,
    date_created   timestamptz NOT NULL DEFAULT now(),
    date_updated   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX site_builds_status_idx ON site_builds (status);
CREATE INDEX site_builds_site_id_idx ON site_builds (site_id, date_created DESC);

-- A deployment of a build to object storage (Cloudflare R2 in production).
CREATE TABLE site_deployments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'deploying', 'deployed', 'failed')),
    site_id          uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    build_id         uuid NOT NULL REFERENCES site_builds (id) ON DELETE CASCADE,
    bucket           text NOT NULL,
    prefix           text NOT NULL DEFAULT '',
    objects_uploaded integer NOT NULL DEFAULT 0 CHECK (objects_uploaded >= 0),
    objects_deleted  integer NOT NULL DEFAULT 0 CHECK (objects_deleted >= 0),
    bytes_uploaded   bigint NOT NULL DEFAULT 0 CHECK (bytes_uploaded >= 0),
    error_message    text,
    started_at       timestamptz,
    finished_at      timestamptz,
    date_created     timestamptz NOT NULL DEFAULT now(),
    date_updated     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX site_deployments_status_idx ON site_deployments (status);
CREATE INDEX site_deployments_site_id_idx ON site_deployments (site_id, date_created DESC);
CREATE INDEX site_deployments_build_id_idx ON site_deployments (build_id);

SELECT attach_date_updated_triggers();
