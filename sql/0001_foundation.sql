-- Batch 1, "foundation" (DATABASE_SCHEMA.md, Harris Matrix): tables that depend on nothing, or only on each other.
-- Merged with the Website Factory design: provider accounts and the site's provisioning state live on `sites`.
-- Conventions for every migration:
--   * ids are UUIDs from gen_random_uuid(); timestamps are timestamptz named date_created / date_updated;
--   * every status column has a CHECK listing its values; every FK, status and slug column has an index;
--   * date_updated is maintained by the set_date_updated() trigger, not by callers.

-- gen_random_uuid() is built into PostgreSQL 13+: no extension needed (pgcrypto is not in every build, e.g. pgserver).

CREATE FUNCTION set_date_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.date_updated := now();
    RETURN NEW;
END $$;

-- Every migration ends by calling this: each table with a date_updated column gets the trigger, once.
CREATE FUNCTION attach_date_updated_triggers() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.table_name
        FROM information_schema.columns c
        WHERE c.table_schema = current_schema() AND c.column_name = 'date_updated'
          AND NOT EXISTS (SELECT 1 FROM pg_trigger g
                          WHERE g.tgname = c.table_name || '_date_updated'
                            AND g.tgrelid = format('%I.%I', c.table_schema, c.table_name)::regclass)
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION set_date_updated()',
                       t.table_name || '_date_updated', t.table_name);
    END LOOP;
END $$;

-- Provider accounts (Website Factory 2.1 / 2.2). Tokens are stored encrypted by the application; the column holds ciphertext.
CREATE TABLE cloudflare_accounts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    email               text NOT NULL UNIQUE,
    account_nickname    text NOT NULL UNIQUE,
    provider_account_id text,
    api_token           text NOT NULL,
    date_created        timestamptz NOT NULL DEFAULT now(),
    date_updated        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN cloudflare_accounts.api_token IS 'ciphertext of the scoped API token; never plain text';
CREATE INDEX cloudflare_accounts_status_idx ON cloudflare_accounts (status);

CREATE TABLE gsc_accounts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    email               text NOT NULL UNIQUE,
    oauth_refresh_token text NOT NULL,
    date_created        timestamptz NOT NULL DEFAULT now(),
    date_updated        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN gsc_accounts.oauth_refresh_token IS 'ciphertext of the OAuth refresh token; never plain text';
CREATE INDEX gsc_accounts_status_idx ON gsc_accounts (status);

-- The super parent. `domain` is the site's identity and its Dagster partition key.
CREATE TABLE sites (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'archived')),
    name                    text NOT NULL,
    domain                  text NOT NULL UNIQUE
        CHECK (domain = lower(domain)
               AND length(domain) <= 253
               AND domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})$'),
    url                     text GENERATED ALWAYS AS ('https://' || domain) STORED,
    brand_name              text,
    cloudflare_account_id   uuid REFERENCES cloudflare_accounts (id) ON DELETE RESTRICT,
    gsc_account_id          uuid REFERENCES gsc_accounts (id) ON DELETE SET NULL,
    status_dns              text NOT NULL DEFAULT 'pending' CHECK (status_dns IN ('pending', 'active', 'failed')),
    status_hosting          text NOT NULL DEFAULT 'pending' CHECK (status_hosting IN ('pending', 'active', 'failed')),
    status_content          text NOT NULL DEFAULT 'pending'
        CHECK (status_content IN ('pending', 'generating', 'generated', 'failed')),
    status_deployment       text NOT NULL DEFAULT 'pending'
        CHECK (status_deployment IN ('pending', 'deploying', 'deployed', 'failed')),
    hosting_doc_root        text,
    matomo_site_id          integer,
    gsc_verification_status text NOT NULL DEFAULT 'pending'
        CHECK (gsc_verification_status IN ('pending', 'verified', 'failed')),
    error_message           text,
    date_created            timestamptz NOT NULL DEFAULT now(),
    date_updated            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN sites.cloudflare_account_id IS 'assigned at provisioning; nullable until then (the design has NOT NULL)';
CREATE INDEX sites_status_idx ON sites (status);
CREATE INDEX sites_cloudflare_account_id_idx ON sites (cloudflare_account_id);
CREATE INDEX sites_gsc_account_id_idx ON sites (gsc_account_id);
CREATE INDEX sites_status_dns_idx ON sites (status_dns);
CREATE INDEX sites_status_hosting_idx ON sites (status_hosting);
CREATE INDEX sites_status_content_idx ON sites (status_content);
CREATE INDEX sites_status_deployment_idx ON sites (status_deployment);
CREATE INDEX sites_gsc_verification_status_idx ON sites (gsc_verification_status);

