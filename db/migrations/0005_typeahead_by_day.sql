-- Typeahead at SOC scale (issue 3). The trigram index also knows each incident's day of last
-- activity, so that a search can ask for "names holding these words, active in the last days"
-- and read only those rows. A word in 0.4% of a million names ("smith@contoso") otherwise makes
-- the search read its 4,000 rows to find the newest 10.
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- Days since 1970-01-01 UTC. Immutable (unlike extract(epoch FROM timestamptz), marked stable),
-- so that it can be indexed and is inlined where it is used.
CREATE FUNCTION activity_day(t timestamptz) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN floor(extract(epoch FROM t - to_timestamp(0)) / 86400)::integer;

-- The name in lower case: searches match it with LIKE, about five times cheaper than ILIKE on
-- the name (which folds the case of every name it reads, for every word).
ALTER TABLE incidents ADD COLUMN name_folded text GENERATED ALWAYS AS (lower(name)) STORED;

-- Serves every name search: a GIN index answers conditions on any subset of its columns.
CREATE INDEX incidents_name_search ON incidents
    USING gin (activity_day(last_activity_at), name_folded gin_trgm_ops);
DROP INDEX incidents_name_trgm;
