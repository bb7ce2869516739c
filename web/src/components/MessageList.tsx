/**
 * The scrolling message history. Scrolling near the top loads older pages while keeping
 * the reader's place; new messages keep the view pinned to the bottom if it was there.
 */
import { Fragment, useCallback, useLayoutEffect, useMemo, useRef } from "react";
import type { Conversation, ConversationId, Message, UserId } from "../protocol";
import type { OutgoingMessage } from "../store/state";
import { useChat, useChatStore } from "../store/hooks";
import { displayName, newestReadOfMine, userName } from "../store/selectors";
import { compareIds } from "../lib/ids";
import { dayKey, formatDay, formatFull, formatTime } from "../lib/time";
import { MessageText } from "./MessageText";

type Row =
  | { kind: "sent"; key: string; m: Message }
  | { kind: "outgoing"; key: string; m: OutgoingMessage };

const EMPTY: Message[] = [];

export function MessageList({ conversationId }: { conversationId: ConversationId }) {
  const store = useChatStore();
  const me = useChat((s) => s.me);
  const conv = useChat((s) => s.conversations.byId[conversationId]);
  const entry = useChat((s) => s.messages[conversationId]);
  const outbox = useChat((s) => s.outbox);
  const items = entry?.items ?? EMPTY;

  const rows = useMemo<Row[]>(() => {
    const sent: Row[] = items.map((m) => ({ kind: "sent", key: m.client_msg_id || m.id, m }));
    const pending: Row[] = Object.values(outbox)
      .filter((o) => o.conversation_id === conversationId)
      .sort((a, b) => (a.created_at < b.created_at ? -1 : 1))
      .map((m) => ({ kind: "outgoing", key: m.client_msg_id, m }));
    return [...sent, ...pending];
  }, [items, outbox, conversationId]);

  // The newest message of mine that someone has read, to put "Seen" under it.
  const meId = me.id;
  const lastSeenMine = useMemo(() => (conv ? newestReadOfMine(conv, items, meId) : null), [items, conv, meId]);

  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const prev = useRef<{ first?: string; last?: string; height: number }>({ height: 0 });

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const first = rows[0]?.key;
    const last = rows[rows.length - 1]?.key;
    const p = prev.current;
    const prepended = p.first !== undefined && first !== p.first && rows.some((r) => r.key === p.first);
    if (prepended && !pinned.current) {
      el.scrollTop += el.scrollHeight - p.height;
    } else if (last !== p.last) {
      const lastRow = rows[rows.length - 1];
      const mine = lastRow && (lastRow.kind === "outgoing" || lastRow.m.sender_id === me.id);
      if (pinned.current || mine) {
        el.scrollTop = el.scrollHeight;
        pinned.current = true;
      }
    }
    prev.current = { first, last, height: el.scrollHeight };
  }, [rows, me.id]);

  const maybeLoadOlder = useCallback(() => {
    const el = scroller.current;
    if (!el || !entry?.loaded || !entry.hasMore || entry.loadingOlder) return;
    if (el.scrollTop < 200) store.loadOlder(conversationId).catch(() => store.showNotice("Could not load older messages."));
  }, [entry, store, conversationId]);

  // A first page shorter than the screen cannot be scrolled: keep loading until it fills.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && entry?.loaded && entry.hasMore && !entry.loadingOlder && el.scrollHeight <= el.clientHeight + 10) maybeLoadOlder();
  }, [entry, maybeLoadOlder]);

  function onScroll() {
    const el = scroller.current;
    if (!el) return;
    pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    prev.current.height = el.scrollHeight;
    maybeLoadOlder();
  }

  if (!conv) return null;
  let lastDay = "";
  let lastSender = "";
  return (
    <div className="messages" ref={scroller} onScroll={onScroll} role="log" aria-label="Messages" aria-live="polite" tabIndex={0}>
      {entry?.loadingOlder && (
        <p className="history-status muted" role="status">
          Loading earlier messages…
        </p>
      )}
      {entry?.loaded && !entry.hasMore && items.length > 0 && <p className="history-status muted">This is the beginning of the conversation.</p>}
      {!entry?.loaded && rows.length === 0 && <p className="history-status muted">Loading…</p>}
      {entry?.loaded && rows.length === 0 && <p className="history-status muted">No messages yet. Say hello!</p>}
      <ol className="message-rows">
        {rows.map((row) => {
          const day = dayKey(row.m.created_at);
          const senderId = row.kind === "sent" ? row.m.sender_id : me.id;
          const newDay = day !== lastDay;
          const startsRun = newDay || senderId !== lastSender;
          lastDay = day;
          lastSender = senderId;
          return (
            <Fragment key={row.key}>
              {newDay && (
                <li className="day-separator" role="separator">
                  <span>{formatDay(row.m.created_at)}</span>
                </li>
              )}
              {row.kind === "sent" ? (
                <SentMessage
                  m={row.m}
                  conv={conv}
                  meId={me.id}
                  startsRun={startsRun}
                  seenBy={lastSeenMine?.id === row.m.id ? lastSeenMine.readers.map(displayName) : null}
                />
              ) : (
                <OutgoingRow m={row.m} startsRun={startsRun} />
              )}
            </Fragment>
          );
        })}
      </ol>
    </div>
  );
}

