-- Wider evidence bits for the incidents of many values (issues 16 and 18): 4,096 bits beside the
-- 256 of 0026, kept only where those 256 stopped telling incidents apart.
--
-- The walk checks each incident's 256 bits before reading its text (0025) and its rows (0024). A
-- large incident's values hold hundreds of distinct trigrams (on a fresh benchmark seed, those with
-- 225 or more of 256 bits set held 442 on average, up to 1,056), which set nearly all of the bits: the
-- check passes them all, and the walk reads their text, kilobytes each. Ingestion grows such
-- incidents at the top of the queue, where the walk starts: over `make soak`'s 15 minutes the
-- typeahead's p95 went from 30 to 47 ms, as the incidents of 100-999 alerts among the newest
-- 20,000 reached 245 of 256 bits set on average.
--
-- Here an incident with 128 of its 256 bits set (evidence_wide_kept()) also keeps 4,096: for each trigram of
-- its values, the bit numbered by the first 12 bits of the trigram's MD5 (so a trigram's narrow
-- bit, the first byte, is its wide bit divided by 16). 1,000 trigrams set about 22% of them, and
-- a word's 5 trigrams then pass about one such incident in 2,000. Only incidents past the
-- threshold carry them (1,763 of a million on a fresh benchmark seed; 512 bytes each, in the
-- row); the others keep NULL, and the check skips it for them.
--
-- Kept as 0026's are, a superset of its values' trigrams: a value new to an incident sets its wide
-- bits too (the same trigger, in the same write of the incident's row, under the incident's row
-- lock its writers hold); the incident whose 256 bits reach the threshold gets its 4,096 computed
-- from all its values at that moment. Narrow bits only grow, so an incident past the threshold
-- stays past it.
-- tests/invariants.MISSING_EVIDENCE_BITS checks both sets and the threshold.
LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE;
LOCK TABLE alerts, alert_entities, incident_evidence IN SHARE ROW EXCLUSIVE MODE;

-- Whether an incident's narrow bits are full enough for it to keep the wide ones: the one place the
-- threshold is said (the trigger, the backfill below, app/domain/bulk_seed and the invariants).
CREATE FUNCTION evidence_wide_kept(bits bit(256)) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT bit_count(bits) >= 128 $$;

-- The wide bit of a trigram, from its MD5 (decode(md5(trigram), 'hex')): its first 12 bits. The one
-- place the hash is said in SQL (app/domain/evidence.trigram_wide_bit says it in Python); inlined.
CREATE FUNCTION evidence_wide_bit(digest bytea) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT (get_byte(digest, 0) << 4) | (get_byte(digest, 1) >> 4) $$;

-- One value's wide bits (the definition the invariants check against). IMMUTABLE: show_trgm and md5 are.
CREATE FUNCTION evidence_wide_bits(value_key text) RETURNS bit(4096)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(bit_or(set_bit(B'0'::bit(4096), evidence_wide_bit(d), 1)), B'0'::bit(4096))
      FROM unnest(show_trgm(value_key)) AS t CROSS JOIN LATERAL decode(md5(t), 'hex') AS d
$$;

-- An incident's wide bits, from all of its values as they are. VOLATILE: called in a statement,
-- it reads with a snapshot of its own, so that it also sees the values another transaction
-- committed since that statement began (in the trigger below: one whose change of the incident's
-- row that statement then met).
CREATE FUNCTION incident_evidence_wide_bits(incident bigint) RETURNS bit(4096)
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(bit_or(set_bit(B'0'::bit(4096), evidence_wide_bit(d), 1)), B'0'::bit(4096))
      FROM (SELECT DISTINCT t FROM incident_evidence v CROSS JOIN LATERAL unnest(show_trgm(v.value_key)) AS t
             WHERE v.incident_id = incident) x
     CROSS JOIN LATERAL decode(md5(x.t), 'hex') AS d
$$;

-- NULL: the incident keeps no wide bits (fewer than the threshold of its narrow bits are set).
-- MAIN: kept in the row (compressed first, if a row ever needs it; out of line only as a last
-- resort), not in a TOAST table that the walk would read for each incident it checks.
ALTER TABLE incidents ADD COLUMN evidence_wide_bits bit(4096);
ALTER TABLE incidents ALTER COLUMN evidence_wide_bits SET STORAGE MAIN;

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

-- Rows new to incident_evidence (0027's statement, with the wide bits), one write of each incident:
-- - its narrow bits get the new rows';
-- - an incident that keeps wide bits gets the new rows' (computed only for those: `kept`, read
--   with the statement's snapshot); one whose narrow bits reach the threshold gets them from all
--   its values, the new rows among them (the trigger runs after the insert, and
--   incident_evidence_wide_bits reads with a snapshot of its own). So does one that keeps them
--   where `kept` did not see it (added to those it has: none is dropped), and one past the
--   threshold without them. Neither happens while every writer of an incident's evidence holds
--   the incident's row lock, as ingestion and the moves do.
CREATE OR REPLACE FUNCTION incident_evidence_bits_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH kept AS MATERIALIZED (
        SELECT k.id FROM incidents k
         WHERE k.id IN (SELECT n.incident_id FROM new_rows n) AND k.evidence_wide_bits IS NOT NULL
    )
    UPDATE incidents i
       SET evidence_bits = i.evidence_bits | b.bits,
           evidence_wide_bits = CASE
               WHEN i.evidence_wide_bits IS NOT NULL AND b.wide IS NOT NULL THEN i.evidence_wide_bits | b.wide
               WHEN i.evidence_wide_bits IS NOT NULL OR evidence_wide_kept(i.evidence_bits | b.bits)
                   THEN coalesce(i.evidence_wide_bits, B'0'::bit(4096)) | incident_evidence_wide_bits(i.id)
           END
      FROM (SELECT n.incident_id, bit_or(set_bit(B'0'::bit(256), get_byte(d, 0), 1)) AS bits,
                   bit_or(set_bit(B'0'::bit(4096), evidence_wide_bit(d), 1)) FILTER (WHERE w.id IS NOT NULL) AS wide
              FROM new_rows n LEFT JOIN kept w ON w.id = n.incident_id
             CROSS JOIN LATERAL unnest(show_trgm(n.value_key)) AS t CROSS JOIN LATERAL decode(md5(t), 'hex') AS d
             GROUP BY 1) b
     WHERE i.id = b.incident_id
       AND ((i.evidence_bits | b.bits) <> i.evidence_bits
            OR (i.evidence_wide_bits IS NOT NULL AND (b.wide IS NULL OR (i.evidence_wide_bits | b.wide) <> i.evidence_wide_bits))
            OR (i.evidence_wide_bits IS NULL AND evidence_wide_kept(i.evidence_bits)));
    RETURN NULL;
END
$$;
