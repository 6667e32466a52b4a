-- Wider evidence bits for the incidents of many values (issues 16 and 18): 4,096 bits beside the
-- 256 of 0026, kept only where those 256 stopped telling incidents apart.
--
-- The walk checks each incident's 256 bits before reading its text (0025) and its rows (0024). A
-- large incident's values hold hundreds of distinct trigrams (on the benchmark's database those of
-- 100-999 alerts hold 440 on average, up to about 1,000), which set nearly all of the 256 bits: the
-- check passes them all, and the walk reads their text, kilobytes each. Ingestion grows such
-- incidents at the top of the queue, where the walk starts: over `make soak`'s 15 minutes the
-- typeahead's p95 went from 30 to 47 ms, as the incidents of 100-999 alerts among the newest
-- 20,000 reached 245 of 256 bits set on average.
--
-- Here an incident with WIDE_FROM (128) of its 256 bits set also keeps 4,096: for each trigram of
-- its values, the bit numbered by the first 12 bits of the trigram's MD5 (so a trigram's narrow
-- bit, the first byte, is its wide bit divided by 16). 1,000 trigrams set about 22% of them, and
-- a word's 5 trigrams then pass about one such incident in 2,000. Only incidents past the
-- threshold carry them (1,763 of a million on a fresh benchmark seed; 512 bytes each, in the
-- row); the others keep NULL, and the check skips it for them.
--
-- Kept as 0026's are, a superset: a value new to an incident sets its wide bits too (the same
-- trigger, under the incident's row lock its writers hold); the incident whose 256 bits reach the
-- threshold gets its 4,096 computed from all its values at that moment; none is ever cleared.
-- Narrow bits only grow, so an incident past the threshold stays past it.
-- tests/invariants.MISSING_EVIDENCE_BITS checks both sets and the threshold.
LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE;
LOCK TABLE alerts, alert_entities, incident_evidence IN SHARE ROW EXCLUSIVE MODE;

-- Whether an incident's narrow bits are full enough for it to keep the wide ones: the one place the
-- threshold is said (the triggers, the backfill below, app/domain/bulk_seed and the invariants).
CREATE FUNCTION evidence_wide_kept(bits bit(256)) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT bit_count(bits) >= 128 $$;

-- One value's wide bits (the definition the invariants check against). IMMUTABLE: show_trgm and md5 are.
CREATE FUNCTION evidence_wide_bits(value_key text) RETURNS bit(4096)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(bit_or(set_bit(B'0'::bit(4096), (get_byte(d, 0) << 4) | (get_byte(d, 1) >> 4), 1)), B'0'::bit(4096))
      FROM unnest(show_trgm(value_key)) AS t CROSS JOIN LATERAL decode(md5(t), 'hex') AS d
$$;

-- An incident's wide bits, from all of its values as they are.
CREATE FUNCTION incident_evidence_wide_bits(incident bigint) RETURNS bit(4096)
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(bit_or(set_bit(B'0'::bit(4096), (get_byte(d, 0) << 4) | (get_byte(d, 1) >> 4), 1)), B'0'::bit(4096))
      FROM (SELECT DISTINCT t FROM incident_evidence v CROSS JOIN LATERAL unnest(show_trgm(v.value_key)) AS t
             WHERE v.incident_id = incident) x
     CROSS JOIN LATERAL decode(md5(x.t), 'hex') AS d
$$;

-- NULL: the incident keeps no wide bits (fewer than the threshold of its narrow bits are set).
ALTER TABLE incidents ADD COLUMN evidence_wide_bits bit(4096);

-- The bits are the search's, not a change of the incident (0026): a write of them alone leaves updated_at.
CREATE OR REPLACE FUNCTION incident_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.evidence_bits IS DISTINCT FROM OLD.evidence_bits OR NEW.evidence_wide_bits IS DISTINCT FROM OLD.evidence_wide_bits)
       AND (to_jsonb(NEW) - '{evidence_bits,evidence_wide_bits,name_folded}'::text[])
           = (to_jsonb(OLD) - '{evidence_bits,evidence_wide_bits,name_folded}'::text[]) THEN
        RETURN NEW;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

ALTER TABLE incidents DISABLE TRIGGER incidents_updated_at;
UPDATE incidents SET evidence_wide_bits = incident_evidence_wide_bits(id) WHERE evidence_wide_kept(evidence_bits);
ALTER TABLE incidents ENABLE TRIGGER incidents_updated_at;

-- Rows new to incident_evidence (0027's statement, then the wide bits): an incident whose narrow
-- bits reach the threshold gets its wide bits from all its values, the new rows among them; then
-- an incident that keeps wide bits gets those of the new rows (for one that just got them, nothing
-- changes: that statement skips it). The wide bits are computed only for the incidents that keep them.
CREATE OR REPLACE FUNCTION incident_evidence_bits_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE incidents i
       SET evidence_bits = i.evidence_bits | b.bits,
           evidence_wide_bits = CASE WHEN i.evidence_wide_bits IS NULL AND evidence_wide_kept(i.evidence_bits | b.bits)
                                     THEN incident_evidence_wide_bits(i.id) ELSE i.evidence_wide_bits END
      FROM (SELECT n.incident_id, bit_or(set_bit(B'0'::bit(256), get_byte(decode(md5(t), 'hex'), 0), 1)) AS bits
              FROM new_rows n CROSS JOIN LATERAL unnest(show_trgm(n.value_key)) AS t GROUP BY 1) b
     WHERE i.id = b.incident_id AND (i.evidence_bits | b.bits) <> i.evidence_bits;
    UPDATE incidents i SET evidence_wide_bits = i.evidence_wide_bits | w.bits
      FROM (SELECT n.incident_id,
                   bit_or(set_bit(B'0'::bit(4096), (get_byte(d, 0) << 4) | (get_byte(d, 1) >> 4), 1)) AS bits
              FROM new_rows n JOIN incidents k ON k.id = n.incident_id AND k.evidence_wide_bits IS NOT NULL
             CROSS JOIN LATERAL unnest(show_trgm(n.value_key)) AS t CROSS JOIN LATERAL decode(md5(t), 'hex') AS d
             GROUP BY 1) w
     WHERE i.id = w.incident_id AND (i.evidence_wide_bits | w.bits) <> i.evidence_wide_bits;
    RETURN NULL;
END
$$;
