-- Site builds (issue 11). An article's dateModified is the day its content last changed, not the day its row was
-- last touched (publishing touches date_updated): the articles stage sets content_updated_at when it writes new or
-- changed content. Existing rows take date_updated, the latest moment their content can have changed.
ALTER TABLE generated_articles ADD COLUMN content_updated_at timestamptz;
UPDATE generated_articles SET content_updated_at = date_updated;
ALTER TABLE generated_articles ALTER COLUMN content_updated_at SET NOT NULL,
                               ALTER COLUMN content_updated_at SET DEFAULT now();

-- A build's manifest file and what it did; the last 'built' row of a site is its last good build.
ALTER TABLE site_builds
    ADD COLUMN manifest_path  text,
    ADD COLUMN files_written  integer CHECK (files_written >= 0),
    ADD COLUMN files_skipped  integer CHECK (files_skipped >= 0),
    ADD COLUMN files_removed  integer CHECK (files_removed >= 0),
    ADD COLUMN hub_count      integer CHECK (hub_count >= 0),
    ADD COLUMN duration_ms    integer CHECK (duration_ms >= 0);

-- A page or post may live at a deeper path than its slug ("/services/roof-repair/"), as link targets name them.
ALTER TABLE pages ADD CONSTRAINT pages_permalink_is_a_site_path
    CHECK (permalink IS NULL OR permalink ~ '^/([a-z0-9]+(-[a-z0-9]+)*/)+$');
