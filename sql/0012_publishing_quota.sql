-- Drip-feed publishing (issue: publish a new site's pages gradually). The policy is the site's, so the site's campaigns
-- cannot disagree about it.
-- NULL: no quota, articles are published as soon as they pass (today's behaviour); N: the daily `drip_feed_schedule`
-- publishes up to N of the site's approved, passing articles a day, and auto-publishing only approves.
ALTER TABLE sites ADD COLUMN daily_publish_quota integer CHECK (daily_publish_quota > 0);

-- One row per site and day the drip published on: how many it published that day. It makes the daily batch
-- idempotent: a second tick (or a re-run of the partition) the same day publishes only what is left of the quota
-- (quota - published), nothing once the quota is used. Counting articles by published_at could not tell the drip's
-- publications from an operator's `spark articles publish` the same day, and would depend on the server's time zone.
CREATE TABLE drip_batches (
    site_id      uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,  -- a site's batches go with the site
    day          date NOT NULL,                                          -- the schedule's tick date (UTC), not now()
    published    integer NOT NULL DEFAULT 0 CHECK (published >= 0),      -- articles the drip published that day
    slugs        jsonb NOT NULL DEFAULT '[]'::jsonb,                     -- their slugs, in publishing order (for audit)
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, day)                                           -- one batch per site per day
);

SELECT attach_date_updated_triggers();
