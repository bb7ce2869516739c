/**
 * The message history held per conversation. Messages arrive three ways — live, from
 * a `sync` replay after a reconnect, and from history pages — often overlapping, so
 * every merge dedupes by message id and keeps the list in id order (which is send
 * order within a conversation, DESIGN.md §3).
 *
 * Changes to messages (edits, deletions, reactions) apply to the copy held; one for a
 * message not held yet waits in the conversation's `held` list until the message
 * loads (messageChanges.ts has the rules).
 *
 * Usually `items` run from some point up to the present. Opening a conversation at an
 * old message replaces them with a window ending at it (`history_around_loaded`), and
 * `newerCursor` marks the gap above. History pages are always the newest messages of
 * their range (`after < id < before`, newest first), so the gap fills from the top
 * down: each newer page asks for the range between the window and the oldest message
 * held above the gap, and the window shows them once the gap has closed.
 */
import type { ConversationId, HistoryPage, Message, MessageId, UserId } from "../../protocol";
import { compareIds } from "../../lib/ids";
import type { ChatEvent } from "../events";
import { applyChange, applyHeld, holdChange, reconcileMessage, sameMessage, type MessageChange } from "../messageChanges";
import type { ConversationMessages, Viewer } from "../state";

export type MessagesState = Record<ConversationId, ConversationMessages>;

/** A conversation nothing has been loaded for: its history is still to be fetched. */
export const NO_MESSAGES: ConversationMessages = {
  items: [],
  hasMore: true,
  loaded: false,
  loadingOlder: false,
  newerCursor: null,
  loadingNewer: false,
  held: [],
  quoted: {},
};

export function messagesReducer(state: MessagesState, event: ChatEvent, viewer: Viewer): MessagesState {
  const me = viewer.me;
  switch (event.type) {
    case "message_received": {
      const id = event.message.conversation_id;
      const cur = state[id] ?? NO_MESSAGES;
      const next = withIncoming(cur, [event.message], me);
      return next === cur ? state : { ...state, [id]: next };
    }
    case "history_loaded": {
      const cur = state[event.conversationId] ?? NO_MESSAGES;
      // Back to the present from a window around an old message: the window goes.
      const base = cur.newerCursor ? { ...cur, items: [], newerCursor: null, loadingNewer: false } : cur;
      return {
        ...state,
        [event.conversationId]: {
          ...withIncoming(base, event.page.messages, me),
          loaded: true,
          // Once loaded, whether older pages remain is the older pages' business.
          hasMore: cur.loaded && !cur.newerCursor ? cur.hasMore : event.page.has_more,
        },
      };
    }
    case "older_history_requested":
      return patch(state, event.conversationId, { loadingOlder: true });
    case "older_history_loaded": {
      const cur = state[event.conversationId];
      if (!cur) return state;
      return {
        ...state,
        [event.conversationId]: { ...withIncoming(cur, event.page.messages, me), hasMore: event.page.has_more, loadingOlder: false },
      };
    }
    case "older_history_failed":
      return patch(state, event.conversationId, { loadingOlder: false });
    case "history_around_loaded":
      return { ...state, [event.conversationId]: aroundWindow(state[event.conversationId] ?? NO_MESSAGES, event, me) };
    case "newer_history_requested":
      return patch(state, event.conversationId, { loadingNewer: true });
    case "newer_history_loaded": {
      const cur = state[event.conversationId];
      if (!cur) return state;
      const next = withIncoming(cur, event.page.messages, me);
      // The page was the top of the gap: the gap is closed when nothing remains below it.
      return {
        ...state,
        [event.conversationId]: { ...next, newerCursor: event.page.has_more ? cur.newerCursor : null, loadingNewer: false },
      };
    }
    case "newer_history_failed":
      return patch(state, event.conversationId, { loadingNewer: false });
    case "message_fetched": {
      const m = event.message;
      const cur = state[m.conversation_id] ?? NO_MESSAGES;
      // Held changes apply to the quote too, and stay held for when the message loads in full.
      const quote = applyHeld([m], cur.held, me).messages[0];
      return { ...state, [m.conversation_id]: { ...cur, quoted: { ...cur.quoted, [m.id]: quote } } };
    }
    case "message_not_found": {
      const cur = state[event.conversationId] ?? NO_MESSAGES;
      return { ...state, [event.conversationId]: { ...cur, quoted: { ...cur.quoted, [event.messageId]: null } } };
    }
    case "message_changed": {
      const id = event.change.conversation_id;
      const cur = state[id] ?? NO_MESSAGES;
      const next = withChange(cur, event.change, me);
      return next === cur ? state : { ...state, [id]: next };
    }
    case "conversation_removed": {
      if (!state[event.conversationId]) return state;
      const { [event.conversationId]: _removed, ...rest } = state;
      return rest;
    }
    default:
      return state;
  }
}

