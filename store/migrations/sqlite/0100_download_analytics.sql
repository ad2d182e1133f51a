-- Download analytics (docs/analytics.md): one raw row per download and
-- the daily rollups the stats routes read, maintained in the same
-- transaction as each batch of raw rows, so that no route ever scans the
-- raw events. Days are UTC dates as 'YYYY-MM-DD' text (they sort, and both
-- dialects compare them alike). No client address is ever stored: only an
-- HMAC of it under the day's secret, which is deleted after a day.

-- The day's secret of the client-address HMAC. Nodes sharing a database
-- agree on it (the first to insert wins); older days are deleted.
CREATE TABLE analytics_secrets (
    day    TEXT PRIMARY KEY NOT NULL,
    secret BLOB NOT NULL
);

-- Raw events, kept for the retention (90 days by default), then pruned.
CREATE TABLE download_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            DATETIME NOT NULL,
    day           TEXT NOT NULL,
    worker        TEXT NOT NULL,
    version       TEXT NOT NULL,
    platform      TEXT NOT NULL,
    source        TEXT NOT NULL,
    client_family TEXT NOT NULL,
    client_hash   TEXT,
    license_id    TEXT,
    complete      BOOLEAN NOT NULL,
    resumed       BOOLEAN NOT NULL
);
CREATE INDEX download_events_by_day ON download_events (day);

-- The rollup tables are WITHOUT ROWID: each is its primary key's B-tree
-- alone, so an upsert descends one tree, not a key index and the table.

-- Per day, worker, version and platform: the worker page's by-version,
-- by-platform figures.
CREATE TABLE analytics_daily (
    worker     TEXT NOT NULL,
    day        TEXT NOT NULL,
    version    TEXT NOT NULL,
    platform   TEXT NOT NULL,
    complete   BIGINT NOT NULL,
    incomplete BIGINT NOT NULL,
    resumed    BIGINT NOT NULL,
    PRIMARY KEY (worker, day, version, platform)
) WITHOUT ROWID;

-- Per day and worker: the per-day series, unique clients, top workers.
CREATE TABLE analytics_daily_workers (
    worker         TEXT NOT NULL,
    day            TEXT NOT NULL,
    complete       BIGINT NOT NULL,
    incomplete     BIGINT NOT NULL,
    resumed        BIGINT NOT NULL,
    unique_clients BIGINT NOT NULL,
    PRIMARY KEY (worker, day)
) WITHOUT ROWID;
CREATE INDEX analytics_daily_workers_by_day ON analytics_daily_workers (day, worker);

-- The client hashes seen per day and worker, only to count each once
-- (kept two days, then pruned).
CREATE TABLE analytics_daily_clients (
    worker      TEXT NOT NULL,
    day         TEXT NOT NULL,
    client_hash TEXT NOT NULL,
    PRIMARY KEY (worker, day, client_hash)
) WITHOUT ROWID;

-- Per day, for the overview: dimension is 'platform', 'source' or
-- 'client_family', key its value.
CREATE TABLE analytics_daily_dimensions (
    dimension  TEXT NOT NULL,
    day        TEXT NOT NULL,
    key        TEXT NOT NULL,
    complete   BIGINT NOT NULL,
    incomplete BIGINT NOT NULL,
    PRIMARY KEY (dimension, day, key)
) WITHOUT ROWID;
