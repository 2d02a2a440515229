-- agentd schema, step 5: webhooks. An endpoint is a project's URL with its signing secret;
-- a subscription ties a session's event log to an endpoint, with a cursor (the last seq turned
-- into deliveries), so events are queued durably and exactly once; a delivery is one signed
-- POST and its attempts.

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    disabled_at     BIGINT,
    disabled_reason TEXT,
    UNIQUE (project_id, url)
);

CREATE TABLE webhook_subscriptions (
    session_id   TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    format       TEXT NOT NULL,
    context      TEXT NOT NULL,
    cursor_seq   BIGINT NOT NULL,
    finished     BIGINT NOT NULL
);
CREATE INDEX webhook_subscriptions_open ON webhook_subscriptions (finished);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    session_id       TEXT,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    round_attempts   BIGINT NOT NULL,
    next_attempt_at  BIGINT,
    last_attempt_at  BIGINT,
    response_status  BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_project ON webhook_deliveries (project_id, created_at, id);
