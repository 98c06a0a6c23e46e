-- What autoprov holds as its own for each owner (`OwnedValues`: the resource types, properties
-- and references its plans gave a value), so that a restarted planner does not take them for
-- values that predate autoprov.
CREATE TABLE owned_values (
    owner  TEXT PRIMARY KEY NOT NULL,
    owned  TEXT NOT NULL
) WITHOUT ROWID;
