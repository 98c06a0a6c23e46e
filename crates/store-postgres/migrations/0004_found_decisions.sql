-- Decisions on values found in managed systems that nothing explains (keep, or confirm the
-- removal), one per owner, resource type and value (`FoundDecision::key`), with who decided.
CREATE TABLE found_decisions (
    key      text COLLATE "C" PRIMARY KEY,
    owner_id text NOT NULL,
    decision jsonb NOT NULL
);
CREATE INDEX found_decisions_by_owner ON found_decisions (owner_id);
