/**
 * My messages on their way: shown at once (optimistically), pending until the server
 * acknowledges them, failed when it refuses or never answers. A failed message can
 * be sent again; it keeps its client_msg_id, so the server never stores it twice.
 */
import type { ChatEvent } from "../events";
import type { OutgoingMessage, Viewer } from "../state";

export type OutboxState = Record<string, OutgoingMessage>;

export function outboxReducer(state: OutboxState, event: ChatEvent, viewer: Viewer): OutboxState {
  switch (event.type) {
    case "message_queued":
      return { ...state, [event.outgoing.client_msg_id]: event.outgoing };
    case "send_retried": {
      const out = state[event.clientMsgId];
      if (!out) return state;
      return { ...state, [event.clientMsgId]: { ...out, status: "pending", error: undefined } };
    }
    case "send_failed": {
      const out = state[event.clientMsgId];
      if (!out || out.status === "failed") return state;
      return { ...state, [event.clientMsgId]: { ...out, status: "failed", error: event.error } };
    }
    case "outgoing_discarded":
      return without(state, event.clientMsgId);
    case "message_received":
      // The stored message (or its ack) settles the outgoing one with the same key.
      return event.message.sender_id === viewer.me ? without(state, event.message.client_msg_id) : state;
    default:
      return state;
  }
}

function without(state: OutboxState, clientMsgId: string): OutboxState {
  if (!state[clientMsgId]) return state;
  const { [clientMsgId]: _settled, ...rest } = state;
  return rest;
}
