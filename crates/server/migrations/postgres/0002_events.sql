-- Conversation events (DESIGN.md §2): history keeps each message's current state, the
-- events `sync` replays, reactions, mentions and the full-text index. The log itself
-- is in Kafka.

ALTER TABLE messages ADD COLUMN reply_to BIGINT;
ALTER TABLE messages ADD COLUMN mentions BIGINT[] NOT NULL DEFAULT '{}';
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
-- The id of the edit that gave the body, so an older edit replayed changes nothing.
ALTER TABLE messages ADD COLUMN edit_id BIGINT;
ALTER TABLE messages ADD COLUMN deleted_at BIGINT;
-- Full-text search with the language-neutral `simple` configuration (no stemming, no
-- stop words), so text in any language is found by its words.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
CREATE INDEX messages_search ON messages USING GIN (search);

-- Edits, deletions and reactions, for `sync`; the persister inserts each once by id.
-- A deletion drops the message's edits from here.
CREATE TABLE message_events (
    id              BIGINT PRIMARY KEY,
    conversation_id BIGINT NOT NULL,
    message_id      BIGINT NOT NULL,
    record          TEXT NOT NULL
);
CREATE INDEX message_events_by_conversation ON message_events (conversation_id, id);
CREATE INDEX message_events_by_message ON message_events (message_id);

-- Who reacts with what; `event_id` is the latest event applied, so an older one
-- replayed changes nothing.
CREATE TABLE reactions (
    message_id BIGINT NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    BIGINT NOT NULL,
    active     BOOLEAN NOT NULL,
    event_id   BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- Who each live message mentions, for `unread_mentions`.
CREATE TABLE mentions (
    user_id         BIGINT NOT NULL,
    conversation_id BIGINT NOT NULL,
    message_id      BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id, message_id)
);
CREATE INDEX mentions_by_message ON mentions (message_id);