/** Merges messages into the conversation, applying any changes held for them. */
function withIncoming(cur: ConversationMessages, incoming: readonly Message[], me: UserId): ConversationMessages {
  const { messages, held } = applyHeld(incoming, cur.held, me);
  const items = mergeMessages(cur.items, messages);
  if (items === cur.items && held === cur.held) return cur;
  return { ...cur, items, held };
}

/** A change applied to the message held, or held until the message loads. */
function withChange(cur: ConversationMessages, change: MessageChange, me: UserId): ConversationMessages {
  const quotedCopy = cur.quoted[change.message_id];
  const quoted = quotedCopy ? { ...cur.quoted, [change.message_id]: applyChange(quotedCopy, change, me) } : cur.quoted;
  const i = cur.items.findIndex((m) => m.id === change.message_id);
  if (i < 0) {
    const held = holdChange(cur.held, change);
    return held === cur.held && quoted === cur.quoted ? cur : { ...cur, held, quoted };
  }
  const changed = applyChange(cur.items[i], change, me);
  if (changed === cur.items[i] && quoted === cur.quoted) return cur;
  const items = changed === cur.items[i] ? cur.items : cur.items.map((m, j) => (j === i ? changed : m));
  return { ...cur, items, quoted };
}

/**
 * The window around a message: the page ending at it, and the newest messages after
 * it. When those are all there are, the window reaches the present; otherwise they
 * sit above a gap, and the window ends at the message. Messages held above the window
 * (live ones) stay; older ones go.
 */
function aroundWindow(
  cur: ConversationMessages,
  event: { older: HistoryPage; newer: HistoryPage },
  me: UserId,
): ConversationMessages {
  const windowTop = newestOf(event.older.messages);
  const keep = windowTop ? cur.items.filter((m) => compareIds(m.id, windowTop) > 0) : [];
  const next = withIncoming({ ...cur, items: keep }, [...event.older.messages, ...event.newer.messages], me);
  return {
    ...next,
    loaded: true,
    hasMore: event.older.has_more,
    loadingOlder: false,
    newerCursor: event.newer.has_more ? windowTop : null,
    loadingNewer: false,
  };
}

function newestOf(messages: readonly Message[]): MessageId | null {
  let newest: MessageId | null = null;
  for (const m of messages) if (!newest || compareIds(m.id, newest) > 0) newest = m.id;
  return newest;
}

/** Where the next older page starts; null when there is none to load now. */
export function olderPageCursor(entry: ConversationMessages | undefined): MessageId | null {
  if (!entry || !entry.loaded || !entry.hasMore || entry.loadingOlder) return null;
  return entry.items[0]?.id ?? null;
}

/**
 * The range of the next page into the gap above a window (after a jump into the past):
 * after the window, before the oldest message held above it. Null when there is none
 * to load now.
 */
export function newerPageRange(entry: ConversationMessages | undefined): { after: MessageId; before?: MessageId } | null {
  if (!entry || entry.loadingNewer || !entry.newerCursor) return null;
  const after = entry.newerCursor;
  const above = entry.items.find((m) => compareIds(m.id, after) > 0);
  return above ? { after, before: above.id } : { after };
}

/** The messages to show: those up to the gap, if the window does not reach the present. */
export function shownMessages(entry: ConversationMessages | undefined): Message[] {
  if (!entry) return [];
  const cursor = entry.newerCursor;
  return cursor ? entry.items.filter((m) => compareIds(m.id, cursor) <= 0) : entry.items;
}

/**
 * A message of the conversation, held in the history or fetched to quote it; null if
 * the server does not have it, undefined if not known yet.
 */
export function findMessage(entry: ConversationMessages | undefined, id: MessageId): Message | null | undefined {
  return entry?.items.find((m) => m.id === id) ?? entry?.quoted[id];
}

function patch(state: MessagesState, id: ConversationId, change: Partial<ConversationMessages>): MessagesState {
  const cur = state[id];
  return cur ? { ...state, [id]: { ...cur, ...change } } : state;
}

/**
 * Merges `incoming` into the id-sorted `existing`; a repeated id takes the newer copy
 * (reconciled: it never undoes a deletion or a later edit the held copy has seen).
 */
export function mergeMessages(existing: readonly Message[], incoming: readonly Message[]): Message[] {
  if (incoming.length === 0) return existing as Message[];
  const byId = new Map<MessageId, Message>();
  for (const m of existing) byId.set(m.id, m);
  let changed = false;
  for (const m of incoming) {
    const prev = byId.get(m.id);
    const next = prev ? reconcileMessage(prev, m) : m;
    if (prev && sameMessage(prev, next)) continue;
    byId.set(m.id, next);
    changed = true;
  }
  if (!changed) return existing as Message[];
  return [...byId.values()].sort((a, b) => compareIds(a.id, b.id));
}
