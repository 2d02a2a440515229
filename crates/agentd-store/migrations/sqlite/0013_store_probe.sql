-- agentd schema, step 9: one row that `write_health` rewrites to learn whether a write
-- commits (a full or failing disk shows here before a user's write fails on it).

CREATE TABLE store_probe (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at BIGINT NOT NULL
);
