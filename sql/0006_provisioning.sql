-- What provisioning records about a site: its Cloudflare zone and the name servers the registrar must point at.

ALTER TABLE sites
    ADD COLUMN cloudflare_zone_id text,
    ADD COLUMN name_servers       text[];
CREATE INDEX sites_cloudflare_zone_id_idx ON sites (cloudflare_zone_id);

SELECT attach_date_updated_triggers();