function SentMessage({
  m,
  conv,
  meId,
  startsRun,
  seenBy,
}: {
  m: Message;
  conv: Conversation;
  meId: UserId;
  startsRun: boolean;
  seenBy: string[] | null;
}) {
  const mine = m.sender_id === meId;
  const others = conv.members.filter((x) => x.user.id !== meId);
  const readByAll =
    mine && others.length > 0 && others.every((x) => x.last_read_id && compareIds(x.last_read_id, m.id) >= 0);
  return (
    <li className="message" data-mine={mine} data-starts-run={startsRun} data-message-id={m.id}>
      {!mine && conv.kind === "group" && startsRun && <span className="sender">{userName(conv, m.sender_id)}</span>}
      <div className="bubble">
        <span className="body">
          <MessageText text={m.body} />
        </span>
        <span className="meta">
          <time dateTime={m.created_at} title={formatFull(m.created_at)}>
            {formatTime(m.created_at)}
          </time>
          {mine && (
            <span className="status" data-status={readByAll ? "read" : "sent"} aria-label={readByAll ? "Read" : "Sent"}>
              {readByAll ? "✓✓" : "✓"}
            </span>
          )}
        </span>
      </div>
      {seenBy && (
        <span className="seen" data-testid="seen">
          {conv.kind === "direct" ? "Seen" : `Seen by ${seenBy.join(", ")}`}
        </span>
      )}
    </li>
  );
}

function OutgoingRow({ m, startsRun }: { m: OutgoingMessage; startsRun: boolean }) {
  const store = useChatStore();
  const failed = m.status === "failed";
  return (
    <li className="message" data-mine="true" data-starts-run={startsRun} data-status={m.status}>
      <div className="bubble">
        <span className="body">
          <MessageText text={m.body} />
        </span>
        <span className="meta">
          <time dateTime={m.created_at}>{formatTime(m.created_at)}</time>
          <span className="status" data-status={m.status} aria-label={failed ? "Failed" : "Sending"}>
            {failed ? "!" : <ClockIcon />}
          </span>
        </span>
      </div>
      {failed && (
        <span className="failed">
          {m.error || "Not sent"} ·{" "}
          <button type="button" className="link" onClick={() => store.retry(m.client_msg_id)}>
            Retry
          </button>{" "}
          ·{" "}
          <button type="button" className="link" onClick={() => store.discard(m.client_msg_id)}>
            Delete
          </button>
        </span>
      )}
    </li>
  );
}

function ClockIcon() {
  return (
    <svg viewBox="0 0 16 16" width="11" height="11" aria-hidden="true">
      <circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" strokeWidth="1.5" />
      <path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" strokeWidth="1.5" strokeLinecap="round" />
    </svg>
  );
}
