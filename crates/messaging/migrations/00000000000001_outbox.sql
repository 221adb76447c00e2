-- Transactional outbox and consumer inbox, created in the schema of the service that uses them.
-- Version 1 is reserved for sutazai-messaging; services number their own migrations by timestamp.

CREATE TABLE IF NOT EXISTS outbox (
    id          BIGSERIAL PRIMARY KEY,
    message_id  UUID        NOT NULL UNIQUE,
    exchange    TEXT        NOT NULL,
    routing_key TEXT        NOT NULL,
    payload     JSONB       NOT NULL,
    -- string headers captured at enqueue time, e.g. the traceparent of the request that wrote the row
    headers     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    priority    SMALLINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ,
    -- a row the broker refused (unroutable, nacked) is retried, then parked for an operator
    attempts    INT NOT NULL DEFAULT 0,
    last_error  TEXT,
    parked_at   TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL AND parked_at IS NULL;

CREATE TABLE IF NOT EXISTS inbox (
    consumer     TEXT        NOT NULL,
    message_id   TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
