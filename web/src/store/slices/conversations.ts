/**
 * The conversation list: who is in each conversation, its last message, its unread
 * count (and how many of those mention me) and everyone's read marker.
 *
 * Unread counts grow only for messages newer than the conversation's known last one,
 * so a sync replay of messages the list already counted adds nothing. A snapshot from
 * the server (the list, one conversation) never moves a conversation's last message
 * back: what the live stream delivered after the snapshot was taken stays.
 */
import type { Conversation, ConversationId, Message, MessageId, UserId } from "../../protocol";
import { compareIds } from "../../lib/ids";
import type { ChatEvent } from "../events";
import { applyChange } from "../messageChanges";
import { isOnScreen, type ConversationsState, type Viewer } from "../state";

export function conversationsReducer(
  state: ConversationsState,
  event: ChatEvent,
  viewer: Viewer,
): ConversationsState {
  switch (event.type) {
    case "conversations_listed": {
      const byId: Record<ConversationId, Conversation> = {};
      for (const c of event.conversations) byId[c.id] = keepNewerLocalLast(state.byId[c.id], c);
      return { byId, loaded: true };
    }
    case "conversation_received": {
      const c = event.conversation;
      return withConversation(state, keepNewerLocalLast(state.byId[c.id], c));
    }
    case "conversation_removed": {
      if (!state.byId[event.conversationId]) return state;
      const { [event.conversationId]: _removed, ...byId } = state.byId;
      return { ...state, byId };
    }
    case "message_received":
      return receiveMessage(state, event.message, viewer);
    case "read_receipt":
      return receiveReadReceipt(state, event.conversationId, event.userId, event.messageId, viewer.me);
    case "conversation_seen":
      return setUnreadCount(state, event.conversationId, 0);
    case "message_changed": {
      // The list previews the last message: an edit or deletion shows there too.
      const conv = state.byId[event.change.conversation_id];
      const last = conv?.last_message;
      if (!last) return state;
      const changed = applyChange(last, event.change, viewer.me);
      return changed === last ? state : withConversation(state, { ...conv, last_message: changed });
    }
    default:
      return state;
  }
}

function isNewer(m: Message, than: Message | null): boolean {
  return !than || compareIds(m.id, than.id) > 0;
}

/** The server's copy, except a last message (and its unread count) it had not seen yet. */
function keepNewerLocalLast(local: Conversation | undefined, server: Conversation): Conversation {
  const localLast = local?.last_message;
  if (!local || !localLast || !isNewer(localLast, server.last_message)) return server;
  return { ...server, last_message: localLast, unread_count: local.unread_count, unread_mentions: local.unread_mentions };
}

function withConversation(state: ConversationsState, c: Conversation): ConversationsState {
  if (state.byId[c.id] === c) return state;
  return { ...state, byId: { ...state.byId, [c.id]: c } };
}

function receiveMessage(state: ConversationsState, m: Message, viewer: Viewer): ConversationsState {
  const conv = state.byId[m.conversation_id];
  if (!conv) return state;
  if (isNewer(m, conv.last_message)) {
    // Writing in a conversation means having read it; otherwise count what is unseen.
    if (m.sender_id === viewer.me) {
      return withConversation(state, { ...conv, last_message: m, unread_count: 0, unread_mentions: 0 });
    }
    const unseen = isOnScreen(viewer, conv.id) ? 0 : 1;
    const mentionsMe = m.mentions.includes(viewer.me) ? unseen : 0;
    return withConversation(state, {
      ...conv,
      last_message: m,
      unread_count: conv.unread_count + unseen,
      unread_mentions: conv.unread_mentions + mentionsMe,
    });
  }
  // The server's copy of a message we showed from its ack replaces ours.
  if (conv.last_message?.id === m.id && conv.last_message !== m) {
    return withConversation(state, { ...conv, last_message: m });
  }
  return state;
}

function receiveReadReceipt(
  state: ConversationsState,
  id: ConversationId,
  reader: UserId,
  upTo: MessageId,
  me: UserId,
): ConversationsState {
  const conv = state.byId[id];
  if (!conv) return state;
  let changed = false;
  // A read marker only moves forward: an older receipt arriving late changes nothing.
  const members = conv.members.map((member) => {
    if (member.user.id !== reader) return member;
    if (member.last_read_id && compareIds(member.last_read_id, upTo) >= 0) return member;
    changed = true;
    return { ...member, last_read_id: upTo };
  });
  const next = changed ? withConversation(state, { ...conv, members }) : state;
  // My own receipt, from another tab or device: I have seen it all there.
  return reader === me ? setUnreadCount(next, id, 0) : next;
}

/** Sets the unread count; the mentions among them go when it drops to 0. */
function setUnreadCount(state: ConversationsState, id: ConversationId, unread_count: number): ConversationsState {
  const conv = state.byId[id];
  if (!conv) return state;
  const unread_mentions = unread_count === 0 ? 0 : conv.unread_mentions;
  if (conv.unread_count === unread_count && conv.unread_mentions === unread_mentions) return state;
  return withConversation(state, { ...conv, unread_count, unread_mentions });
}
