-- A move's evidence upkeep in fewer, cheaper steps (issue 18: the movers hold their incidents'
-- locks while it runs, so its time is every other mover's wait).
--
-- 0025's alerts_evidence planned its two statements at every call (EXECUTE), for the transition
-- tables' sizes: a cached plan joining old_rows to new_rows, made for a move of one alert, would
-- have joined a merge's 10,000 by nested loops. Here the statement needs no join of the two: each
-- alert's old placement counts -1 and its new one +1, summed by alert and placement (an alert
-- whose incident and scope stayed sums to 0 and is left out), then by (incident, value, kind,
-- scope) over the alerts' entities. Aggregates and one index probe per placement, whatever the
-- size, so the plan can be cached (static SQL, planned once per connection). Values that a
-- statement both takes out of and brings into one incident (a revert) net out first: their row
-- stays as it was, with the spelling it had (as a row that keeps a count above 0 keeps its
-- spelling: the shown spelling is one an alert of the incident held when the row was made).
--
-- The bits (0026) are computed from the new rows' trigrams in one aggregate, instead of one call
-- of evidence_bits() per value (a SQL function with an aggregate is never inlined: its own
-- executor per call). tests/invariants.MISSING_EVIDENCE_BITS checks that no bit evidence_bits(),
-- the definition, gives is missing (a missing bit would hide an incident from the walk; an extra
-- one would only cost it a probe).
--
-- Measured on the benchmark's database (a million incidents, moves of 1-10 alerts of the movers'
-- pool, one at a time): see docs/benchmarks.md, 2026-12-06.

CREATE OR REPLACE FUNCTION alerts_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone_ids bigint[]; gone_keys text[]; gone_kinds entity_kind[]; gone_scopes text[]; gone_counts integer[];
    new_ids bigint[]; new_keys text[]; new_kinds entity_kind[]; new_scopes text[]; new_counts integer[];
    new_values text[];
    inserted_ids bigint[]; inserted_keys text[];
BEGIN
    SELECT array_agg(d.incident_id) FILTER (WHERE d.n < 0), array_agg(d.value_key) FILTER (WHERE d.n < 0),
           array_agg(d.kind) FILTER (WHERE d.n < 0), array_agg(d.scope) FILTER (WHERE d.n < 0),
           array_agg(-d.n) FILTER (WHERE d.n < 0),
           array_agg(d.incident_id) FILTER (WHERE d.n > 0), array_agg(d.value_key) FILTER (WHERE d.n > 0),
           array_agg(d.kind) FILTER (WHERE d.n > 0), array_agg(d.scope) FILTER (WHERE d.n > 0),
           array_agg(d.n) FILTER (WHERE d.n > 0), array_agg(d.value) FILTER (WHERE d.n > 0)
      INTO gone_ids, gone_keys, gone_kinds, gone_scopes, gone_counts,
           new_ids, new_keys, new_kinds, new_scopes, new_counts, new_values
      FROM (SELECT p.incident_id, e.value_key, e.kind, p.scope, sum(p.sign)::integer AS n,
                   min(e.value) FILTER (WHERE p.sign > 0) AS value
              FROM (SELECT c.id, c.incident_id, c.scope, sum(c.sign)::integer AS sign
                      FROM (SELECT o.id, o.incident_id, o.scope, -1 AS sign FROM old_rows o
                            UNION ALL
                            SELECT n.id, n.incident_id, n.scope, 1 FROM new_rows n) c
                     GROUP BY 1, 2, 3 HAVING sum(c.sign) <> 0) p
             CROSS JOIN LATERAL (SELECT x.value_key, x.kind, x.value FROM alert_entities x WHERE x.alert_id = p.id OFFSET 0) e
             GROUP BY 1, 2, 3, 4
             ORDER BY 1, 2, 3, 4) d
     WHERE d.n <> 0;
    IF gone_ids IS NOT NULL THEN
        PERFORM uncount_incident_evidence(gone_ids, gone_keys, gone_kinds, gone_scopes, gone_counts);
    END IF;
    IF new_ids IS NOT NULL THEN
        WITH counted AS (
            INSERT INTO incident_evidence AS d (incident_id, value_key, kind, scope, entities, value)
            SELECT * FROM unnest(new_ids, new_keys, new_kinds, new_scopes, new_counts, new_values)
            ON CONFLICT (incident_id, value_key, kind, scope) DO UPDATE SET entities = d.entities + excluded.entities
            RETURNING d.incident_id, d.value_key, d.xmax = 0 AS inserted)
        SELECT array_agg(incident_id) FILTER (WHERE inserted), array_agg(value_key) FILTER (WHERE inserted)
          INTO inserted_ids, inserted_keys FROM counted;
        IF inserted_ids IS NOT NULL THEN
            PERFORM incident_evidence_inserted(inserted_ids, inserted_keys);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION incident_evidence_bits_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE incidents i SET evidence_bits = i.evidence_bits | b.bits
      FROM (SELECT n.incident_id, bit_or(set_bit(B'0'::bit(256), get_byte(decode(md5(t), 'hex'), 0), 1)) AS bits
              FROM new_rows n CROSS JOIN LATERAL unnest(show_trgm(n.value_key)) AS t GROUP BY 1) b
     WHERE i.id = b.incident_id AND (i.evidence_bits | b.bits) <> i.evidence_bits;
    RETURN NULL;
END
$$;
