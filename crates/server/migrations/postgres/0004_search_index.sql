-- The full-text index leaves the message row for a table of its own, kept by the
-- search consumer (group `search`) in large batches, so storing history never waits
-- on index maintenance. Same language-neutral `simple` configuration (no stemming, no
-- stop words), so text in any language is found by its words. Each row keeps the
-- event that gave its indexed body; a deleted message keeps its row with no vector,
-- so a replayed or older event changes nothing and a deleted body never comes back.
CREATE TABLE message_search (
    message_id      BIGINT PRIMARY KEY,
    conversation_id BIGINT NOT NULL,
    event_id        BIGINT NOT NULL,
    search          tsvector
);
INSERT INTO message_search (message_id, conversation_id, event_id, search)
    SELECT id, conversation_id, COALESCE(edit_id, id),
           CASE WHEN deleted_at IS NULL THEN to_tsvector('simple', body) END
    FROM messages;
CREATE INDEX message_search_words ON message_search USING GIN (search);
DROP INDEX messages_search;
ALTER TABLE messages DROP COLUMN search;
