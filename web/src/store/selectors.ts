/** Derived views of ChatState, for the components and the effects layer. */
import type { Conversation, ConversationId, Message, MessageId, User, UserId } from "../protocol";
import { compareIds, maxId } from "../lib/ids";
import type { ChatState } from "./state";

export function displayName(u: User): string {
  return u.display_name || u.username;
}

export function otherMembers(c: Conversation, me: UserId): User[] {
  return c.members.filter((m) => m.user.id !== me).map((m) => m.user);
}

export function conversationTitle(c: Conversation, me: UserId): string {
  if (c.kind === "group") return c.title || otherMembers(c, me).map(displayName).join(", ") || "Group";
  const other = otherMembers(c, me)[0];
  return other ? displayName(other) : "Just you";
}

/** The peer of a direct conversation, for its presence dot. */
export function directPeer(c: Conversation, me: UserId): User | null {
  return c.kind === "direct" ? (otherMembers(c, me)[0] ?? null) : null;
}

/** Most recent activity first: the last message, or creation for empty conversations. */
export function sortConversations(list: Conversation[]): Conversation[] {
  return [...list].sort((a, b) => {
    const ka = a.last_message?.created_at ?? a.created_at;
    const kb = b.last_message?.created_at ?? b.created_at;
    if (ka !== kb) return ka < kb ? 1 : -1;
    return compareIds(b.id, a.id);
  });
}

/** Who (other than me) has read up to at least `messageId`. */
export function readersOf(c: Conversation, messageId: MessageId, me: UserId): User[] {
  return c.members
    .filter((m) => m.user.id !== me && m.last_read_id && compareIds(m.last_read_id, messageId) >= 0)
    .map((m) => m.user);
}

/** The newest of my messages someone has read, and who has. */
export function newestReadOfMine(
  c: Conversation,
  items: readonly Message[],
  me: UserId,
): { id: MessageId; readers: User[] } | null {
  for (let i = items.length - 1; i >= 0; i--) {
    const m = items[i];
    if (m.sender_id !== me) continue;
    const readers = readersOf(c, m.id, me);
    if (readers.length > 0) return { id: m.id, readers };
  }
  return null;
}

export function userName(c: Conversation, id: UserId): string {
  const m = c.members.find((x) => x.user.id === id);
  return m ? displayName(m.user) : "Someone";
}

/** Who is typing, from one conversation's typing entries (user → expiry). */
export function typingUserIds(typing: Partial<Record<UserId, number>> | undefined): UserId[] {
  // Object.keys widens keys to string; these keys were written as user ids.
  return Object.keys(typing ?? {}) as UserId[];
}

/**
 * The read receipt due for a conversation: up to its newest known message (loaded or
 * listed), unless my marker is there already. Null when nothing is news.
 */
export function readReceiptDue(state: ChatState, id: ConversationId): MessageId | null {
  const conv = state.conversations.byId[id];
  if (!conv) return null;
  const items = state.messages[id]?.items ?? [];
  const newest = maxId(items[items.length - 1]?.id, conv.last_message?.id);
  const mine = conv.members.find((m) => m.user.id === state.me.id);
  if (!newest || (mine?.last_read_id && compareIds(mine.last_read_id, newest) >= 0)) return null;
  return newest;
}
