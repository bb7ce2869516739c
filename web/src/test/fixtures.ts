/** The people, conversations and messages the unit tests talk about. */
import type { Conversation, ConversationId, Message, User } from "../protocol";
import { conversationId, messageId, userId } from "../lib/ids";
import type { MessageChange } from "../store/messageChanges";

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
      { user: alice, role: "member", last_read_id: null },
      { user: bob, role: "member", last_read_id: null },
    ],
    last_message: last,
    unread_count: unread,
    unread_mentions: 0,
    created_at: "2026-01-01T00:00:00Z",
  };
}

/** The group the role tests use. */
export const GROUP_ID = conversationId("500");

/** A group of Alice, Bob and Carol in joining order; `admins` administer it (Alice by default). */
export function group(admins: User[] = [alice], members: User[] = [alice, bob, carol]): Conversation {
  return {
    id: GROUP_ID,
    kind: "group",
    title: "Trip",
    members: members.map((user) => ({
      user,
      role: admins.includes(user) ? "admin" : "member",
      last_read_id: null,
    })),
    last_message: null,
    unread_count: 0,
    unread_mentions: 0,
    created_at: "2026-01-01T00:00:00Z",
  };
}

/** Changes to message `messageId` in the direct conversation, with event id `id`. */
export const change = {
  edited(id: string, messageId_: string, body: string, at: string, by: User = bob): MessageChange {
    return { type: "edited", ...eventBase(id, messageId_, by), body, mentions: [], at };
  },
  deleted(id: string, messageId_: string, by: User = bob): MessageChange {
    return { type: "deleted", ...eventBase(id, messageId_, by), at: "2026-01-01T13:00:00Z" };
  },
  reaction(id: string, messageId_: string, emoji: string, on: boolean, by: User = bob): MessageChange {
    return { type: "reaction", ...eventBase(id, messageId_, by), emoji, on, at: "2026-01-01T13:00:00Z" };
  },
};

function eventBase(id: string, messageId_: string, by: User) {
  return {
    id: messageId(id),
    conversation_id: DIRECT_ID,
    message_id: messageId(messageId_),
    user_id: by.id,
    client_msg_id: `change-${id}`,
  };
}
