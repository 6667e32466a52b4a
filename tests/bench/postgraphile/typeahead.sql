-- The product's typeahead rule as PostGraphile serves it (tests/bench/postgraphile.py installs
-- this before each run; nothing in the product uses it). The viewer is the JWT's user_id, which
-- PostGraphile verifies and hands over as the setting jwt.claims.user_id.
--
-- The rule, as app/domain/search.py and incidents.py apply it and the benchmark checks it:
-- the incident the search names by its number first ("1042", "#1042", "inc_1042"), then the
-- incidents whose name holds every typed word (case-insensitively, % _ \ as plain text, words
-- contained in another word dropped), newest first, only incidents the viewer may see, and
-- for a viewer who may not read every scope only names made of alerts they may read; with them
-- (issue 16) the incidents with an alert the viewer may read whose entity holds every word in
-- its value, when each word has 3 characters or more and a trigram (app/domain/evidence.py;
-- search.has_trigrams, here for ASCII input: a whole word of letters and digits, a first run of
-- two before punctuation, or a run after punctuation).
CREATE SCHEMA IF NOT EXISTS postgraphile_bench;

-- The viewer's readable scopes ('*': every scope); NULL when there is no such enabled user with
-- the queue permission.
CREATE OR REPLACE FUNCTION postgraphile_bench.viewer_scopes() RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(g.scope) FILTER (WHERE g.scope IS NOT NULL), '{}')
      FROM users u LEFT JOIN grants g ON g.user_id = u.id
     WHERE u.id = nullif(current_setting('jwt.claims.user_id', true), '')::bigint
       AND u.enabled AND u.can_view_incidents
     GROUP BY u.id
$$;

-- PL/pgSQL with EXECUTE: each search is planned for its own words (a generic plan of a
-- '%word%' walks the recency index and filters every row), and each word is an ILIKE of its
-- own that the trigram index can serve.
CREATE OR REPLACE FUNCTION postgraphile_bench.typeahead(q text, n integer) RETURNS SETOF incidents
LANGUAGE plpgsql STABLE AS $$
DECLARE
    scopes text[] := postgraphile_bench.viewer_scopes();
    found_words text[] := '{}';
    kept text[] := '{}';
    patterns text[];
    word text;
    number bigint;
    pinned integer := 0;
    conditions text := '';
    by_evidence boolean;
    in_pairs text := '';
    visible constant text := '($2 @> ''{*}'' OR i.alert_scopes && $2 OR i.alert_scopes = ''{}'') AND i.id IS DISTINCT FROM $3';
