-- The distributed mode's durable state in PostgreSQL: the directory (users,
-- conversations, members, read markers), refresh-token families, and the message
-- history the persister materializes from the log. The log itself lives in Kafka.
-- Ids are BIGINT (message ids are Snowflakes); times are Unix milliseconds, as in the
-- SQLite schema, so both adapters convert the same way.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
-- Case-insensitive prefix search (`lower(x) LIKE 'abc%'`) can use these.
CREATE INDEX users_username_prefix ON users (lower(username) text_pattern_ops);
CREATE INDEX users_display_name_prefix ON users (lower(display_name) text_pattern_ops);

CREATE TABLE conversations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title       TEXT,
    -- The two members of a direct conversation, smaller id first, so each pair has
    -- one conversation even when both sides create it at once. NULL for groups.
    direct_low  BIGINT,
    direct_high BIGINT,
    created_at  BIGINT NOT NULL,
    CHECK ((kind = 'direct') = (direct_low IS NOT NULL AND direct_high IS NOT NULL)),
    UNIQUE (direct_low, direct_high)
);

CREATE TABLE members (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    last_read_id    BIGINT,
    joined_at       BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, conversation_id);

CREATE TABLE refresh_families (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    revoked_at BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  BIGINT NOT NULL REFERENCES refresh_families (id),
    expires_at BIGINT NOT NULL,
    -- Set when the token was rotated; presenting it again is reuse.
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- History, written by the persister idempotently by message id (ON CONFLICT DO NOTHING).
CREATE TABLE messages (
    id              BIGINT PRIMARY KEY,
    conversation_id BIGINT NOT NULL,
    sender_id       BIGINT NOT NULL,
    client_msg_id   UUID NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
-- History pages and the activity query walk this index; sender_id is included so
-- unread counts (messages from others past a marker) are index-only scans.
CREATE INDEX messages_by_conversation ON messages (conversation_id, id) INCLUDE (sender_id);
