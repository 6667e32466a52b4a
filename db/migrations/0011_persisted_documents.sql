-- Persisted GraphQL documents (docs/persisted-documents.md), shared by every server process and
-- replica: Apollo's automatic persisted queries register them on first use, and
-- `incidents documents register` registers a client's manifest as trusted, the only documents
-- GRAPHQL_TRUSTED_DOCUMENTS_ONLY lets run. Content-addressed: a row never changes its body, so
-- processes may cache them; rows registered by APQ may be deleted at any time (their clients
-- send them again).
CREATE TABLE persisted_documents (
    -- The SHA-256 of the body's UTF-8 bytes: the id clients send, checked here too.
    sha256         bytea PRIMARY KEY CHECK (length(sha256) = 32),
    body           text NOT NULL CHECK (body ~ '\S'),
    trusted        boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    trusted_at     timestamptz,
    -- The user whose request registered it through APQ; NULL for the command line. No foreign
    -- key: it says who filled the table even after the user is deleted.
    registered_by  bigint,
    CONSTRAINT persisted_documents_content_addressed CHECK (sha256 = sha256(convert_to(body, 'UTF8'))),
    CONSTRAINT persisted_documents_trusted_at CHECK (trusted = (trusted_at IS NOT NULL))
);

-- The cap on documents registered through APQ counts these (app/domain/persisted.py).
CREATE INDEX persisted_documents_untrusted ON persisted_documents (created_at) WHERE NOT trusted;
