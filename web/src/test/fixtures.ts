/** The people, conversations and messages the unit tests talk about. */
import type { Conversation, ConversationId, Message, User } from "../protocol";
import { conversationId, messageId, userId } from "../lib/ids";

export const alice: User = { id: userId("1"), username: "alice", display_name: "Alice" };
export const bob: User = { id: userId("2"), username: "bob", display_name: "Bob" };
export const carol: User = { id: userId("3"), username: "carol", display_name: "Carol" };

/** Alice and Bob's direct conversation, the one most tests use. */
export const DIRECT_ID = conversationId("100");

let clientMsgSeq = 0;

/** A message with the given id, from Bob in the direct conversation unless told. */
export function msg(id: string, from: User = bob, conv: ConversationId = DIRECT_ID, body = `m${id}`): Message {
  clientMsgSeq += 1;
  return {
    id: messageId(id),
    conversation_id: conv,
    sender_id: from.id,
    body,
    client_msg_id: `00000000-0000-4000-8000-${String(clientMsgSeq).padStart(12, "0")}`,
    created_at: new Date(Date.UTC(2026, 0, 1, 12, 0, Number(id) % 60)).toISOString(),
    reply_to: null,
    mentions: [],
    edited_at: null,
    deleted: false,
    reactions: [],
  };
}

/** A direct conversation between Alice and Bob. */
export function direct(id: ConversationId = DIRECT_ID, last: Message | null = null, unread = 0): Conversation {
  return {
    id,
    kind: "direct",
    title: null,
    members: [
      { user: alice, last_read_id: null },
      { user: bob, last_read_id: null },
    ],
    last_message: last,
    unread_count: unread,
    unread_mentions: 0,
    created_at: "2026-01-01T00:00:00Z",
  };
}
