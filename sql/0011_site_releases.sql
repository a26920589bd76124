-- Releases (issue 12). A site_deployments row is one release of a build to the bucket, or a rollback (a pointer
-- moved to an earlier release). Removing old builds must not erase release history: build_id becomes optional and
-- is cleared, not cascaded, when its build row goes.
ALTER TABLE site_deployments DROP CONSTRAINT site_deployments_build_id_fkey;
ALTER TABLE site_deployments ALTER COLUMN build_id DROP NOT NULL;
ALTER TABLE site_deployments ADD CONSTRAINT site_deployments_build_id_fkey
    FOREIGN KEY (build_id) REFERENCES site_builds (id) ON DELETE SET NULL;
ALTER TABLE site_deployments
    ADD COLUMN kind            text NOT NULL DEFAULT 'release' CHECK (kind IN ('release', 'rollback')),
    ADD COLUMN release_id      text CHECK (release_id IS NULL OR release_id ~ '^[0-9a-z-]+$'),
    ADD COLUMN previous_release text,
    ADD COLUMN objects_reused  integer NOT NULL DEFAULT 0 CHECK (objects_reused >= 0),
    ADD COLUMN duration_ms     integer CHECK (duration_ms >= 0),
    ADD COLUMN live_url        text;
CREATE UNIQUE INDEX site_deployments_release_idx ON site_deployments (site_id, release_id)
    WHERE kind = 'release' AND release_id IS NOT NULL;
