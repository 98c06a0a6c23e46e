-- Schema version 1. Never edit a migration once released: add the next one.

-- An order's mutable record: small rows, rewritten by every update.
CREATE TABLE orders (
    id          TEXT PRIMARY KEY NOT NULL,
    owner       TEXT,
    mode        TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    dispatch    TEXT NOT NULL,
    resource_id TEXT,
    stable_id   TEXT,
    ticket      TEXT,
    updated_at  TEXT NOT NULL,
    -- How many sealed secrets of the order are kept in `sealed_secrets`.
    secrets     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- The order itself (JSON, secrets masked): written once.
CREATE TABLE order_contents (
    id         TEXT PRIMARY KEY NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    order_json TEXT NOT NULL
) WITHOUT ROWID;
-- orders_in(states), order_counts, purge_finished: by state, then id.
CREATE INDEX orders_by_state ON orders (state, id);
-- erase_owner.
CREATE INDEX orders_by_owner ON orders (owner) WHERE owner IS NOT NULL;

-- Secret values of orders, sealed (XChaCha20-Poly1305) with the key named by key_id.
CREATE TABLE sealed_secrets (
    order_id   TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    property   TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (order_id, property)
) WITHOUT ROWID;

CREATE TABLE order_history (
    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    version  INTEGER NOT NULL,
    entry    TEXT NOT NULL,
    PRIMARY KEY (order_id, version)
) WITHOUT ROWID;

CREATE TABLE review_decisions (
    order_id TEXT PRIMARY KEY NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    decision TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE resources (
    connection TEXT NOT NULL,
    id         TEXT NOT NULL,
    stable_id  TEXT,
    resource   TEXT NOT NULL,
    PRIMARY KEY (connection, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX resources_by_stable ON resources (connection, stable_id)
    WHERE stable_id IS NOT NULL;

CREATE TABLE cookies (
    connection TEXT PRIMARY KEY NOT NULL,
    cookie     TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE assignments (
    id    TEXT PRIMARY KEY NOT NULL,
    -- The owner of an AssignedResourceType; for a scalar or navigation, the id of its
    -- AssignedResourceType (erase_owner follows it).
    owner TEXT,
    parent TEXT,
    assignment TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX assignments_by_owner ON assignments (owner) WHERE owner IS NOT NULL;
CREATE INDEX assignments_by_parent ON assignments (parent) WHERE parent IS NOT NULL;

CREATE TABLE requests (
    id      TEXT PRIMARY KEY NOT NULL,
    owner   TEXT NOT NULL,
    request TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX requests_by_owner ON requests (owner);

CREATE TABLE audit (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT,
    entry TEXT NOT NULL
);
CREATE INDEX audit_by_owner ON audit (owner) WHERE owner IS NOT NULL;

CREATE TABLE job_runs (
    id         TEXT PRIMARY KEY NOT NULL,
    started_at TEXT NOT NULL,
    run        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX job_runs_by_start ON job_runs (started_at, id);
