-- The auth service's schema: users, login failures, refresh-token families, signing keys,
-- service accounts and API keys (the audit log is the kit's). Secrets are stored only as hashes; private keys and
-- TOTP secrets only encrypted with the configured master key.

CREATE TABLE users (
    id              UUID PRIMARY KEY,
    username        TEXT NOT NULL,
    email           TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    roles           TEXT[] NOT NULL DEFAULT ARRAY['user'],
    scopes          TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    -- raised by a password change, logout-all or deactivation: every earlier token dies
    token_version   BIGINT NOT NULL DEFAULT 0,
    locked_until    TIMESTAMPTZ,
    mfa_enabled     BOOLEAN NOT NULL DEFAULT FALSE,
    totp_secret_enc BYTEA,
    -- the last TOTP time step accepted, so a code is usable once
    totp_last_step  BIGINT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username ON users (lower(username));
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE login_failures (
    user_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_recent ON login_failures (user_id, failed_at);

CREATE TABLE refresh_families (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at    TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    family_id   UUID NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    parent_hash BYTEA,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    algorithm       TEXT NOT NULL CHECK (algorithm IN ('EdDSA', 'RS256')),
    private_key_enc BYTEA NOT NULL,
    public_jwk      JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- the newest non-retired key signs; retired keys stay in the JWKS until their tokens expire
    retired_at      TIMESTAMPTZ
);

CREATE TABLE service_accounts (
    client_id   TEXT PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    scopes      TEXT[] NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     BYTEA NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    scopes       TEXT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- The audit log comes from sutazai-kit's migration (sutazai_kit::audit::migrator).
