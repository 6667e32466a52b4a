-- The key that seals the queue's cursors: they hold an incident's last activity, which can come
-- from alerts the viewer may not read (README, Permissions). One per database, made once from
-- PostgreSQL's strong random source (gen_random_uuid), read by every server process.
CREATE TABLE cursor_sealing_key (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key bytea NOT NULL CHECK (length(key) >= 16)
);
INSERT INTO cursor_sealing_key (key)
SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
