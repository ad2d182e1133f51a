-- Credentials of the catalog and the registry: license keys, publisher
-- keys, the admin key, and the audit log of every admin action. Keys are
-- never stored, only the SHA-256 (hex) of the full key text. Grants are a
-- JSON array such as [{"worker":"llm-worker"},{"namespace":"rbee-premium"}],
-- kept as text so that both dialects decode the same Rust type.

CREATE TABLE licenses (
    id                 TEXT PRIMARY KEY,
    key_hash           TEXT NOT NULL UNIQUE,
    owner              TEXT NOT NULL,
    grants             TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at         TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ,
    perpetual_fallback BOOLEAN NOT NULL DEFAULT FALSE,
    revoked_at         TIMESTAMPTZ
);

CREATE TABLE publisher_keys (
    id         TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    owner      TEXT NOT NULL,
    grants     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- At most one active admin key: `active_slot` is 1 while the key is
-- active and NULL once revoked, and NULLs never collide in a UNIQUE column.
-- Two catalog nodes starting at once on one database cannot both create one.
CREATE TABLE admin_keys (
    id          TEXT PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    active_slot INTEGER UNIQUE CHECK (active_slot = 1),
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- Who did what to which record, and when. `detail` never holds a secret.
CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT,
    detail  TEXT NOT NULL DEFAULT ''
);
