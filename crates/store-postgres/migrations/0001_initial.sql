-- autoprov store schema, version 1. Keys are COLLATE "C" so that pages come in the same
-- (byte-wise) order as every other store, whatever the database's default collation.
-- Records are kept whole as JSON (the store crate's serde form); the columns beside them
-- are what queries filter and sort on, written from the record in the same statement.

CREATE TABLE orders (
    order_id         text COLLATE "C" PRIMARY KEY,
    state            text NOT NULL,
    version          bigint NOT NULL,
    owner_id         text COLLATE "C",
    depends_on       text[] NOT NULL DEFAULT '{}',
    not_before       timestamptz,
    next_attempt_at  timestamptz,
    updated_at       timestamptz NOT NULL,
    record           jsonb NOT NULL,
    -- The current lease (work distribution): who holds it, its fencing token, its end.
    lease_owner      text,
    lease_token      bigint,
    lease_expires_at timestamptz
);
CREATE INDEX orders_by_state ON orders (state, order_id);
CREATE INDEX orders_by_owner ON orders (owner_id);

CREATE SEQUENCE lease_tokens;

CREATE TABLE order_history (
    order_id text COLLATE "C" NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    version  bigint NOT NULL,
    entry    jsonb NOT NULL,
    PRIMARY KEY (order_id, version)
);

CREATE TABLE review_decisions (
    order_id text COLLATE "C" PRIMARY KEY REFERENCES orders (order_id) ON DELETE CASCADE,
    decision jsonb NOT NULL
);

CREATE TABLE resources (
    connection text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    stable_id  text,
    resource   jsonb NOT NULL,
    PRIMARY KEY (connection, key)
);
CREATE INDEX resources_by_stable_id ON resources (connection, stable_id);

CREATE TABLE export_cookies (
    connection text COLLATE "C" PRIMARY KEY,
    cookie     text NOT NULL
);

CREATE TABLE assignments (
    id                     text COLLATE "C" PRIMARY KEY,
    -- For an AssignedResourceType: its owner; for a scalar or navigation: its
    -- AssignedResourceType (what an erasure follows).
    owner_id               text COLLATE "C",
    assigned_resource_type text COLLATE "C",
    assignment             jsonb NOT NULL
);
CREATE INDEX assignments_by_owner ON assignments (owner_id);
CREATE INDEX assignments_by_type ON assignments (assigned_resource_type);

CREATE TABLE requests (
    id       text COLLATE "C" PRIMARY KEY,
    owner_id text COLLATE "C" NOT NULL,
    request  jsonb NOT NULL
);
CREATE INDEX requests_by_owner ON requests (owner_id);

CREATE TABLE audit (
    seq      bigserial PRIMARY KEY,
    owner_id text COLLATE "C",
    entry    jsonb NOT NULL
);
CREATE INDEX audit_by_owner ON audit (owner_id);

CREATE TABLE job_runs (
    id         text COLLATE "C" PRIMARY KEY,
    -- Nanoseconds since the epoch: the exact start time, for the page order.
    started_ns bigint NOT NULL,
    run        jsonb NOT NULL
);
CREATE INDEX job_runs_by_start ON job_runs (started_ns, id);

-- The planning epoch: one row; a planner's turn is fenced by its epoch.
CREATE TABLE planning (
    id        int PRIMARY KEY CHECK (id = 1),
    epoch     bigint NOT NULL,
    planner   text NOT NULL,
    began_at  timestamptz NOT NULL
);
INSERT INTO planning (id, epoch, planner, began_at) VALUES (1, 0, '', now());
