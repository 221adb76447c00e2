-- The orchestrator's schema: tasks with their append-only event log and per-attempt records, and
-- workflows (DAGs of steps, each step run as a task). The outbox and inbox tables come from
-- sutazai-messaging's migration in the same schema.

CREATE TABLE workflows (
    id                  UUID PRIMARY KEY,
    owner               TEXT NOT NULL,
    name                TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    failure_policy      TEXT NOT NULL CHECK (failure_policy IN ('stop', 'continue')),
    -- set when a planner task's output runs as a child of the planner's workflow
    parent_workflow_id  UUID REFERENCES workflows (id),
    idempotency_key     TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ
);

-- One workflow per owner and key; a concurrent duplicate submission waits on this index and then
-- finds the first one.
CREATE UNIQUE INDEX workflows_idempotency ON workflows (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE tasks (
    -- UUID v7, so ordering by id is ordering by creation
    id                UUID PRIMARY KEY,
    owner             TEXT NOT NULL,
    task_type         TEXT NOT NULL,
    status            TEXT NOT NULL
        CHECK (status IN ('queued', 'assigned', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    priority          SMALLINT NOT NULL CHECK (priority BETWEEN 0 AND 9),
    -- the attempt in progress or last made; 0 until the first assignment
    attempt           INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- attempts that ended with the agent's error: the retry budget and the backoff count these
    -- (the coordinator also moves `attempt` on when it re-assigns the task of a silent agent)
    failures          INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    assigned_agent    UUID,
    payload           JSONB NOT NULL,
    result            JSONB,
    error             TEXT,
    -- why a queued task is not running yet (from the coordinator); cleared on assignment
    queued_reason     TEXT,
    capabilities      TEXT[] NOT NULL,
    -- retries after the first attempt: max_retries = 3 allows 4 attempts
    max_retries       INTEGER NOT NULL CHECK (max_retries >= 0),
    timeout_s         INTEGER NOT NULL CHECK (timeout_s > 0),
    -- created_at + timeout_s; a task still not terminal then fails
    deadline          TIMESTAMPTZ NOT NULL,
    idempotency_key   TEXT,
    workflow_id       UUID REFERENCES workflows (id),
    step_id           TEXT,
    -- when a retrying task's next attempt is due
    next_attempt_at   TIMESTAMPTZ,
    -- sequence of the task's last event; bumped under the row lock, so sequences have no gaps
    last_sequence     BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);

CREATE UNIQUE INDEX tasks_idempotency ON tasks (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- listing newest first per owner (and for admins, over all owners by id)
CREATE INDEX tasks_owner ON tasks (owner, id DESC);
-- the retry scheduler's and the timeout sweeper's next wake-up, read often, so kept small
CREATE INDEX tasks_retry_due ON tasks (next_attempt_at) WHERE status = 'retrying';
CREATE INDEX tasks_active_deadline ON tasks (deadline)
    WHERE status IN ('queued', 'assigned', 'running', 'retrying');
CREATE INDEX tasks_workflow ON tasks (workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TABLE task_events (
    task_id          UUID NOT NULL REFERENCES tasks (id),
    sequence         BIGINT NOT NULL CHECK (sequence >= 1),
    status           TEXT NOT NULL,
    previous_status  TEXT,
    attempt          INTEGER NOT NULL,
    agent_id         UUID,
    detail           TEXT NOT NULL,
    occurred_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, sequence)
);

-- The log is append-only: a transition, once recorded, is history.
CREATE FUNCTION reject_task_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'task_events is append-only';
END
$$;

CREATE TRIGGER task_events_append_only BEFORE UPDATE OR DELETE ON task_events
    FOR EACH ROW EXECUTE FUNCTION reject_task_event_change();

-- The tasks someone follows live (WatchTaskEvents), one row per open stream on any replica.
-- Unlogged: after a crash the streams are gone too.
CREATE UNLOGGED TABLE watched_tasks (
    task_id    UUID NOT NULL,
    watcher    UUID NOT NULL,
    since      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, watcher)
);

-- Watchers of every replica learn of new events from this notification, sent when the
-- inserting transaction commits; the payload is the task id. Only followed tasks notify:
-- Postgres serializes the commits of all notifying transactions on one lock held through the
-- WAL flush, which capped the whole pipeline when every event notified.
CREATE FUNCTION notify_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM watched_tasks WHERE task_id = NEW.task_id) THEN
        PERFORM pg_notify('orchestrator_task_events', NEW.task_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_events_notify AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION notify_task_event();

-- One row per assignment: who ran which attempt, when, and how it ended. Prompts and outputs
-- (the agent's result) are kept per attempt as well as on the task.
CREATE TABLE attempts (
    task_id      UUID NOT NULL REFERENCES tasks (id),
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    agent_id     UUID NOT NULL,
    assigned_at  TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    outcome      TEXT CHECK (outcome IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'reassigned')),
    error        TEXT,
    result       JSONB,
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE workflow_steps (
    workflow_id   UUID NOT NULL REFERENCES workflows (id),
    step_id       TEXT NOT NULL,
    -- submission order
    position      INTEGER NOT NULL,
    task_type     TEXT NOT NULL,
    -- the step's own input; its task gets {"input": payload, "dependencies": {...}}
    payload       JSONB NOT NULL,
    depends_on    TEXT[] NOT NULL,
    priority      SMALLINT NOT NULL CHECK (priority BETWEEN 0 AND 9),
    capabilities  TEXT[] NOT NULL,
    max_retries   INTEGER NOT NULL CHECK (max_retries >= 0),
    timeout_s     INTEGER NOT NULL CHECK (timeout_s > 0),
    status        TEXT NOT NULL
        CHECK (status IN ('waiting', 'active', 'succeeded', 'failed', 'cancelled', 'skipped')),
    task_id       UUID REFERENCES tasks (id),
    error         TEXT,
    PRIMARY KEY (workflow_id, step_id)
);
