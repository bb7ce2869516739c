/**
 * The message history held per conversation. Messages arrive three ways — live, from
 * a `sync` replay after a reconnect, and from history pages — often overlapping, so
 * every merge dedupes by message id and keeps the list in id order (which is send
 * order within a conversation, DESIGN.md §3).
 */
import type { ConversationId, Message, MessageId } from "../../protocol";
import { compareIds } from "../../lib/ids";
import type { ChatEvent } from "../events";
import type { ConversationMessages } from "../state";

export type MessagesState = Record<ConversationId, ConversationMessages>;

/** A conversation nothing has been loaded for: its history is still to be fetched. */
export const NO_MESSAGES: ConversationMessages = { items: [], hasMore: true, loaded: false, loadingOlder: false };

export function messagesReducer(state: MessagesState, event: ChatEvent): MessagesState {
  switch (event.type) {
    case "message_received": {
      const id = event.message.conversation_id;
      const cur = state[id] ?? NO_MESSAGES;
      const items = mergeMessages(cur.items, [event.message]);
      return items === cur.items ? state : { ...state, [id]: { ...cur, items } };
    }
    case "history_loaded": {
      const cur = state[event.conversationId] ?? NO_MESSAGES;
      return {
        ...state,
        [event.conversationId]: {
          ...cur,
          items: mergeMessages(cur.items, event.page.messages),
          loaded: true,
          // Once loaded, whether older pages remain is the older pages' business.
          hasMore: cur.loaded ? cur.hasMore : event.page.has_more,
        },
      };
    }
    case "older_history_requested":
      return patch(state, event.conversationId, { loadingOlder: true });
    case "older_history_loaded": {
      const cur = state[event.conversationId];
      if (!cur) return state;
      return patch(state, event.conversationId, {
        items: mergeMessages(cur.items, event.page.messages),
        hasMore: event.page.has_more,
        loadingOlder: false,
      });
    }
    case "older_history_failed":
      return patch(state, event.conversationId, { loadingOlder: false });
    case "conversation_removed": {
      if (!state[event.conversationId]) return state;
      const { [event.conversationId]: _removed, ...rest } = state;
      return rest;
    }
    default:
      return state;
  }
}

/** Where the next older page starts; null when there is none to load now. */
export function olderPageCursor(entry: ConversationMessages | undefined): MessageId | null {
  if (!entry || !entry.loaded || !entry.hasMore || entry.loadingOlder) return null;
  return entry.items[0]?.id ?? null;
}

function patch(state: MessagesState, id: ConversationId, change: Partial<ConversationMessages>): MessagesState {
  const cur = state[id];
  return cur ? { ...state, [id]: { ...cur, ...change } } : state;
}

/** Merges `incoming` into the id-sorted `existing`; a repeated id takes the newer copy. */
export function mergeMessages(existing: readonly Message[], incoming: readonly Message[]): Message[] {
  if (incoming.length === 0) return existing as Message[];
  const byId = new Map<MessageId, Message>();
  for (const m of existing) byId.set(m.id, m);
  let changed = false;
  for (const m of incoming) {
    const prev = byId.get(m.id);
    if (prev && sameMessage(prev, m)) continue;
    byId.set(m.id, m);
    changed = true;
  }
  if (!changed) return existing as Message[];
  return [...byId.values()].sort((a, b) => compareIds(a.id, b.id));
}

function sameMessage(a: Message, b: Message): boolean {
  return a.body === b.body && a.created_at === b.created_at && a.sender_id === b.sender_id;
}