-- One campaign per imported blueprint; (site, slug) is its identity, `<domain>/<slug>` its Dagster partition key.
CREATE TABLE campaign_masters (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status                text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'inactive', 'completed', 'archived')),
    site_id               uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name                  text NOT NULL,
    slug                  text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 80),
    headline_spintax_root text NOT NULL,
    target_word_count     integer NOT NULL DEFAULT 1500 CHECK (target_word_count > 0),
    location_mode         text NOT NULL CHECK (location_mode IN ('city', 'county', 'state')),
    batch_count           integer NOT NULL DEFAULT 500 CHECK (batch_count > 0),
    blueprint             jsonb NOT NULL,
    blueprint_hash        text NOT NULL,
    blueprint_source      text,
    date_created          timestamptz NOT NULL DEFAULT now(),
    date_updated          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, slug)
);
CREATE INDEX campaign_masters_status_idx ON campaign_masters (status);
CREATE INDEX campaign_masters_site_id_idx ON campaign_masters (site_id);
CREATE INDEX campaign_masters_slug_idx ON campaign_masters (slug);

-- Buyer personas. The design has them global; `slug` makes them addressable from blueprints.
CREATE TABLE avatar_intelligence (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status         text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'draft', 'archived')),
    slug           text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    base_name      text NOT NULL,
    wealth_cluster text,
    pain_points    jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(pain_points) = 'array'),
    demographics   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(demographics) = 'object'),
    date_created   timestamptz NOT NULL DEFAULT now(),
    date_updated   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX avatar_intelligence_status_idx ON avatar_intelligence (status);

-- Variants belong to an avatar (the design leaves the link implicit).
CREATE TABLE avatar_variants (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status          text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'draft', 'archived')),
    avatar_id       uuid NOT NULL REFERENCES avatar_intelligence (id) ON DELETE CASCADE,
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name            text NOT NULL,
    prompt_modifier text NOT NULL DEFAULT '',
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (avatar_id, slug)
);
CREATE INDEX avatar_variants_status_idx ON avatar_variants (status);
CREATE INDEX avatar_variants_avatar_id_idx ON avatar_variants (avatar_id);
CREATE INDEX avatar_variants_slug_idx ON avatar_variants (slug);

-- Title/hook formulas, one permutation axis; they come from a campaign's blueprint.
CREATE TABLE cartesian_patterns (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status        text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'draft', 'archived')),
    campaign_id   uuid NOT NULL REFERENCES campaign_masters (id) ON DELETE CASCADE,
    slug          text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name          text NOT NULL,
    pattern_logic text NOT NULL,
    sort          integer NOT NULL DEFAULT 0,
    date_created  timestamptz NOT NULL DEFAULT now(),
    date_updated  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, slug)
);
CREATE INDEX cartesian_patterns_status_idx ON cartesian_patterns (status);
CREATE INDEX cartesian_patterns_campaign_id_idx ON cartesian_patterns (campaign_id);
CREATE INDEX cartesian_patterns_slug_idx ON cartesian_patterns (slug);

-- A campaign's geo targets. Links to the location tables are added in the roof batch, once those exist.
CREATE TABLE geo_intelligence (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status       text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'draft', 'archived')),
    campaign_id  uuid NOT NULL REFERENCES campaign_masters (id) ON DELETE CASCADE,
    location_key text NOT NULL,
    city         text,
    county       text,
    state        text NOT NULL,
    state_code   char(2) NOT NULL,
    population   integer CHECK (population >= 0),
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, location_key)
);
CREATE INDEX geo_intelligence_status_idx ON geo_intelligence (status);
CREATE INDEX geo_intelligence_campaign_id_idx ON geo_intelligence (campaign_id);

CREATE TABLE offer_blocks (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status       text NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'draft', 'archived')),
    campaign_id  uuid NOT NULL REFERENCES campaign_masters (id) ON DELETE CASCADE,
    slug         text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name         text NOT NULL,
    html_content text NOT NULL,
    sort         integer NOT NULL DEFAULT 0,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, slug)
);
CREATE INDEX offer_blocks_status_idx ON offer_blocks (status);
CREATE INDEX offer_blocks_campaign_id_idx ON offer_blocks (campaign_id);
CREATE INDEX offer_blocks_slug_idx ON offer_blocks (slug);

SELECT attach_date_updated_triggers();
