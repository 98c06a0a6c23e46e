-- autoprov store schema, version 3: what several workers share besides the orders.

-- Connection permits: slot `slot` of a connection's concurrency limit, leased by one worker
-- with a fencing token from the claims' sequence. A slot is free when its lease is NULL or
-- past (the server's now()).
CREATE TABLE connection_permits (
    connection       text COLLATE "C" NOT NULL,
    slot             int NOT NULL,
    worker           text,
    token            bigint,
    lease_expires_at timestamptz,
    PRIMARY KEY (connection, slot)
);

-- The circuit breaker of each connection, shared by every worker: consecutive temporary
-- failures, open until a time (server clock), and half_open once opened (a probe is due
-- when open_until has passed; a good call or probe closes it).
CREATE TABLE connection_breakers (
    connection text COLLATE "C" PRIMARY KEY,
    failures   int NOT NULL DEFAULT 0,
    open_until timestamptz,
    half_open  boolean NOT NULL DEFAULT false
);
