-- Evidence search (issue 16): the typeahead also finds incidents by the values of their alerts'
-- entities (a host's digits, an email's local part, a partial IP), as substrings.
--
-- A trigram index over the case-folded values finds the rows holding a rare fragment ("9408":
-- 33 rows at 100,000 incidents, under a millisecond); from them the alerts and their incidents
-- now (app/domain/evidence.py). Nothing is kept per incident: a move changes alerts.incident_id
-- and nothing else, so moves pay nothing for this search. Ingestion pays one entry per entity
-- in the pending list (merged after it commits with the other trigram indexes:
-- app/domain/trigram_indexes.py).
SET LOCAL maintenance_work_mem = '512MB';  -- the build, at ten million rows
CREATE INDEX alert_entities_value_search ON alert_entities USING gin (value_key gin_trgm_ops);

-- The search chooses its way by how many entity rows a fragment is in, estimated from these
-- statistics (a common fragment such as "contoso" is found by walking the newest incidents, a
-- rare one through the index above). The default sample (100 values and 101 histogram bounds)
-- cannot tell a fragment in 0.1% of the rows from one in none; a thousand of each can.
ALTER TABLE alert_entities ALTER COLUMN value_key SET STATISTICS 1000;
ANALYZE alert_entities (value_key);
