-- agentd schema, step 4: a session's last screenshots (base64 PNG, so the column is TEXT on
-- both databases; status views show the latest after the session ends) and when a user
-- released its resources (`cleanup_session`).

ALTER TABLE sessions ADD COLUMN cleaned_at BIGINT;

CREATE TABLE session_screenshots (
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    taken_at    BIGINT NOT NULL,
    png_base64  TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
