-- Conversation events (DESIGN.md §2): the log carries messages, edits, deletions and
-- reactions; history keeps each message's current state, the events `sync` replays,
-- reactions, mentions and the full-text index.

-- The log's rows become events: the record is the event as JSON (the same JSON as a
-- Kafka record); the columns beside it are what the log itself looks up.
CREATE TABLE conversation_log (
    log_offset      INTEGER PRIMARY KEY,
    id              INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    client_msg_id   TEXT NOT NULL,
    -- The message the event posts or changes.
    message_id      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    record          TEXT NOT NULL
);
INSERT INTO conversation_log
SELECT log_offset, id, conversation_id, sender_id, client_msg_id, id, created_at,
       json_object(
           'type', 'message',
           'id', CAST(id AS TEXT),
           'conversation_id', CAST(conversation_id AS TEXT),
           'sender_id', CAST(sender_id AS TEXT),
           'client_msg_id', client_msg_id,
           'body', body,
           'mentions', json('[]'),
           'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'))
FROM message_log;
DROP TABLE message_log;
CREATE INDEX conversation_log_by_user_key ON conversation_log (user_id, client_msg_id);
CREATE INDEX conversation_log_by_message ON conversation_log (message_id);

-- Each message as it is now: a deleted message keeps its row with an empty body.
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
-- The mentioned user ids as a JSON array of strings.
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
-- The id of the edit that gave the body, so an older edit replayed changes nothing.
ALTER TABLE messages ADD COLUMN edit_id INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;

-- Edits, deletions and reactions, for `sync`; the persister inserts each once by id.
-- A deletion drops the message's edits from here.
CREATE TABLE message_events (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    message_id      INTEGER NOT NULL,
    record          TEXT NOT NULL
);
CREATE INDEX message_events_by_conversation ON message_events (conversation_id, id);
CREATE INDEX message_events_by_message ON message_events (message_id);

-- Who reacts with what; `event_id` is the latest event applied, so an older one
-- replayed changes nothing.
CREATE TABLE reactions (
    message_id INTEGER NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    INTEGER NOT NULL,
    active     INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) WITHOUT ROWID;

-- Who each live message mentions, for `unread_mentions`.
CREATE TABLE mentions (
    user_id         INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    message_id      INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation_id, message_id)
) WITHOUT ROWID;
CREATE INDEX mentions_by_message ON mentions (message_id);

-- Full-text search over live bodies; the rowid is the message id. Contentless: the
-- index keeps no copy of the body (history has it, and marks matches itself), and
-- `contentless_delete` lets an edit or a deletion take its row out.
CREATE VIRTUAL TABLE message_search USING fts5 (
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO message_search (rowid, body) SELECT id, body FROM messages;
