-- agentd schema, step 8: tables (the project's small database).
--
-- A table's definition lives here; its rows live in a table of their own, `ut_<resource
-- number>`, made when the table is (id, created_at, updated_at, vector_status, then one
-- column `c<position>` per user column), with an FTS5 index `ut_<n>_fts` over its text
-- columns kept by triggers.

CREATE TABLE tables (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    columns      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX tables_project ON tables (project_id, created_at, id);
CREATE UNIQUE INDEX tables_name ON tables (project_id, name);

-- What a key may do with a table; a key with no row here may do everything.
CREATE TABLE table_permissions (
    table_id     TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
    key_id       TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (table_id, key_id)
);

-- Capability links to upload a CSV into a table: the token's SHA-256, single use.
CREATE TABLE table_upload_links (
    token_hash   TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL,
    table_id     TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
