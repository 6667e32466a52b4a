-- Evidence search by incident (issue 16): each incident's evidence values, counted per kind and
-- per alert scope, kept by the database as alerts arrive and move, so that the typeahead checks an
-- incident's evidence in one index descent instead of reading every entity row of every alert
-- it holds.
--
-- Before this, the search walked the newest incidents through alerts and alert_entities (about
-- 14 microseconds an incident at a million incidents, and far more for the incidents that grow
-- under ingestion: the soak's typeahead grew 878-fold as half of the ingested alerts correlated
-- into the newest incidents), or looked the fragment up in a trigram index over all 12.7M entity
-- rows, then their alerts, then their incidents (8 microseconds a row). Both were too slow for a
-- fragment of middling frequency ("srv-69", "10.4.1"): p99 59 ms at one connection.
--
-- Exact, not a superset: a row is (incident, folded value, kind, alert scope) with how many entity
-- rows of the incident's alerts in that scope hold it, and it goes when the last of them moves
-- out. So the search answers from these rows alone, permissions included (a viewer reads the rows
-- of the scopes they may read, as they read alerts), and the matched evidence it shows is read
-- here too: nothing it does grows with an incident's alerts. (A first version kept the values as
-- a superset, never removed, and checked each candidate against its alerts' entities: in the soak
-- that check, on the newest incidents of thousands of alerts, grew minute by minute.)
SET LOCAL maintenance_work_mem = '512MB';
-- No entity arrives and no alert moves between the backfill's snapshot and the triggers' creation
-- (reads go on; writers wait for this migration: about a minute at a million incidents).
LOCK TABLE alerts, alert_entities IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE incident_evidence (
    incident_id  bigint NOT NULL,  -- incidents are never deleted (0022); only triggers write here
    value_key    text NOT NULL,  -- lower(value), as alert_entities.value_key
    kind         entity_kind NOT NULL,
    scope        text NOT NULL,  -- the alerts' scope
    entities     integer NOT NULL CHECK (entities > 0),  -- entity rows holding it
    value        text NOT NULL  -- a spelling of it (the first counted), shown as the matched evidence
) WITH (fillfactor = 80);  -- room for the counts' updates on their page (HOT: no index entry)
INSERT INTO incident_evidence (incident_id, value_key, kind, scope, entities, value)
SELECT a.incident_id, e.value_key, e.kind, a.scope, count(*), min(e.value)
  FROM alert_entities e JOIN alerts a ON a.id = e.alert_id
 GROUP BY 1, 2, 3, 4;
ALTER TABLE incident_evidence ADD PRIMARY KEY (incident_id, value_key, kind, scope);
CREATE INDEX incident_evidence_value_search ON incident_evidence USING gin (value_key gin_trgm_ops);
ANALYZE incident_evidence;
-- Vacuums set off by inserts alone read the whole trigram index (GIN's cleanup pass), as 0017
-- found for alerts: here too, only after a million inserted rows.
ALTER TABLE incident_evidence
    SET (autovacuum_vacuum_insert_threshold = 1000000, autovacuum_vacuum_insert_scale_factor = 0);

-- The trigram index over every entity row served only this search: each ingested entity paid an
-- entry for it.
DROP INDEX alert_entities_value_search;
ALTER TABLE alert_entities ALTER COLUMN value_key SET STATISTICS -1;

-- Every writer of an incident's alerts holds that incident's row lock first (ingestion's
-- LOCK_OPEN_INCIDENTS, the moves' lock_incidents; a new incident is its creator's alone), so two
-- transactions never race on one incident's rows. SQL run by hand against alerts or their
-- entities must do the same (SELECT ... FROM incidents ... FOR UPDATE first), or two statements
-- counting one row at once may lose one's change; tests/invariants.py's WRONG_EVIDENCE finds any. Each statement below is planned at each run
-- (EXECUTE), for the transition tables' sizes: a plan cached for the connection (PL/pgSQL's way,
-- 0023) would treat a merge's 10,000 alerts as it treated the first move's one.

