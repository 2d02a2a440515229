-- agentd schema, step 1: projects, API keys, sessions, their events, idempotency records.
-- Portable SQL only: the PostgreSQL schema mirrors it type for type
-- (TEXT ids and JSON, BIGINT milliseconds since the Unix epoch for times).

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    name            TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    key_prefix      TEXT NOT NULL,
    tier            TEXT NOT NULL,
    per_minute      BIGINT,
    per_day         BIGINT,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    status          TEXT NOT NULL,
    mode            TEXT NOT NULL,
    priority        BIGINT NOT NULL,
    name            TEXT,
    user_id         TEXT,
    tags            TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    spec            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    started_at      BIGINT,
    ended_at        BIGINT,
    error           TEXT,
    response        TEXT,
    response_type   TEXT,
    usage           TEXT NOT NULL
);
CREATE INDEX sessions_project_created ON sessions (project_id, created_at, id);
CREATE INDEX sessions_status ON sessions (status);

CREATE TABLE session_tags (
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    PRIMARY KEY (session_id, tag)
);
CREATE INDEX session_tags_tag ON session_tags (tag);

CREATE TABLE events (
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE idempotency_keys (
    project_id      TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    status_code     BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (project_id, idem_key)
);
