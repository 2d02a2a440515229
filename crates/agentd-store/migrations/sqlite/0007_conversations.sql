-- agentd schema, step 7: conversations (multi-turn sessions). A conversation's id is its first
-- session's; each message is a follow-up session. It closes explicitly or after being idle.

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects(id),
    last_message_at  BIGINT NOT NULL,
    closed_at        BIGINT,
    close_reason     TEXT
);
