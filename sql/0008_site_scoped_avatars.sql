-- Personas belong to a site. They were global by slug, so one site's blueprint could rename another site's persona and,
-- by dropping a variant, delete that site's permutations and headlines (cascades) and unlink its published articles.
-- Now avatar_intelligence rows are keyed by (site, slug), and a dimension row that content still references is archived,
-- never deleted: the foreign keys from permutations to their dimensions no longer cascade.

-- 1. Each avatar goes to the sites whose campaigns use it (by blueprint or by permutation). The first of them keeps the
--    row; every other site gets a copy with its variants, and its permutations are pointed at the copies (permutation
--    ids derive from slugs, not from these ids, so they do not change).
ALTER TABLE avatar_intelligence ADD COLUMN site_id uuid REFERENCES sites (id) ON DELETE CASCADE;
ALTER TABLE avatar_intelligence DROP CONSTRAINT avatar_intelligence_slug_key;

CREATE TEMPORARY TABLE avatar_users ON COMMIT DROP AS
    SELECT a.id AS avatar_id, c.site_id
    FROM avatar_intelligence a
    JOIN campaign_masters c
      ON EXISTS (SELECT 1 FROM jsonb_array_elements(c.blueprint -> 'avatars') e WHERE e ->> 'slug' = a.slug)
    UNION
    SELECT p.avatar_id, c.site_id
    FROM cartesian_permutations p JOIN campaign_masters c ON c.id = p.campaign_id;

DO $$
DECLARE
    used record;
    copy_id uuid;
BEGIN
    FOR used IN
        SELECT avatar_id, array_agg(site_id ORDER BY site_id) AS sites FROM avatar_users GROUP BY avatar_id
    LOOP
        UPDATE avatar_intelligence SET site_id = used.sites[1] WHERE id = used.avatar_id;
        FOR i IN 2 .. array_length(used.sites, 1) LOOP
            INSERT INTO avatar_intelligence
                (status, site_id, slug, base_name, wealth_cluster, pain_points, demographics, date_created)
            SELECT status, used.sites[i], slug, base_name, wealth_cluster, pain_points, demographics, date_created
            FROM avatar_intelligence WHERE id = used.avatar_id
            RETURNING id INTO copy_id;
            INSERT INTO avatar_variants (status, avatar_id, slug, name, prompt_modifier, date_created)
            SELECT status, copy_id, slug, name, prompt_modifier, date_created
            FROM avatar_variants WHERE avatar_id = used.avatar_id;
            UPDATE cartesian_permutations p
            SET avatar_id = copy_id, variant_id = copied.id
            FROM campaign_masters c, avatar_variants original, avatar_variants copied
            WHERE c.id = p.campaign_id AND c.site_id = used.sites[i] AND p.avatar_id = used.avatar_id
              AND original.id = p.variant_id AND copied.avatar_id = copy_id AND copied.slug = original.slug;
        END LOOP;
    END LOOP;
END
$$;

-- avatars no campaign uses, in any site: nothing references them
DELETE FROM avatar_intelligence WHERE site_id IS NULL;
ALTER TABLE avatar_intelligence ALTER COLUMN site_id SET NOT NULL;
ALTER TABLE avatar_intelligence ADD CONSTRAINT avatar_intelligence_site_slug_key UNIQUE (site_id, slug);
CREATE INDEX avatar_intelligence_site_id_idx ON avatar_intelligence (site_id);
CREATE INDEX avatar_intelligence_slug_idx ON avatar_intelligence (slug);

-- 2. A permutation's dimensions can no longer be deleted from under it (NO ACTION: checked at the end of the statement,
--    so deleting a whole campaign or site still removes its permutations with it). The stages archive a dimension row
--    that content still references, and delete it once nothing does.
ALTER TABLE cartesian_permutations
    DROP CONSTRAINT cartesian_permutations_geo_id_fkey,
    DROP CONSTRAINT cartesian_permutations_avatar_id_fkey,
    DROP CONSTRAINT cartesian_permutations_variant_id_fkey,
    DROP CONSTRAINT cartesian_permutations_pattern_id_fkey,
    ADD CONSTRAINT cartesian_permutations_geo_id_fkey FOREIGN KEY (geo_id) REFERENCES geo_intelligence (id),
    ADD CONSTRAINT cartesian_permutations_avatar_id_fkey FOREIGN KEY (avatar_id) REFERENCES avatar_intelligence (id),
    ADD CONSTRAINT cartesian_permutations_variant_id_fkey FOREIGN KEY (variant_id) REFERENCES avatar_variants (id),
    ADD CONSTRAINT cartesian_permutations_pattern_id_fkey FOREIGN KEY (pattern_id) REFERENCES cartesian_patterns (id);

-- 3. A published article keeps its permutation: the permutation stage retires (never deletes) a permutation that a
--    published article stands on, and this trigger refuses any other delete of one while its campaign exists. Deleting
--    the campaign (or the site) itself still removes everything with it.
CREATE FUNCTION refuse_deleting_a_published_articles_permutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM generated_articles g WHERE g.permutation_id = OLD.id AND g.is_published)
       AND EXISTS (SELECT 1 FROM campaign_masters c WHERE c.id = OLD.campaign_id) THEN
        RAISE EXCEPTION 'permutation % has a published article: retire it instead of deleting it', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER cartesian_permutations_keep_published BEFORE DELETE ON cartesian_permutations
    FOR EACH ROW EXECUTE FUNCTION refuse_deleting_a_published_articles_permutation();
