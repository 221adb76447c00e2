-- The coordinator's schema: the durable copy of the dispatcher's state. The dispatcher keeps the
-- live view in memory and writes every change here (with the outbox rows announcing it) in one
-- transaction before it acknowledges the message that caused it; a restart rebuilds the live
-- view from these tables.

-- Every task the coordinator holds: pending while agent_id is NULL, assigned otherwise.
CREATE TABLE tasks (
    task_id         UUID PRIMARY KEY,
    task_type       TEXT        NOT NULL,
    priority        SMALLINT    NOT NULL CHECK (priority BETWEEN 0 AND 9),
    -- a JSON array of strings, sorted and without duplicates
    capabilities    JSONB       NOT NULL,
    owner           TEXT        NOT NULL,
    payload         JSONB       NOT NULL,
    deadline        TIMESTAMPTZ NOT NULL,
    -- FIFO order within a priority
    enqueued_at     TIMESTAMPTZ NOT NULL,
    -- the owner-fairness turn of the task within its priority (start-time fair queueing tag), kept
    -- so the pending order after a restart is the order before it
    fair_tag        BIGINT      NOT NULL CHECK (fair_tag >= 0),
    attempt         BIGINT      NOT NULL CHECK (attempt >= 1),
    agent_id        UUID,
    assigned_at     TIMESTAMPTZ,
    -- an assignment not started by then is re-assigned; NULL once started
    lease_deadline  TIMESTAMPTZ,
    started         BOOLEAN     NOT NULL DEFAULT false,
    -- the reason last published in a task.waiting.v1 ('' when none)
    waiting_reason  TEXT        NOT NULL DEFAULT '',
    -- why the next assignment is a re-assignment ('' for a first assignment)
    reassign_reason TEXT        NOT NULL DEFAULT '',
    -- the agent that lost the task; the next assignment prefers another one
    previous_agent  UUID
);

-- The highest attempt seen per task: a Ready for an attempt at or below it is stale. A cancelled
-- task keeps a tombstone (the largest attempt) until it expires.
CREATE TABLE task_attempts (
    task_id         UUID PRIMARY KEY,
    highest_attempt BIGINT      NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE agents (
    agent_id        UUID PRIMARY KEY,
    name            TEXT        NOT NULL,
    capabilities    JSONB       NOT NULL,
    slots           BIGINT      NOT NULL CHECK (slots >= 0),
    status          TEXT        NOT NULL CHECK (status IN ('online', 'offline', 'draining')),
    -- tasks running according to the last heartbeat
    running         BIGINT      NOT NULL DEFAULT 0,
    last_heartbeat  TIMESTAMPTZ NOT NULL,
    version         TEXT        NOT NULL,
    tasks_succeeded BIGINT      NOT NULL DEFAULT 0,
    tasks_failed    BIGINT      NOT NULL DEFAULT 0,
    registered_at   TIMESTAMPTZ NOT NULL
);

-- The strategy an admin set; without a row the configured default applies.
CREATE TABLE strategy (
    singleton            BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    kind                 TEXT        NOT NULL
        CHECK (kind IN ('capability_match', 'least_loaded', 'round_robin', 'priority')),
    owner_fairness       BOOLEAN     NOT NULL,
    max_active_per_owner BIGINT      NOT NULL CHECK (max_active_per_owner >= 0),
    assignment_lease_s   BIGINT      NOT NULL CHECK (assignment_lease_s >= 1),
    updated_by           TEXT        NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
