/** Derived views of ChatState, for the components and the effects layer. */
import type { Conversation, ConversationId, Message, MessageId, User, UserId } from "../protocol";
import { compareIds, maxId } from "../lib/ids";
import { isAdmin } from "./roles";
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

/** The mention tokens of a conversation's members: username → user id. */
export function memberUsernames(c: Conversation): Map<string, UserId> {
  return new Map(c.members.map((m) => [m.user.username.toLowerCase(), m.user.id]));
}

/**
 * Whether I may delete a message: my own, or as a group admin. `admin` is read only if
 * the server sends it (it is being added to Member), so this compiles either way.
 */
export function canDelete(c: Conversation, m: Message, me: UserId): boolean {
  if (m.sender_id === me) return true;
  return c.kind === "group" && isAdmin(c, me);
}

/**
 * The browser notification a live message deserves, if any: one that mentions me, or
 * any in a direct conversation, while the page is hidden. Not for my own, and not for
 * a sync replay after a reconnect (old news, and possibly many at once).
 */
export function notificationFor(state: ChatState, m: Message): { title: string; body: string } | null {
  if (m.sender_id === state.me.id || state.view.visible || state.sync.replaying) return null;
  const conv = state.conversations.byId[m.conversation_id];
  if (!conv) return null;
  const mentionsMe = m.mentions.includes(state.me.id);
  if (!mentionsMe && conv.kind !== "direct") return null;
  const sender = userName(conv, m.sender_id);
  const title = conv.kind === "direct" ? sender : `${sender} in ${conversationTitle(conv, state.me.id)}`;
  return { title: mentionsMe && conv.kind !== "direct" ? `${title} mentioned you` : title, body: m.body };
}
