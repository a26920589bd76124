-- What the content stages (permutations, headlines, articles, quality) need beyond the design.

-- An article's content hash tells a re-run which articles changed: unchanged ones keep their status and dates.
ALTER TABLE generated_articles
    ADD COLUMN content_hash   text,
    ADD COLUMN quality_issues jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(quality_issues) = 'array'),
    ADD COLUMN approved_at    timestamptz,
    ADD COLUMN published_at   timestamptz;
CREATE INDEX generated_articles_campaign_status_idx ON generated_articles (campaign_id, status);

-- Geo keys are unique per campaign; the label is what readers see ("Austin, TX").
ALTER TABLE geo_intelligence
    ADD COLUMN label   text,
    ADD COLUMN ordinal integer CHECK (ordinal >= 0);

-- The campaign-level result of the quality stage; publishing reads it. Removed when the articles change, so a stale
-- report never lets a changed campaign through.
CREATE TABLE campaign_quality (
    campaign_id          uuid PRIMARY KEY REFERENCES campaign_masters (id) ON DELETE CASCADE,
    articles             integer NOT NULL CHECK (articles >= 0),
    near_duplicate_rate  double precision NOT NULL CHECK (near_duplicate_rate BETWEEN 0 AND 1),
    max_near_duplicate_rate double precision NOT NULL CHECK (max_near_duplicate_rate BETWEEN 0 AND 1),
    similarity_threshold double precision NOT NULL,
    worst_pairs          jsonb NOT NULL DEFAULT '[]'::jsonb,
    articles_with_issues integer NOT NULL DEFAULT 0 CHECK (articles_with_issues >= 0),
    publishable          boolean NOT NULL,
    checked_at           timestamptz NOT NULL DEFAULT now()
);

SELECT attach_date_updated_triggers();
