-- The search consumer (group `search`) keeps `message_search` apart from history.
-- Beside the contentless FTS5 table, which cannot say what it holds, each message
-- the index has seen keeps the event that gave its indexed body and whether it is
-- deleted, so a replayed or older event changes nothing and a deleted body never
-- comes back.
CREATE TABLE message_search_state (
    message_id INTEGER PRIMARY KEY,
    event_id   INTEGER NOT NULL,
    removed    INTEGER NOT NULL
);
INSERT INTO message_search_state (message_id, event_id, removed)
    SELECT id, COALESCE(edit_id, id), deleted_at IS NOT NULL FROM messages;
