-- The audit log, created in the schema of each service that records audit events.
-- Version 2 is reserved for sutazai-kit (1 is sutazai-messaging's outbox); services number their own
-- migrations by timestamp.

CREATE TABLE IF NOT EXISTS audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor   TEXT,
    action  TEXT NOT NULL,
    target  TEXT,
    ip      TEXT,
    outcome TEXT NOT NULL,
    detail  JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at DESC);
