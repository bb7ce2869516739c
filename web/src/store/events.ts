/**
 * Everything that can happen to the chat state, as plain data: what the server said
 * (frames, HTTP answers), what the user did, and what a timer noticed. The effects
 * layer (chatStore.ts) turns each into an event and the reducers (reducer.ts) decide
 * what it means for their slice; nothing else changes the state.
 *
 * Times arrive inside events (`until`, `created_at`), so the reducers never read a
 * clock and stay pure.
 */
import type { Conversation, ConversationId, HistoryPage, Message, MessageId, UserId } from "../protocol";
import type { ConnectionStatus } from "../realtime/socket";
import type { MessageChange } from "./messageChanges";
import type { OutgoingChange, OutgoingMessage } from "./state";

export type ChatEvent =
  // ---- the connection ----
  | { type: "connection_changed"; status: ConnectionStatus }
  /** A `sync` was sent after `ready`; its replay runs until `synced`. */
  | { type: "sync_started" }
  | { type: "synced"; until: MessageId | null }

  // ---- conversations ----
  /** The full list from the server, a snapshot as of the request. */
  | { type: "conversations_listed"; conversations: Conversation[] }
  /** One conversation, new or changed: a frame, or the answer to fetching or creating it. */
  | { type: "conversation_received"; conversation: Conversation }
  | { type: "conversation_removed"; conversationId: ConversationId }

  // ---- messages ----
  /** From the live stream or a sync replay (`live`), or made from an ack (not live). */
  | { type: "message_received"; message: Message; live: boolean }
  | { type: "history_loaded"; conversationId: ConversationId; page: HistoryPage }
  | { type: "older_history_requested"; conversationId: ConversationId }
  | { type: "older_history_loaded"; conversationId: ConversationId; page: HistoryPage }
  | { type: "older_history_failed"; conversationId: ConversationId }
  /** The pages either side of one message (`older` ends with it), to open the conversation there. */
  | { type: "history_around_loaded"; conversationId: ConversationId; older: HistoryPage; newer: HistoryPage }
  | { type: "newer_history_requested"; conversationId: ConversationId }
  | { type: "newer_history_loaded"; conversationId: ConversationId; page: HistoryPage }
  | { type: "newer_history_failed"; conversationId: ConversationId }
  /** One message fetched by id, to quote it. */
  | { type: "message_fetched"; message: Message }
  | { type: "message_not_found"; conversationId: ConversationId; messageId: MessageId }
  /** An edit, deletion or reaction, from the live stream or a sync replay. */
  | { type: "message_changed"; change: MessageChange }

  // ---- my messages on their way ----
  | { type: "message_queued"; outgoing: OutgoingMessage }
  | { type: "send_acked"; clientMsgId: string; messageId: MessageId; conversationId: ConversationId }
  | { type: "send_failed"; clientMsgId: string; error: string }
  | { type: "send_retried"; clientMsgId: string }
  | { type: "outgoing_discarded"; clientMsgId: string }

  // ---- my changes to messages on their way ----
  | { type: "change_queued"; change: OutgoingChange }
  | { type: "change_acked"; clientMsgId: string }
  /** Refused, or never acknowledged: the change is dropped (the store says why). */
  | { type: "change_failed"; clientMsgId: string }

  // ---- people ----
  | { type: "presence_changed"; userId: UserId; online: boolean }
  | { type: "typing_started"; conversationId: ConversationId; userId: UserId; until: number }
  | { type: "typing_expired"; conversationId: ConversationId; userId: UserId; until: number }
  /** Someone (possibly me) has read the conversation up to `messageId`. */
  | { type: "read_receipt"; conversationId: ConversationId; userId: UserId; messageId: MessageId }

  // ---- the user ----
  | { type: "conversation_opened"; conversationId: ConversationId | null }
  /** Scroll to and highlight a message (null: the highlight is over). */
  | { type: "message_focused"; focus: { conversationId: ConversationId; messageId: MessageId } | null }
  /** The user has seen everything in the conversation: its unread count drops to 0. */
  | { type: "conversation_seen"; conversationId: ConversationId }
  | { type: "visibility_changed"; visible: boolean }
  | { type: "notice_shown"; notice: string | null };
