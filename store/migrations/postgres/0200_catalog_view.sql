-- The catalog's own view of the registry (issue 13): workers as the
-- catalog index lists them, each readable release (a version whose image
-- index and everything it references were read), its platform builds, its
-- yank state and, later, its signature. The registry stays the source of
-- truth: these tables are a copy, rebuilt by `rbee-catalog sync`, kept
-- fresh from registry push and delete events.

-- One row (id 1) once the view was built: which catalog index it reflects
-- (the digest of `<catalog repository>:latest`, NULL for a registry with
-- no catalog yet) and the layout of the rows (`format`: a catalog that
-- reads releases differently raises it and rebuilds).
CREATE TABLE catalog_view_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    format         INTEGER NOT NULL,
    catalog_digest TEXT,
    synced_at      TIMESTAMPTZ NOT NULL
);

-- The catalog index's entries, in its order (`position`); `versions` is
-- the entry's JSON array of version strings.
CREATE TABLE catalog_workers (
    id               TEXT PRIMARY KEY,
    position         INTEGER NOT NULL,
    repository       TEXT NOT NULL,
    latest           TEXT,
    versions         TEXT NOT NULL,
    requires_license BOOLEAN NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX catalog_workers_repository ON catalog_workers (repository);

-- Releases whose index is complete. `metadata` is the worker metadata
-- document (JSON). Yank columns follow the newest yank referrer; a
-- signature is not read yet (NULL).
CREATE TABLE catalog_versions (
    repository   TEXT NOT NULL,
    version      TEXT NOT NULL,
    index_digest TEXT NOT NULL,
    published_at TEXT,
    metadata     TEXT NOT NULL,
    yanked       BOOLEAN NOT NULL DEFAULT FALSE,
    yank_reason  TEXT,
    yanked_at    TEXT,
    signature    TEXT,
    indexed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository, version)
);

CREATE TABLE catalog_builds (
    repository      TEXT NOT NULL,
    version         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    layer_digest    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    filename        TEXT NOT NULL,
    PRIMARY KEY (repository, version, platform),
    FOREIGN KEY (repository, version)
        REFERENCES catalog_versions (repository, version) ON DELETE CASCADE
);
