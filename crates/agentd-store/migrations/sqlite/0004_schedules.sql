-- agentd schema, step 5: schedules (a session template fired on a timetable) and the record
-- of each slot (fired, skipped and why), which the daily quota counts.

CREATE TABLE schedules (
    id                    TEXT PRIMARY KEY,
    project_id            TEXT NOT NULL REFERENCES projects(id),
    template              TEXT NOT NULL,
    webhook_format        TEXT NOT NULL,
    timetable             TEXT NOT NULL,
    end_at                BIGINT,
    max_sessions_per_day  BIGINT,
    status                TEXT NOT NULL,
    next_fire_at          BIGINT,
    fired                 BIGINT NOT NULL,
    skipped_missed        BIGINT NOT NULL,
    skipped_quota         BIGINT NOT NULL,
    last_fire_at          BIGINT,
    last_session_id       TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX schedules_due ON schedules (status, next_fire_at);
CREATE INDEX schedules_project ON schedules (project_id, created_at, id);

CREATE TABLE schedule_runs (
    schedule_id  TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    slot_at      BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    session_id   TEXT,
    reason       TEXT,
    at           BIGINT NOT NULL,
    PRIMARY KEY (schedule_id, slot_at)
);
