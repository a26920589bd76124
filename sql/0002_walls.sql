-- Batch 2, "walls": tables that depend only on the foundation.
-- Directus file/user references of the design are plain text columns (a path, URL or name), with no foreign key.

CREATE TABLE generated_articles (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'approved', 'published', 'archived')),
    site_id         uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    campaign_id     uuid REFERENCES campaign_masters (id) ON DELETE SET NULL,
    title           text NOT NULL,
    content         text NOT NULL,
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 200),
    is_published    boolean NOT NULL DEFAULT false,
    schema_json     jsonb,
    seo_title       text CHECK (length(seo_title) <= 60),
    seo_description text CHECK (length(seo_description) <= 160),
    word_count      integer CHECK (word_count >= 0),
    provenance      jsonb,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, slug),
    CONSTRAINT generated_articles_published_flag CHECK (is_published = (status = 'published'))
);
CREATE INDEX generated_articles_status_idx ON generated_articles (status);
CREATE INDEX generated_articles_site_id_idx ON generated_articles (site_id);
CREATE INDEX generated_articles_campaign_id_idx ON generated_articles (campaign_id);
CREATE INDEX generated_articles_slug_idx ON generated_articles (slug);

CREATE TABLE generation_jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    site_id         uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    campaign_id     uuid REFERENCES campaign_masters (id) ON DELETE CASCADE,
    batch_size      integer NOT NULL DEFAULT 10 CHECK (batch_size > 0),
    target_quantity integer CHECK (target_quantity >= 0),
    filters         jsonb,
    current_offset  integer NOT NULL DEFAULT 0 CHECK (current_offset >= 0),
    progress        integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    error_message   text,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX generation_jobs_status_idx ON generation_jobs (status);
CREATE INDEX generation_jobs_site_id_idx ON generation_jobs (site_id);
CREATE INDEX generation_jobs_campaign_id_idx ON generation_jobs (campaign_id);

CREATE TABLE pages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status          text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'draft', 'archived')),
    site_id         uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    title           text NOT NULL,
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    permalink       text,
    content         text,
    blocks          jsonb,
    schema_json     jsonb,
    seo_title       text,
    seo_description text,
    seo_image       text,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, slug)
);
CREATE INDEX pages_status_idx ON pages (status);
CREATE INDEX pages_site_id_idx ON pages (site_id);
CREATE INDEX pages_slug_idx ON pages (slug);

CREATE TABLE posts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status         text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'draft', 'archived')),
    site_id        uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    title          text NOT NULL,
    slug           text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    excerpt        text,
    content        text,
    featured_image text,
    published_at   timestamptz,
    category       text,
    author         text,
    schema_json    jsonb,
    date_created   timestamptz NOT NULL DEFAULT now(),
    date_updated   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, slug)
);
CREATE INDEX posts_status_idx ON posts (status);
CREATE INDEX posts_site_id_idx ON posts (site_id);
CREATE INDEX posts_slug_idx ON posts (slug);

CREATE TABLE leads (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status       text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'contacted', 'qualified', 'converted')),
    site_id      uuid REFERENCES sites (id) ON DELETE SET NULL,
    email        text,
    name         text,
    source       text,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_status_idx ON leads (status);
CREATE INDEX leads_site_id_idx ON leads (site_id);

CREATE TABLE headline_inventory (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'used', 'archived')),
    campaign_id   uuid NOT NULL REFERENCES campaign_masters (id) ON DELETE CASCADE,
    headline_text text NOT NULL,
    is_used       boolean NOT NULL DEFAULT false,
    date_created  timestamptz NOT NULL DEFAULT now(),
    date_updated  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX headline_inventory_status_idx ON headline_inventory (status);
CREATE INDEX headline_inventory_campaign_id_idx ON headline_inventory (campaign_id);

-- Fragments are addressed by (campaign, pillar, position) so a re-import keeps their ids stable.
-- FAQ entries are fragments of type 'faq' whose heading is the question.
CREATE TABLE content_fragments (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    campaign_id   uuid NOT NULL REFERENCES campaign_masters (id) ON DELETE CASCADE,
    fragment_type text NOT NULL CHECK (fragment_type ~ '^[a-z][a-z0-9_]*$'),
    position      integer NOT NULL CHECK (position >= 0),
    heading       text,
    fragment_text text NOT NULL,
    date_created  timestamptz NOT NULL DEFAULT now(),
    date_updated  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, fragment_type, position)
);
CREATE INDEX content_fragments_status_idx ON content_fragments (status);
CREATE INDEX content_fragments_campaign_id_idx ON content_fragments (campaign_id);

SELECT attach_date_updated_triggers();
