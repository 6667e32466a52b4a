-- Persisted GraphQL documents (docs/persisted-documents.md), shared by every server process and
-- replica. `incidents documents register` registers a client's manifest as trusted: one row per
-- document, found by everyone, the only documents GRAPHQL_TRUSTED_DOCUMENTS_ONLY lets run.
-- Apollo's automatic persisted queries register a document on first use for the user who sent
-- it: one row per user and document, found only by that user (whether another user sent a text
-- is not theirs to learn). Content-addressed: a row never changes its body, so processes may
-- cache them; untrusted rows may be deleted at any time (their clients send them again).
CREATE TABLE persisted_documents (
    -- The SHA-256 of the body's UTF-8 bytes: the id clients send, checked here too.
    sha256         bytea NOT NULL CHECK (length(sha256) = 32),
    body           text NOT NULL CHECK (body ~ '\S'),
    trusted        boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    trusted_at     timestamptz,
    -- The user whose request registered it through APQ, and the only one who finds it; NULL
    -- for a trusted row. No foreign key: it says who filled the table even after the user is
    -- deleted.
    registered_by  bigint,
    CONSTRAINT persisted_documents_content_addressed CHECK (sha256 = sha256(convert_to(body, 'UTF8'))),
    CONSTRAINT persisted_documents_trusted_at CHECK (trusted = (trusted_at IS NOT NULL)),
    CONSTRAINT persisted_documents_owner CHECK (trusted = (registered_by IS NULL))
);

CREATE UNIQUE INDEX persisted_documents_trusted ON persisted_documents (sha256) WHERE trusted;
CREATE UNIQUE INDEX persisted_documents_registered ON persisted_documents (sha256, registered_by) WHERE NOT trusted;
-- The caps on documents registered through APQ, in all and per user, evict the oldest
-- (app/domain/persisted.py).
CREATE INDEX persisted_documents_untrusted_age ON persisted_documents (created_at) WHERE NOT trusted;
CREATE INDEX persisted_documents_user_age ON persisted_documents (registered_by, created_at) WHERE NOT trusted;
