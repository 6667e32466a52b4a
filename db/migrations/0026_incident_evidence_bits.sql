-- Each incident's evidence trigrams as 256 bits on its own row: what the typeahead's walk checks
-- first, before its text (0025) and its rows of incident_evidence (0024) (issue 16).
--
-- The walk checks the newest incidents one by one for a fragment ("king@contoso"): at a million
-- incidents, an index probe of incident_evidence_text (2 buffers, nearly always empty) and one
-- of incident_evidence (3 buffers) an incident, 14,662 incidents in 20 ms for a page, where the
-- incidents' own rows, read by the walk anyway, cost 9,544 buffers. Here the incident's row says
-- which trigrams its values may hold: a value holding a word holds the word's trigrams, so an
-- incident whose bits lack one of them holds no value with the word, and the walk passes it
-- without a probe. The check is a filter, never the rule: the incidents that pass it are
-- checked as before, through their text and rows.
--
-- The bits: for each trigram pg_trgm gives a value (show_trgm), the bit numbered by the first
-- byte of the trigram's MD5 (a hash defined here, the same in every version of PostgreSQL and
-- in Python: app/domain/evidence.query_bits computes a search's trigrams as pg_trgm extracts
-- them from '%word%', and their bits). Median incident: 46 distinct trigrams, 16% of the bits
-- set; a word's 5-10 trigrams then leave about one incident in 10,000 to probe.
--
-- A superset, kept by the triggers: a value new to an incident sets its bits
-- (a trigger on incident_evidence's inserts, under the incident's row lock that every writer
-- of its alerts holds); a value that leaves clears none (another value may share the bit), so an incident's
-- bits only grow. An incident whose values churned passes the check more often, never wrongly
-- fails it. tests/invariants.py's MISSING_EVIDENCE_BITS checks the superset.
--
-- The new column and the backfill rewrite every incident row under ACCESS EXCLUSIVE: every read
-- and write of incidents waits for this migration (1 min 54 s at a million incidents), and the old
-- row versions are left to vacuum (autovacuum's next run; `VACUUM incidents` right after it
-- returns the space at once). That lock is taken first, so that no writer holding incidents' rows
-- (ingestion locks them, then writes alerts) waits on this migration while it waits on them.
SET LOCAL maintenance_work_mem = '512MB';
LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE;
LOCK TABLE alerts, alert_entities, incident_evidence IN SHARE ROW EXCLUSIVE MODE;

-- One value's bits. IMMUTABLE: show_trgm and md5 are.
CREATE FUNCTION evidence_bits(value_key text) RETURNS bit(256)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(bit_or(set_bit(B'0'::bit(256), get_byte(decode(md5(t), 'hex'), 0), 1)), B'0'::bit(256))
      FROM unnest(show_trgm(value_key)) AS t
$$;

ALTER TABLE incidents ADD COLUMN evidence_bits bit(256) NOT NULL DEFAULT B'0'::bit(256);
-- The backfill is not a change of the incidents (updated_at stays).
ALTER TABLE incidents DISABLE TRIGGER incidents_updated_at;
UPDATE incidents i SET evidence_bits = b.bits
  FROM (SELECT incident_id, bit_or(evidence_bits(value_key)) AS bits FROM incident_evidence GROUP BY 1) b
 WHERE i.id = b.incident_id;
ALTER TABLE incidents ENABLE TRIGGER incidents_updated_at;

-- The bits are the search's, not a change of the incident: a write of them alone leaves updated_at
-- (0015), so that it can be a heap-only update (updated_at is indexed: incidents_updated). The
-- triggers below write them in the middle of a move or an ingestion, which then writes the
-- incident's counts and activity: with updated_at set here too, each incident a move reaches was
-- written twice with new index entries in all nine of its indexes.
-- (name_folded, generated from name, is not computed yet in a BEFORE trigger's NEW: left out.)
CREATE OR REPLACE FUNCTION incident_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.evidence_bits IS DISTINCT FROM OLD.evidence_bits
       AND (to_jsonb(NEW) - '{evidence_bits,name_folded}'::text[]) = (to_jsonb(OLD) - '{evidence_bits,name_folded}'::text[]) THEN
        RETURN NEW;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Rows new to incident_evidence set their values' bits on their incidents, whichever statement
-- inserts them (0024's and 0025's triggers, under the incident row locks their writers hold).
CREATE FUNCTION incident_evidence_bits_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE incidents i SET evidence_bits = i.evidence_bits | b.bits
      FROM (SELECT n.incident_id, bit_or(evidence_bits(n.value_key)) AS bits FROM new_rows n GROUP BY 1) b
     WHERE i.id = b.incident_id AND (i.evidence_bits | b.bits) <> i.evidence_bits;
    RETURN NULL;
END
$$;
CREATE TRIGGER incident_evidence_bits AFTER INSERT ON incident_evidence REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_evidence_bits_set();
