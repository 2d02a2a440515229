-- agentd schema, step 7: resource numbers and tools.
--
-- Every agent and tool (and, later, table) also has a small integer, its resource number,
-- unique across the server and never reused: the `resourceId` of the Autessa API.

CREATE TABLE resource_numbers (
    number       INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    kind         TEXT NOT NULL,
    resource_id  TEXT NOT NULL UNIQUE
);
INSERT INTO resource_numbers (project_id, kind, resource_id)
    SELECT project_id, 'agent', id FROM agents ORDER BY created_at, id;

-- Tools: user-defined HTTP tools and MCP servers, versioned as agents are. A version's
-- private variables are sealed (encrypted with the server's secrets key) inside `spec`.
CREATE TABLE tools (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX tools_project ON tools (project_id, created_at, id);
CREATE UNIQUE INDEX tools_name ON tools (project_id, name);

CREATE TABLE tool_versions (
    tool_id       TEXT NOT NULL REFERENCES tools(id) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    state         TEXT NOT NULL,
    spec          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    published_at  BIGINT,
    PRIMARY KEY (tool_id, number)
);
