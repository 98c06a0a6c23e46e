-- Decisions on values found in managed systems that nothing explains (keep, or confirm the
-- removal), one per owner, resource type and value (`FoundDecision::key`), with who decided.
CREATE TABLE found_decisions (
    key      TEXT PRIMARY KEY NOT NULL,
    owner    TEXT NOT NULL,
    decision TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX found_decisions_by_owner ON found_decisions (owner);
