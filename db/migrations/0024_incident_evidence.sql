-- Evidence search by incident (issue 16): each incident's distinct evidence values, kept by the
-- database as alerts arrive and move, so that the typeahead checks an incident's evidence in one
-- index descent instead of reading every entity row of every alert it holds.
--
-- Before this, the search walked the newest incidents through alerts and alert_entities (about
-- 14 microseconds an incident at a million incidents, and far more for the incidents that grow
-- under ingestion: the soak's typeahead grew 878-fold as half of the ingested alerts correlated
-- into the newest incidents), or looked the fragment up in a trigram index over all 12.7M entity
-- rows, then their alerts, then their incidents (8 microseconds a row). Both were too slow for a
-- fragment of middling frequency ("srv-69", "10.4.1"): p99 59 ms at one connection.
--
-- A superset, by design: a pair is added whenever an entity is inserted or an alert moves in, and
-- never removed when an alert moves out (that would mean reading every remaining alert's evidence
-- in the move's critical section). The search uses the pairs to find candidates and checks each
-- candidate against the plain rule (its readable alerts' entities) before it is listed, so a stale
-- pair costs one check and never a wrong answer (app/domain/evidence.py, which chooses between
-- walking the newest incidents and the trigram index below from a sample of these pairs).
SET LOCAL maintenance_work_mem = '512MB';
-- No entity arrives and no alert moves between the backfill's snapshot and the triggers' creation
-- (reads go on; writers wait for this migration: about 25 seconds at a million incidents).
LOCK TABLE alerts, alert_entities IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE incident_evidence (
    incident_id  bigint NOT NULL,  -- incidents are never deleted (0022); only triggers write here
    value_key    text NOT NULL
);
INSERT INTO incident_evidence (incident_id, value_key)
SELECT DISTINCT a.incident_id, e.value_key FROM alert_entities e JOIN alerts a ON a.id = e.alert_id;
ALTER TABLE incident_evidence ADD PRIMARY KEY (incident_id, value_key);
CREATE INDEX incident_evidence_value_search ON incident_evidence USING gin (value_key gin_trgm_ops);

ANALYZE incident_evidence;
-- Vacuums set off by inserts alone read the whole trigram index (GIN's cleanup pass), as 0017
-- found for alerts: here too, only after a million inserted pairs.
ALTER TABLE incident_evidence
    SET (autovacuum_vacuum_insert_threshold = 1000000, autovacuum_vacuum_insert_scale_factor = 0);

-- The trigram index over every entity row served only this search: each ingested entity paid an
-- entry for it.
DROP INDEX alert_entities_value_search;
ALTER TABLE alert_entities ALTER COLUMN value_key SET STATISTICS -1;

-- New evidence: the alert's incident holds its values. Every writer of an incident's alerts holds
-- that incident's row lock (ingestion's LOCK_OPEN_INCIDENTS, the moves' lock_incidents; a new
-- incident is its creator's alone), so two transactions never race on one incident's pairs. The
-- alert is probed by its primary key (a scalar subquery is never hashed: 0023).
CREATE FUNCTION add_incident_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO incident_evidence (incident_id, value_key)
    SELECT DISTINCT x.incident_id, x.value_key
      FROM (SELECT (SELECT a.incident_id FROM alerts a WHERE a.id = n.alert_id) AS incident_id, n.value_key
              FROM new_rows n) x
     WHERE x.incident_id IS NOT NULL  -- no such alert: alert_entities_refer refuses the statement
     ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_entities_evidence AFTER INSERT ON alert_entities REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION add_incident_evidence();
CREATE TRIGGER alert_entities_evidence_update AFTER UPDATE ON alert_entities REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION add_incident_evidence();

-- Alerts that moved (linkAlerts, merges, reverts): their incident now holds their values. The
-- statement is planned at each run (EXECUTE), for the transition tables' sizes: a plan cached for
-- the connection (PL/pgSQL's way, 0023) would join a merge's 10,000 moved alerts as it joined the
-- first move's one. The entity rows are probed per moved alert.
CREATE FUNCTION move_incident_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE $q$
        INSERT INTO incident_evidence (incident_id, value_key)
        SELECT DISTINCT n.incident_id, e.value_key
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         CROSS JOIN LATERAL (SELECT x.value_key FROM alert_entities x WHERE x.alert_id = n.id OFFSET 0) e
         WHERE o.incident_id <> n.incident_id
         ORDER BY 1, 2
        ON CONFLICT DO NOTHING
    $q$;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_evidence AFTER UPDATE ON alerts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION move_incident_evidence();
