-- Daily analytics (issue 13): Matomo and Search Console per site and day, a ledger of what is final, and the report's
-- columns in daily_analytics. Written by the `analytics` assets (spark_assets/assets/analytics.py), one transaction per
-- source and run.

-- The site's time zone (IANA name): Matomo's days are the site's days, and a day counts as final two days after it
-- ends there. Given to Matomo when the site is added to it.
ALTER TABLE sites ADD COLUMN timezone text NOT NULL DEFAULT 'UTC' CHECK (timezone ~ '^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$');
-- The day a site went live, for a site that was live before it came to the factory; NULL: its first published
-- article's day. Analytics history starts here, never before (nobody asks for traffic of a site with no pages).
ALTER TABLE sites ADD COLUMN launched_on date;

-- A site's first publishing day (its analytics start) is min(published_at) of its articles: an index lookup.
CREATE INDEX generated_articles_site_published_at_idx ON generated_articles (site_id, published_at)
    WHERE published_at IS NOT NULL;

-- VisitsSummary.get, one row per site and day fetched. A day Matomo had no data for (`[]`) is a row of zeros: it was
-- asked and answered. `data_state` is 'provisional' until two days after the day ends in the site's time zone.
CREATE TABLE matomo_daily (
    site_id          uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    day              date NOT NULL,
    visits           integer NOT NULL CHECK (visits >= 0),
    unique_visitors  integer NOT NULL CHECK (unique_visitors >= 0),
    actions          integer NOT NULL CHECK (actions >= 0),
    bounce_rate      numeric(5, 4) NOT NULL CHECK (bounce_rate BETWEEN 0 AND 1),  -- a fraction: "68%" is 0.68
    avg_time_on_site integer NOT NULL CHECK (avg_time_on_site >= 0),              -- seconds
    data_state       text NOT NULL CHECK (data_state IN ('final', 'provisional')),
    fetched_at       timestamptz NOT NULL,
    PRIMARY KEY (site_id, day)
);
CREATE INDEX matomo_daily_day_idx ON matomo_daily (day);

-- Search Analytics by date (dataState `all`), one row per site and day fetched (Pacific days, as Google counts them).
-- A day Google had no rows for is a row of zeros with no position. `data_state` is 'final' for days before the
-- answer's metadata.firstIncompleteDate (every day when the answer has none), 'provisional' from it on.
CREATE TABLE search_console_daily (
    site_id                uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    day                    date NOT NULL,
    clicks                 integer NOT NULL CHECK (clicks >= 0),
    impressions            integer NOT NULL CHECK (impressions >= 0),
    ctr                    double precision NOT NULL CHECK (ctr BETWEEN 0 AND 1),
    position               double precision CHECK (position >= 1),  -- NULL: no impressions
    pages_with_impressions integer NOT NULL DEFAULT 0 CHECK (pages_with_impressions >= 0),
    data_state             text NOT NULL CHECK (data_state IN ('final', 'provisional')),
    fetched_at             timestamptz NOT NULL,
    PRIMARY KEY (site_id, day)
);
CREATE INDEX search_console_daily_day_idx ON search_console_daily (day);

-- The top queries and pages of each site and day (dimensions date+query and date+page), replaced with the day's row.
CREATE TABLE search_console_queries (
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    day         date NOT NULL,
    dimension   text NOT NULL CHECK (dimension IN ('query', 'page')),
    key         text NOT NULL,
    clicks      integer NOT NULL CHECK (clicks >= 0),
    impressions integer NOT NULL CHECK (impressions >= 0),
    ctr         double precision NOT NULL CHECK (ctr BETWEEN 0 AND 1),
    position    double precision CHECK (position >= 1),
    PRIMARY KEY (site_id, day, dimension, key)
);
CREATE INDEX search_console_queries_day_idx ON search_console_queries (day);

-- The ledger of what is final: one row per source, site and day fetched. A view over the two source tables, so it can
-- never disagree with the numbers it describes.
CREATE VIEW analytics_ledger AS
    SELECT 'matomo'::text AS source, site_id, day, data_state, fetched_at FROM matomo_daily
    UNION ALL
    SELECT 'search_console'::text, site_id, day, data_state, fetched_at FROM search_console_daily;

-- What the report reads, one row per site and day (the seed's three columns kept as they were).
ALTER TABLE daily_analytics
    ADD COLUMN matomo_unique_visitors     integer CHECK (matomo_unique_visitors >= 0),
    ADD COLUMN matomo_actions             integer CHECK (matomo_actions >= 0),
    ADD COLUMN matomo_bounce_rate         numeric(5, 4),
    ADD COLUMN matomo_avg_time_on_site    integer,
    ADD COLUMN gsc_ctr                    double precision,
    ADD COLUMN gsc_position               double precision,
    ADD COLUMN gsc_pages_with_impressions integer,
    ADD COLUMN matomo_final               boolean,  -- NULL: Matomo has no row for this site and day
    ADD COLUMN gsc_final                  boolean;  -- NULL: Search Console has no row for this site and day
CREATE INDEX daily_analytics_date_idx ON daily_analytics (date);
