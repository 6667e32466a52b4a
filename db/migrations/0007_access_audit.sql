-- Taking access away. A disabled user's tokens stop authenticating at once, on every server
-- process, because the token lookup (users.VIEWER_BY_TOKEN) reads this column on every request.
-- Enabling is explicit (`incidents user enable`); `user add` never does it.
ALTER TABLE users ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- A user's tokens, for `incidents token revoke`, `user list` and ON DELETE CASCADE.
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TYPE access_action AS ENUM (
    'user_created', 'permission_changed', 'grant_set', 'grant_removed',
    'user_disabled', 'user_enabled', 'token_issued', 'tokens_revoked'
);

-- Every change to a user, their permissions, grants and tokens made through app/domain/users.py
-- (the `incidents` command), written by the transaction that makes it: an entry exists exactly
-- when its change committed. A change made by hand in SQL writes none.
-- No foreign key to users: the record of a change outlives what it changed; user_id tells apart
-- a user deleted and created again under the same name.
CREATE TABLE access_audit (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),   -- the transaction's start: one command, one moment
    -- Who, as the command was told: --by, else INCIDENTS_OPERATOR, else the OS user.
    operator       text NOT NULL
                   CHECK (length(operator) <= 200 AND operator ~ '\S' AND operator !~ '[\x01-\x1f\x7f-\x9f]'),
    -- Who, as PostgreSQL knows them: the one the operator cannot choose.
    database_user  text NOT NULL DEFAULT session_user,
    action         access_action NOT NULL,
    user_id        bigint NOT NULL,
    user_name      text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    -- Each action's details, checked (coalesce: a missing key makes a NULL, which a CHECK passes).
    -- user_created: {"queue": bool, "ingest": bool}
    CONSTRAINT access_audit_user_created CHECK (action <> 'user_created' OR coalesce(
        jsonb_typeof(details -> 'queue') = 'boolean' AND jsonb_typeof(details -> 'ingest') = 'boolean', false)),
    -- permission_changed: {"permission": "queue" | "ingest", "old": bool, "new": bool}, old <> new
    CONSTRAINT access_audit_permission_changed CHECK (action <> 'permission_changed' OR coalesce(
        details ->> 'permission' IN ('queue', 'ingest')
        AND jsonb_typeof(details -> 'old') = 'boolean' AND jsonb_typeof(details -> 'new') = 'boolean'
        AND details -> 'old' <> details -> 'new', false)),
    -- grant_set: {"scope": text, "old": null | access, "new": access}, old <> new
    CONSTRAINT access_audit_grant_set CHECK (action <> 'grant_set' OR coalesce(
        jsonb_typeof(details -> 'scope') = 'string'
        AND (jsonb_typeof(details -> 'old') = 'null' OR details ->> 'old' IN ('read', 'write'))
        AND details ->> 'new' IN ('read', 'write')
        AND details -> 'old' <> details -> 'new', false)),
    -- grant_removed: {"scope": text, "old": access}
    CONSTRAINT access_audit_grant_removed CHECK (action <> 'grant_removed' OR coalesce(
        jsonb_typeof(details -> 'scope') = 'string' AND details ->> 'old' IN ('read', 'write'), false)),
    -- user_disabled, user_enabled: {"tokens": the unrevoked tokens that stop or start working}
    CONSTRAINT access_audit_user_enabled CHECK (action NOT IN ('user_disabled', 'user_enabled') OR coalesce(
        jsonb_typeof(details -> 'tokens') = 'number' AND details -> 'tokens' >= '0', false)),
    -- token_issued: {"token_id": bigint} (never the token, never its hash)
    CONSTRAINT access_audit_token_issued CHECK (action <> 'token_issued' OR coalesce(jsonb_typeof(details -> 'token_id') = 'number', false)),
    -- tokens_revoked: {"tokens": how many, at least one}
    CONSTRAINT access_audit_tokens_revoked CHECK (action <> 'tokens_revoked' OR coalesce(
        jsonb_typeof(details -> 'tokens') = 'number' AND details -> 'tokens' >= '1', false))
);

-- An audit is appended to, never rewritten.
CREATE FUNCTION access_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access_audit is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER access_audit_append_only BEFORE UPDATE OR DELETE ON access_audit
    FOR EACH ROW EXECUTE FUNCTION access_audit_append_only();
