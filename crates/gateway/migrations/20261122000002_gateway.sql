-- The gateway's schema: chat conversations per user.

CREATE TABLE conversations (
    id         UUID PRIMARY KEY,
    owner      TEXT NOT NULL,
    title      TEXT NOT NULL,
    model      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX conversations_owner ON conversations (owner, updated_at DESC);

CREATE TABLE conversation_messages (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX conversation_messages_conversation ON conversation_messages (conversation_id, id);

-- The audit log of admin actions comes from sutazai-kit's migration (sutazai_kit::audit::migrator).