-- Entity rows that left an (incident, value, kind, scope), n at a time: the rows they empty go,
-- the others count fewer (never the same row twice: one row per key). One place for both
-- triggers below, which pass what left as arrays (a transition table is seen only by its
-- trigger's own function).
CREATE FUNCTION uncount_incident_evidence(
    incident_ids bigint[], value_keys text[], kinds entity_kind[], scopes text[], counts integer[]
) RETURNS void LANGUAGE sql AS $$
    WITH gone AS (
        SELECT * FROM unnest(incident_ids, value_keys, kinds, scopes, counts) AS g(incident_id, value_key, kind, scope, n)),
    emptied AS (
        DELETE FROM incident_evidence d USING gone g
         WHERE (d.incident_id, d.value_key, d.kind, d.scope) = (g.incident_id, g.value_key, g.kind, g.scope)
           AND d.entities <= g.n)
    UPDATE incident_evidence d SET entities = d.entities - g.n FROM gone g
     WHERE (d.incident_id, d.value_key, d.kind, d.scope) = (g.incident_id, g.value_key, g.kind, g.scope)
       AND d.entities > g.n
$$;

-- Entity rows added, removed or changed: their incidents' counts. `alerts` is read for each row's
-- incident and scope (a missing alert: alert_entities_refer refuses the statement). The
-- transition tables are seen by this function's own statements only, hence the one function.
CREATE FUNCTION entities_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        EXECUTE $q$
            SELECT uncount_incident_evidence(array_agg(incident_id), array_agg(value_key), array_agg(kind),
                                             array_agg(scope), array_agg(n))
              FROM (SELECT a.incident_id, r.value_key, r.kind, a.scope, count(*)::integer AS n
                      FROM old_rows r
                     CROSS JOIN LATERAL (SELECT a.incident_id, a.scope FROM alerts a WHERE a.id = r.alert_id OFFSET 0) a
                     GROUP BY 1, 2, 3, 4) gone
        $q$;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE $q$
            INSERT INTO incident_evidence AS d (incident_id, value_key, kind, scope, entities, value)
            SELECT a.incident_id, n.value_key, n.kind, a.scope, count(*), min(n.value)
              FROM new_rows n
             CROSS JOIN LATERAL (SELECT a.incident_id, a.scope FROM alerts a WHERE a.id = n.alert_id OFFSET 0) a
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            ON CONFLICT (incident_id, value_key, kind, scope) DO UPDATE SET entities = d.entities + excluded.entities
        $q$;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_entities_evidence AFTER INSERT ON alert_entities REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION entities_evidence();
CREATE TRIGGER alert_entities_evidence_update AFTER UPDATE ON alert_entities
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION entities_evidence();
CREATE TRIGGER alert_entities_evidence_delete AFTER DELETE ON alert_entities REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION entities_evidence();

-- (DELETE, not TRUNCATE: a TRUNCATE of both tables at once is running when this fires.)
CREATE FUNCTION entities_evidence_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM incident_evidence;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_entities_evidence_truncate AFTER TRUNCATE ON alert_entities
    FOR EACH STATEMENT EXECUTE FUNCTION entities_evidence_truncated();

-- Alerts that moved (linkAlerts, merges, reverts) or changed scope: their entity rows leave the
-- counts of where they were and join those of where they are. Moves are the only statements that
-- update alerts; a row whose incident and scope stayed is left alone.
CREATE FUNCTION alerts_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE $q$
        SELECT uncount_incident_evidence(array_agg(incident_id), array_agg(value_key), array_agg(kind),
                                         array_agg(scope), array_agg(n))
          FROM (SELECT o.incident_id, e.value_key, e.kind, o.scope, count(*)::integer AS n
                  FROM old_rows o JOIN new_rows n ON n.id = o.id
                 CROSS JOIN LATERAL (SELECT x.value_key, x.kind FROM alert_entities x WHERE x.alert_id = o.id OFFSET 0) e
                 WHERE (o.incident_id, o.scope) IS DISTINCT FROM (n.incident_id, n.scope)
                 GROUP BY 1, 2, 3, 4) gone
    $q$;
    EXECUTE $q$
        INSERT INTO incident_evidence AS d (incident_id, value_key, kind, scope, entities, value)
        SELECT n.incident_id, e.value_key, e.kind, n.scope, count(*), min(e.value)
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         CROSS JOIN LATERAL (SELECT x.value_key, x.kind, x.value FROM alert_entities x WHERE x.alert_id = n.id OFFSET 0) e
         WHERE (o.incident_id, o.scope) IS DISTINCT FROM (n.incident_id, n.scope)
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (incident_id, value_key, kind, scope) DO UPDATE SET entities = d.entities + excluded.entities
    $q$;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_evidence AFTER UPDATE ON alerts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION alerts_evidence();