BEGIN
    IF scopes IS NULL THEN
        RAISE EXCEPTION 'you may not view the incidents queue' USING ERRCODE = '42501';
    END IF;
    IF n IS NULL OR n < 1 OR n > 100 THEN
        RAISE EXCEPTION 'n must be 1-100' USING ERRCODE = '22023';
    END IF;
    q := coalesce(q, '');
    IF length(q) > 200 THEN
        RAISE EXCEPTION 'search is limited to 200 characters' USING ERRCODE = '22023';
    END IF;
    FOREACH word IN ARRAY regexp_split_to_array(lower(btrim(q, E' \t\n\r\f\v')), E'[ \t\n\r\f\v]+') LOOP
        IF word <> '' AND NOT word = ANY(found_words) THEN
            found_words := found_words || word;
        END IF;
    END LOOP;
    -- A word contained in another adds nothing: "lat lateral" means "lateral".
    FOREACH word IN ARRAY found_words LOOP
        IF NOT EXISTS (SELECT 1 FROM unnest(found_words) o WHERE o <> word AND strpos(o, word) > 0) THEN
            kept := kept || word;
        END IF;
    END LOOP;
    IF cardinality(kept) > 8 THEN
        RAISE EXCEPTION 'search is limited to 8 words' USING ERRCODE = '22023';
    END IF;
    patterns := ARRAY(
        SELECT '%' || replace(replace(replace(w, '\', '\\'), '%', '\%'), '_', '\_') || '%'
          FROM unnest(kept) WITH ORDINALITY AS k(w, o) ORDER BY o
    );
    number := coalesce(
        substring(q FROM E'^[ \t\n\r\f\v]*#?([0-9]{1,18})[ \t\n\r\f\v]*$'),
        substring(q FROM E'^[ \t\n\r\f\v]*inc_([1-9][0-9]{0,17})[ \t\n\r\f\v]*$')
    )::bigint;

    IF number IS NOT NULL THEN
        RETURN QUERY SELECT i.* FROM incidents i
         WHERE i.id = number AND ('*' = ANY(scopes) OR i.alert_scopes && scopes OR i.alert_scopes = '{}');
        GET DIAGNOSTICS pinned = ROW_COUNT;
    END IF;
    FOR k IN 1 .. cardinality(patterns) LOOP
        conditions := conditions || format(' AND i.name ILIKE $1[%s]', k);
    END LOOP;
    IF cardinality(patterns) > 0 AND NOT '*' = ANY(scopes) THEN
        conditions := conditions || ' AND coalesce(i.name_scopes, i.alert_scopes) <@ $2';
    END IF;
    by_evidence := cardinality(kept) > 0 AND NOT EXISTS (
        SELECT 1 FROM unnest(kept) w
         WHERE length(w) < 3
            OR NOT (w ~ '^[[:alnum:]]{2}' OR w ~ '[^[:alnum:]][[:alnum:]]'));
    IF by_evidence THEN
        FOR k IN 1 .. cardinality(patterns) LOOP
            in_pairs := in_pairs || format(' AND d.value_key LIKE $1[%s]', k);
        END LOOP;
        -- The name matches and the evidence matches each ordered and limited on their own, then
        -- together: as one WHERE with an OR, the planner can serve neither from its index (it
        -- walked the incidents and ran the evidence subquery for each: 2-6 requests a second at
        -- a million incidents). Each half is planned for its words: a rare host through the
        -- trigram indexes, a common word by walking the newest incidents. The evidence half reads
        -- the schema's per-incident values (incident_evidence, counted per alert scope, with their
        -- trigram index: db/migrations/0024), as anyone writing SQL against this schema would.
        RETURN QUERY EXECUTE
            'SELECT i.* FROM incidents i WHERE i.id IN ('
            ' (SELECT i.id FROM incidents i WHERE ' || visible || conditions ||
            '   ORDER BY i.last_activity_at DESC, i.id DESC LIMIT $4)'
            ' UNION ALL'
            ' (SELECT i.id FROM incidents i WHERE ' || visible ||
            '   AND i.id IN (SELECT d.incident_id FROM incident_evidence d'
            '                 WHERE ($2 @> ''{*}'' OR d.scope = ANY($2))' || in_pairs || ')'
            '   ORDER BY i.last_activity_at DESC, i.id DESC LIMIT $4))'
            ' ORDER BY i.last_activity_at DESC, i.id DESC LIMIT $4'
            USING patterns, scopes, number, n - pinned;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT i.* FROM incidents i WHERE ' || visible || conditions ||
        ' ORDER BY i.last_activity_at DESC, i.id DESC LIMIT $4'
        USING patterns, scopes, number, n - pinned;
END
$$;

-- Incident.firstAlerts(n): its newest alerts that the viewer may read (a computed column).
-- The viewer's scopes as uncorrelated subqueries: read once per statement, not once per alert.
CREATE OR REPLACE FUNCTION postgraphile_bench.incidents_first_alerts(i incidents, n integer) RETURNS SETOF alerts
LANGUAGE sql STABLE AS $$
    SELECT a.* FROM alerts a
     WHERE a.incident_id = i.id
       AND ((SELECT postgraphile_bench.viewer_scopes()) @> '{*}'
            OR a.scope = ANY((SELECT postgraphile_bench.viewer_scopes())::text[]))
     ORDER BY a.detected_at DESC, a.id DESC
     LIMIT n
$$;
