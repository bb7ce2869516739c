/**
 * The scrolling message history. Scrolling near the top loads older pages while keeping
 * the reader's place; new messages keep the view pinned to the bottom if it was there.
 * A focused message (a search result, a reply's original) is scrolled to and
 * highlighted; after a jump into the past, scrolling down loads the newer pages.
 */
import { Fragment, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import type { Conversation, ConversationId, Message, MessageId } from "../protocol";
import type { OutgoingMessage } from "../store/state";
import { useChat, useChatStore } from "../store/hooks";
import { displayName, memberUsernames, newestReadOfMine, userName } from "../store/selectors";
import { withMyChanges } from "../store/slices/changes";
import { shownMessages } from "../store/slices/messages";
import { compareIds } from "../lib/ids";
import { dayKey, formatDay, formatTime } from "../lib/time";
import { MessageItem } from "./MessageItem";
import { MessageText } from "./MessageText";

type Row =
  | { kind: "sent"; key: string; m: Message }
  | { kind: "outgoing"; key: string; m: OutgoingMessage };

/** How long a focused message stays highlighted. */
const HIGHLIGHT_MS = 2500;

export function MessageList({ conversationId, onReply }: { conversationId: ConversationId; onReply: (m: Message) => void }) {
  const store = useChatStore();
  const me = useChat((s) => s.me);
  const conv = useChat((s) => s.conversations.byId[conversationId]);
  const entry = useChat((s) => s.messages[conversationId]);
  const outbox = useChat((s) => s.outbox);
  const changes = useChat((s) => s.changes);
  const focus = useChat((s) => s.view.focus);
  const [editingId, setEditingId] = useState<MessageId | null>(null);
  const meId = me.id;

  // What is shown: up to the gap after a jump, with my changes on their way applied.
  const items = useMemo(() => {
    const pending = Object.values(changes).filter((c) => c.conversation_id === conversationId);
    return shownMessages(entry).map((m) => withMyChanges(m, pending, meId));
  }, [entry, changes, conversationId, meId]);

  const rows = useMemo<Row[]>(() => {
    const sent: Row[] = items.map((m) => ({ kind: "sent", key: m.client_msg_id || m.id, m }));
    // Sends wait at the bottom, unless the view has not reached the present.
    const pending: Row[] = entry?.newerCursor
      ? []
      : Object.values(outbox)
          .filter((o) => o.conversation_id === conversationId)
          .sort((a, b) => (a.created_at < b.created_at ? -1 : 1))
          .map((m) => ({ kind: "outgoing", key: m.client_msg_id, m }));
    return [...sent, ...pending];
  }, [items, outbox, conversationId, entry?.newerCursor]);

  // The newest message of mine that someone has read, to put "Seen" under it.
  const lastSeenMine = useMemo(() => (conv ? newestReadOfMine(conv, items, meId) : null), [items, conv, meId]);
  const usernames = useMemo(() => (conv ? memberUsernames(conv) : new Map()), [conv]);

  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const prev = useRef<{ first?: string; last?: string; height: number }>({ height: 0 });
  const focusedId = focus?.conversationId === conversationId ? focus.messageId : null;
  const focusShown = focusedId !== null && items.some((m) => m.id === focusedId);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const first = rows[0]?.key;
    const last = rows[rows.length - 1]?.key;
    const p = prev.current;
    const prepended = p.first !== undefined && first !== p.first && rows.some((r) => r.key === p.first);
    if (focusShown) {
      pinned.current = false;
    } else if (prepended && !pinned.current) {
      el.scrollTop += el.scrollHeight - p.height;
    } else if (last !== p.last) {
      const lastRow = rows[rows.length - 1];
      const mine = lastRow && (lastRow.kind === "outgoing" || lastRow.m.sender_id === meId);
      if (pinned.current || mine) {
        el.scrollTop = el.scrollHeight;
        pinned.current = true;
      }
    }
    prev.current = { first, last, height: el.scrollHeight };
  }, [rows, meId, focusShown]);

  // Scroll the focused message into the middle, then let its highlight fade.
  useEffect(() => {
    if (!focusShown || !focusedId) return;
    const el = scroller.current?.querySelector<HTMLElement>(`[data-message-id="${focusedId}"]`);
    el?.scrollIntoView?.({ block: "center" });
    el?.focus({ preventScroll: true });
    const t = setTimeout(() => store.clearFocus(), HIGHLIGHT_MS);
    return () => clearTimeout(t);
  }, [focusShown, focusedId, store]);

  const maybeLoad = useCallback(() => {
    const el = scroller.current;
    if (!el || !entry?.loaded) return;
    if (entry.hasMore && !entry.loadingOlder && el.scrollTop < 200) {
      store.loadOlder(conversationId).catch(() => store.showNotice("Could not load older messages."));
    }
    const nearBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 200;
    if (entry.newerCursor && !entry.loadingNewer && nearBottom) {
      store.loadNewer(conversationId).catch(() => store.showNotice("Could not load newer messages."));
    }
  }, [entry, store, conversationId]);

  // A first page shorter than the screen cannot be scrolled: keep loading until it fills.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && entry?.loaded && !focusShown && el.scrollHeight <= el.clientHeight + 10) maybeLoad();
  }, [entry, maybeLoad, focusShown]);

  function onScroll() {
    const el = scroller.current;
    if (!el) return;
    pinned.current = !entry?.newerCursor && el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    prev.current.height = el.scrollHeight;
    maybeLoad();
  }

  if (!conv) return null;
  let lastDay = "";
  let lastSender = "";
  const others = conv.members.filter((x) => x.user.id !== meId);
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
          const senderId = row.kind === "sent" ? row.m.sender_id : meId;
          const newDay = day !== lastDay;
          const startsRun = newDay || senderId !== lastSender;
          lastDay = day;
          lastSender = senderId;
          const m = row.m;
          return (
            <Fragment key={row.key}>
              {newDay && (
                <li className="day-separator" role="separator">
                  <span>{formatDay(m.created_at)}</span>
                </li>
              )}
              {row.kind === "sent" ? (
                <MessageItem
                  m={row.m}
                  conv={conv}
                  meId={meId}
                  startsRun={startsRun}
                  readByAll={
                    row.m.sender_id === meId &&
                    others.length > 0 &&
                    others.every((x) => x.last_read_id && compareIds(x.last_read_id, row.m.id) >= 0)
                  }
                  seenBy={lastSeenMine?.id === row.m.id ? lastSeenMine.readers.map(displayName) : null}
                  highlighted={focusedId === row.m.id}
                  editing={editingId === row.m.id}
                  usernames={usernames}
                  onEdit={setEditingId}
                  onReply={onReply}
                />
              ) : (
                <OutgoingRow
                  m={row.m}
                  startsRun={startsRun}
                  quoteOf={row.m.reply_to ? (items.find((x) => x.id === row.m.reply_to) ?? null) : null} conv={conv} />
              )}
            </Fragment>
          );
        })}
      </ol>
      {entry?.newerCursor && (
        <p className="history-status">
          {/* Kept while newer pages load, so it does not move under a pointer. */}
          {entry.loadingNewer && (
            <span className="muted" role="status">
              Loading newer messages…{" "}
            </span>
          )}
          <button type="button" className="ghost" onClick={() => void store.loadLatest(conversationId).catch(() => undefined)}>
            Jump to the latest messages
          </button>
        </p>
      )}
    </div>
  );
}

function OutgoingRow({
  m,
  startsRun,
  quoteOf,
  conv,
}: {
  m: OutgoingMessage;
  startsRun: boolean;
  /** The message it replies to, if shown. */
  quoteOf: Message | null;
  conv: Conversation;
}) {
  const store = useChatStore();
  const failed = m.status === "failed";
  return (
    <li className="message" data-mine="true" data-starts-run={startsRun} data-status={m.status}>
      <div className="bubble">
        {m.reply_to && (
          <span className="reply-quote">
            {quoteOf && <strong>{userName(conv, quoteOf.sender_id)}</strong>}
            <span className="quote-text">{quoteOf ? (quoteOf.deleted ? "original deleted" : quoteOf.body.split("\n")[0]) : "…"}</span>
          </span>
        )}
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
