-- The arbitrator's schema: per-resource policies and the lease journal. Redis holds the live view
-- (what is allocated right now); these tables are the durable record it is restored from and the
-- audit trail of every grant and how it ended.

CREATE TABLE policies (
    -- `cpu`, `memory`, `gpu`, `llm_slots:<provider>/<model>` or `custom:<name>`
    resource                TEXT PRIMARY KEY,
    max_allocation_percent  DOUBLE PRECISION NOT NULL
        CHECK (max_allocation_percent > 0 AND max_allocation_percent <= 100),
    max_per_holder_percent  DOUBLE PRECISION NOT NULL
        CHECK (max_per_holder_percent > 0 AND max_per_holder_percent <= 100),
    oversubscription_ratio  DOUBLE PRECISION NOT NULL CHECK (oversubscription_ratio >= 1),
    preemption_enabled      BOOLEAN NOT NULL,
    updated_by              TEXT NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE leases (
    id            UUID PRIMARY KEY,
    resource      TEXT NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount > 0),
    holder        TEXT NOT NULL,
    priority      SMALLINT NOT NULL CHECK (priority BETWEEN 0 AND 9),
    ttl_s         INTEGER NOT NULL CHECK (ttl_s > 0),
    status        TEXT NOT NULL CHECK (status IN ('active', 'released', 'expired', 'preempted')),
    -- acquired_at and expires_at come from the Redis clock that decided the grant
    acquired_at   TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    -- the lease whose request revoked this one
    preempted_by  UUID
);

-- The sweeper and the restore on start read only live rows.
CREATE INDEX leases_active_expiry ON leases (expires_at) WHERE status = 'active';
CREATE INDEX leases_holder ON leases (holder, acquired_at DESC);
