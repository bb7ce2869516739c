/**
 * The chat state's one reducer: `(state, event) => state`, pure, composed of one
 * reducer per slice (slices/). Each slice decides alone what an event means for it;
 * the few that depend on who I am and what I am looking at get a `Viewer`.
 *
 * Consistency rules (DESIGN.md §2, §6), and the slice that keeps each:
 * - messages are deduplicated by id wherever they come from (messages);
 * - the sync cursor never passes what a cut-short replay had not delivered (sync);
 * - unread counts grow only for messages newer than the known last one (conversations);
 * - an outgoing message keeps its client_msg_id until the server has it (outbox), and
 *   so does an edit, deletion or reaction (changes);
 * - edits, deletions and reactions are idempotent, and wait for a message not held
 *   yet (messages, with the rules in messageChanges.ts).
 */
import type { Message } from "../protocol";
import type { ChatEvent } from "./events";
import { changesReducer } from "./slices/changes";
import { connectionReducer } from "./slices/connection";
import { conversationsReducer } from "./slices/conversations";
import { messagesReducer } from "./slices/messages";
import { outboxReducer } from "./slices/outbox";
import { presenceReducer } from "./slices/presence";
import { syncReducer } from "./slices/sync";
import { typingReducer } from "./slices/typing";
import { viewReducer } from "./slices/view";
import { viewerOf, type ChatState } from "./state";

export function chatReducer(state: ChatState, event: ChatEvent): ChatState {
  if (event.type === "send_acked") {
    // Usually the `message` frame follows at once; until then the ack alone shows it as sent.
    const message = acknowledgedMessage(state, event);
    return message ? chatReducer(state, { type: "message_received", message, live: false }) : state;
  }
  const viewer = viewerOf(state);
  const next: ChatState = {
    me: state.me,
    connection: connectionReducer(state.connection, event),
    conversations: conversationsReducer(state.conversations, event, viewer),
    messages: messagesReducer(state.messages, event, viewer),
    outbox: outboxReducer(state.outbox, event, viewer),
    changes: changesReducer(state.changes, event, viewer),
    presence: presenceReducer(state.presence, event),
    typing: typingReducer(state.typing, event, viewer),
    sync: syncReducer(state.sync, event),
    view: viewReducer(state.view, event),
  };
  return sameSlices(state, next) ? state : next;
}

/** The message an ack stands for, made from the outgoing one it settles. */
function acknowledgedMessage(state: ChatState, ack: Extract<ChatEvent, { type: "send_acked" }>): Message | null {
  const out = state.outbox[ack.clientMsgId];
  if (!out) return null;
  return {
    id: ack.messageId,
    conversation_id: ack.conversationId,
    sender_id: state.me.id,
    body: out.body,
    client_msg_id: ack.clientMsgId,
    created_at: out.created_at,
    reply_to: out.reply_to ?? null,
    // The server resolves mentions; its copy (the `message` frame) brings them.
    mentions: [],
    edited_at: null,
    deleted: false,
    reactions: [],
  };
}

/** No slice changed: keep the old state object, so no subscriber is woken for nothing. */
function sameSlices(a: ChatState, b: ChatState): boolean {
  return (Object.keys(a) as Array<keyof ChatState>).every((key) => a[key] === b[key]);
}
