-- The incidents a move locks, in id order, with a snapshot of their own: VOLATILE functions take
-- a fresh snapshot for each query they run. The statement that calls this one has first waited
-- for the locks of the alerts it moves, and a move that committed meanwhile may have taken them
-- to an incident it created, which that statement's own snapshot does not hold.
CREATE FUNCTION lock_incidents(ids bigint[]) RETURNS SETOF incidents
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM incidents WHERE id = ANY(ids) ORDER BY id FOR UPDATE;
END
$$;
