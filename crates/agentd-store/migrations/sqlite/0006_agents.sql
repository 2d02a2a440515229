-- agentd schema, step 7: agents (named definitions) and their numbered versions.

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    name         TEXT NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX agents_project ON agents (project_id, created_at, id);

CREATE TABLE agent_versions (
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    state         TEXT NOT NULL,
    spec          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    published_at  BIGINT,
    PRIMARY KEY (agent_id, number)
);
