-- Nothing looks the log up by (user, client_msg_id) any more: idempotency keys live
-- in the SendKeys port, rebuilt at start from recent rows by time. The index only
-- cost every append a second b-tree insert.
DROP INDEX conversation_log_by_user_key;
