-- Any change to who may do what (a user, a permission, a grant, a token) notifies the channel
-- incident_graph_access once its transaction commits, so that every server process forgets the
-- tokens it has verified (app/token_cache.py). From the database side, so that no code path
-- (the `incidents` command, a script, SQL by hand) can change access without it. Statement
-- triggers: one notification per statement, and PostgreSQL folds identical notifications of a
-- transaction into one. Issue 13's live updates notify the same channel for the same reason;
-- triggers of both on one change still make one notification.
CREATE FUNCTION notify_access_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('incident_graph_access', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_access_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_access_changes();
CREATE TRIGGER grants_access_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION notify_access_changes();
CREATE TRIGGER api_tokens_access_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_access_changes();
