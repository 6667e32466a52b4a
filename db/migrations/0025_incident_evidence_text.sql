-- Each large incident's distinct evidence values as text, a few kilobytes a row: what the
-- typeahead's walk reads first, before the incident's rows of incident_evidence (issues 16, 18).
--
-- The walk checks the newest incidents one by one. Through incident_evidence (0024) that read
-- every value of an incident that did not match, about 0.1-0.35 microsecond a value; but
-- ingestion correlates half of its alerts into the newest incidents, each bringing new files and
-- URLs, so the incidents at the top of the queue grow to thousands of values: 118 of them held
-- 132,000 after a few runs of make bench, 15 ms for each search that walked past them, and the
-- soak's typeahead p95 went from 86 to 425 ms in five minutes. Here the same check is one
-- strpos() over about 1,800 bytes of values a row: a word that is in none of them is in no
-- value of the incident (120 incidents of 1,100 values: 7 ms, against 46 through their rows).
--
-- Only incidents of at least 64 values (rows of incident_evidence) have text: below that, the
-- rows cost what the text would, and the incidents that moves churn (a few alerts each) pay
-- nothing for it. An incident gets its text when a statement brings it to 64 rows, and keeps it
-- until its last value leaves.
--
-- The rows hold the set of the incident's value_keys, each once (whatever its kinds and scopes),
-- separated by newlines, in chunks of about 1,800 bytes (under the 2 kB at which PostgreSQL
-- compresses a row or moves its text out of line). A search's words never hold a newline
-- (app/domain/search.words splits on whitespace), so a word found in none of the chunks is in
-- none of the values. Permissions, several words in one value, and the values shown are still
-- read from incident_evidence, for the incidents that pass (app/domain/evidence.HOLDS_EVIDENCE).
--
-- The functions below run with generic plans (plan_cache_mode): PostgreSQL 18 caches a SQL
-- function's plans, but planned each call afresh for its arrays (custom plans), which doubled
-- what a five-alert move paid for its evidence (1.6 ms against 0024's 0.9; generic: 0.9). Their
-- statements probe primary keys per array entry, whatever the arrays' lengths.
--
-- Kept by 0024's triggers, under the same incident row locks: a value new to an incident with
-- text is appended to its last chunk (or a new one); when a value leaves such an incident (its
-- last row in incident_evidence goes), the incident's chunks are written again from its rows.
-- tests/invariants.py's WRONG_EVIDENCE_TEXT compares both.
SET LOCAL maintenance_work_mem = '512MB';
LOCK TABLE alerts, alert_entities, incident_evidence IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE incident_evidence_text (
    incident_id  bigint NOT NULL,
    chunk        integer NOT NULL,
    entries      text NOT NULL,  -- value_keys, newline-separated
    PRIMARY KEY (incident_id, chunk)
) WITH (fillfactor = 70);  -- room for an appended chunk's new version on its page (HOT)
-- Values appended to incidents' text: those that do not fit the last chunk's 1,800 bytes go to
-- the next chunks (a value belongs to the chunk where it ends, counting from the end of the last
-- chunk's `bytes`). The one place that cuts the text into chunks: the rebuild, the backfill and
-- bulk_seed come through here.
CREATE FUNCTION append_incident_evidence_text(incident_ids bigint[], value_keys text[]) RETURNS void
LANGUAGE sql SET plan_cache_mode = force_generic_plan AS $$
    INSERT INTO incident_evidence_text AS t (incident_id, chunk, entries)
    SELECT n.incident_id, n.chunk, string_agg(n.value_key, E'\n' ORDER BY n.value_key)
      FROM (SELECT v.incident_id, v.value_key,
                   (coalesce(l.chunk, -1)
                    + (coalesce(l.bytes, 1800) + sum(octet_length(v.value_key) + 1) OVER w - 1) / 1800)::integer AS chunk
              FROM unnest(incident_ids, value_keys) AS v(incident_id, value_key)
              LEFT JOIN LATERAL (
                  SELECT t.chunk, octet_length(t.entries) AS bytes FROM incident_evidence_text t
                   WHERE t.incident_id = v.incident_id ORDER BY t.chunk DESC LIMIT 1) l ON true
            WINDOW w AS (PARTITION BY v.incident_id ORDER BY v.value_key ROWS UNBOUNDED PRECEDING)) n
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (incident_id, chunk) DO UPDATE SET entries = t.entries || E'\n' || excluded.entries
$$;

-- The incidents' chunks written again from their rows in incident_evidence (none: no chunk).
CREATE FUNCTION rebuild_incident_evidence_text(incident_ids bigint[]) RETURNS void LANGUAGE sql
SET plan_cache_mode = force_generic_plan AS $$
    DELETE FROM incident_evidence_text WHERE incident_id = ANY(incident_ids);
    SELECT append_incident_evidence_text(array_agg(x.incident_id), array_agg(x.value_key))
      FROM (SELECT DISTINCT d.incident_id, d.value_key FROM incident_evidence d
             WHERE d.incident_id = ANY(incident_ids)) x;
$$;

-- The backfill: the incidents of 64 rows or more, written as the triggers write them.
SELECT rebuild_incident_evidence_text(array_agg(incident_id))
  FROM (SELECT incident_id FROM incident_evidence GROUP BY 1 HAVING count(*) >= 64) x;
ANALYZE incident_evidence_text;

-- 0024's functions, now keeping the text too. Values that left: as before, then the incidents
-- with text that no longer hold one of them at all get their chunks written again (a few probes
-- of the primary keys for the incidents without text: the small ones, which moves churn).
CREATE OR REPLACE FUNCTION uncount_incident_evidence(
    incident_ids bigint[], value_keys text[], kinds entity_kind[], scopes text[], counts integer[]
) RETURNS void LANGUAGE sql SET plan_cache_mode = force_generic_plan AS $$
    WITH gone AS (
        SELECT * FROM unnest(incident_ids, value_keys, kinds, scopes, counts) AS g(incident_id, value_key, kind, scope, n)),
    emptied AS (
        DELETE FROM incident_evidence d USING gone g
         WHERE (d.incident_id, d.value_key, d.kind, d.scope) = (g.incident_id, g.value_key, g.kind, g.scope)
           AND d.entities <= g.n)
    UPDATE incident_evidence d SET entities = d.entities - g.n FROM gone g
     WHERE (d.incident_id, d.value_key, d.kind, d.scope) = (g.incident_id, g.value_key, g.kind, g.scope)
       AND d.entities > g.n;
    SELECT rebuild_incident_evidence_text(array_agg(DISTINCT g.incident_id))
      FROM unnest(incident_ids, value_keys) AS g(incident_id, value_key)
     WHERE EXISTS (SELECT 1 FROM incident_evidence_text t WHERE t.incident_id = g.incident_id)
       AND NOT EXISTS (SELECT 1 FROM incident_evidence d WHERE d.incident_id = g.incident_id AND d.value_key = g.value_key)
    HAVING count(*) > 0;
$$;

-- Rows of incident_evidence just inserted (an incident, value, kind and scope it held in no
-- row), one array entry per row: the values new to their incidents (no other row of the
-- incident holds them) are appended to the text of those that have one; those without text and
-- now of 64 rows or more get theirs. Called by the triggers below with what their INSERT
-- returned, so that the statements they EXECUTE (planned at each run) stay 0024's, and these,
-- planned for arrays, are planned once.
CREATE FUNCTION incident_evidence_inserted(incident_ids bigint[], value_keys text[]) RETURNS void LANGUAGE sql
SET plan_cache_mode = force_generic_plan AS $$
    SELECT append_incident_evidence_text(array_agg(a.incident_id), array_agg(a.value_key))
      FROM (SELECT incident_id, value_key, count(*) AS n FROM unnest(incident_ids, value_keys) AS v(incident_id, value_key)
             GROUP BY 1, 2) a
     WHERE EXISTS (SELECT 1 FROM incident_evidence_text t WHERE t.incident_id = a.incident_id)
       AND (SELECT count(*) FROM incident_evidence x WHERE x.incident_id = a.incident_id AND x.value_key = a.value_key) = a.n
    HAVING count(*) > 0;
    SELECT rebuild_incident_evidence_text(array_agg(g.id))
      FROM (SELECT DISTINCT id FROM unnest(incident_ids) AS u(id)) g
     WHERE NOT EXISTS (SELECT 1 FROM incident_evidence_text t WHERE t.incident_id = g.id)
       AND (SELECT count(*) FROM (SELECT 1 FROM incident_evidence d WHERE d.incident_id = g.id LIMIT 64) x) >= 64
    HAVING count(*) > 0;
$$;

CREATE OR REPLACE FUNCTION entities_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    inserted_ids bigint[];
    inserted_keys text[];
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
            WITH counted AS (
                INSERT INTO incident_evidence AS d (incident_id, value_key, kind, scope, entities, value)
                SELECT a.incident_id, n.value_key, n.kind, a.scope, count(*), min(n.value)
                  FROM new_rows n
                 CROSS JOIN LATERAL (SELECT a.incident_id, a.scope FROM alerts a WHERE a.id = n.alert_id OFFSET 0) a
                 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
                ON CONFLICT (incident_id, value_key, kind, scope) DO UPDATE SET entities = d.entities + excluded.entities
                RETURNING d.incident_id, d.value_key, d.xmax = 0 AS inserted)
            SELECT array_agg(incident_id) FILTER (WHERE inserted), array_agg(value_key) FILTER (WHERE inserted) FROM counted
        $q$ INTO inserted_ids, inserted_keys;
        IF inserted_ids IS NOT NULL THEN
            PERFORM incident_evidence_inserted(inserted_ids, inserted_keys);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION entities_evidence_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM incident_evidence;
    DELETE FROM incident_evidence_text;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION alerts_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    inserted_ids bigint[];
    inserted_keys text[];
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
        WITH counted AS (
            INSERT INTO incident_evidence AS d (incident_id, value_key, kind, scope, entities, value)
            SELECT n.incident_id, e.value_key, e.kind, n.scope, count(*), min(e.value)
              FROM new_rows n JOIN old_rows o ON o.id = n.id
             CROSS JOIN LATERAL (SELECT x.value_key, x.kind, x.value FROM alert_entities x WHERE x.alert_id = n.id OFFSET 0) e
             WHERE (o.incident_id, o.scope) IS DISTINCT FROM (n.incident_id, n.scope)
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            ON CONFLICT (incident_id, value_key, kind, scope) DO UPDATE SET entities = d.entities + excluded.entities
            RETURNING d.incident_id, d.value_key, d.xmax = 0 AS inserted)
        SELECT array_agg(incident_id) FILTER (WHERE inserted), array_agg(value_key) FILTER (WHERE inserted) FROM counted
    $q$ INTO inserted_ids, inserted_keys;
    IF inserted_ids IS NOT NULL THEN
        PERFORM incident_evidence_inserted(inserted_ids, inserted_keys);
    END IF;
    RETURN NULL;
END
$$;
