-- The embedded mode's whole state: directory, sessions, the durable message log and
-- the history the persister materializes from it. Times are Unix milliseconds.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    title      TEXT,
    -- "smaller:larger" user ids for direct conversations, so each pair has one.
    direct_key TEXT UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE members (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    last_read_id    INTEGER,
    joined_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_id, conversation_id);

CREATE TABLE refresh_families (
    id         TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    revoked_at INTEGER
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id),
    expires_at INTEGER NOT NULL,
    -- Set when the token was rotated; presenting it again is reuse.
    rotated_at INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- The message log: offsets are the rowid, so appends are ordered and consumers resume
-- from any offset.
CREATE TABLE message_log (
    log_offset      INTEGER PRIMARY KEY,
    id              INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    sender_id       INTEGER NOT NULL,
    client_msg_id   TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX message_log_by_sender_key ON message_log (sender_id, client_msg_id);

CREATE TABLE consumer_offsets (
    consumer    TEXT PRIMARY KEY,
    next_offset INTEGER NOT NULL
);

-- History, written by the persister idempotently by message id.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    sender_id       INTEGER NOT NULL,
    client_msg_id   TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
