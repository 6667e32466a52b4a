-- linkAlerts replays: a key names one request of one user, and what it did.
CREATE TABLE idempotency_keys (
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash  bytea NOT NULL,
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
