/**
 * My edits, deletions and reactions on their way: the outbox pattern of outbox.ts for
 * changes to messages. Each is shown over its message at once (`withMyChanges`), and
 * keeps its client_msg_id across reconnects, so a resend never applies twice.
 *
 * A change settles when its own event comes back (the event carries my client_msg_id):
 * only then does the message held show it, so dropping the change on the ack alone
 * would flash the old body in between. A change acknowledged before a reconnect may
 * have lost its event with the connection, and the `sync` replay may fold it into the
 * message (a message newer than the cursor comes in its current state): such a change
 * settles at `synced`. One acknowledged during the replay gets its event live. A
 * refused one is dropped (the store says why).
 */
import type { Message, UserId } from "../../protocol";
import type { ChatEvent } from "../events";
import { toggleReaction } from "../messageChanges";
import type { OutgoingChange, Viewer } from "../state";

export type ChangesState = Record<string, OutgoingChange>;

export function changesReducer(state: ChangesState, event: ChatEvent, viewer: Viewer): ChangesState {
  switch (event.type) {
    case "change_queued":
      return { ...state, [event.change.client_msg_id]: event.change };
    case "change_acked": {
      const change = state[event.clientMsgId];
      if (!change || change.status !== "pending") return state;
      return { ...state, [event.clientMsgId]: { ...change, status: "acked" } };
    }
    case "change_failed":
      return without(state, event.clientMsgId);
    case "message_changed":
      return event.change.user_id === viewer.me ? without(state, event.change.client_msg_id) : state;
    case "sync_started": {
      const acked = Object.values(state).filter((c) => c.status === "acked");
      if (acked.length === 0) return state;
      const next = { ...state };
      for (const c of acked) next[c.client_msg_id] = { ...c, status: "replayed" };
      return next;
    }
    case "synced": {
      const replayed = Object.values(state).filter((c) => c.status === "replayed");
      return replayed.reduce((s, c) => without(s, c.client_msg_id), state);
    }
    case "conversation_removed": {
      const gone = Object.values(state).filter((c) => c.conversation_id === event.conversationId);
      return gone.reduce((s, c) => without(s, c.client_msg_id), state);
    }
    default:
      return state;
  }
}

function without(state: ChangesState, clientMsgId: string): ChangesState {
  if (!state[clientMsgId]) return state;
  const { [clientMsgId]: _settled, ...rest } = state;
  return rest;
}

/**
 * The message as I will see it once my changes on their way are applied, in the order
 * I made them; the very same object when none concern it.
 */
export function withMyChanges(m: Message, changes: readonly OutgoingChange[], me: UserId): Message {
  let out = m;
  for (const c of changes) {
    if (c.message_id !== m.id || out.deleted) continue;
    switch (c.op.kind) {
      case "edit":
        out = { ...out, body: c.op.body, edited_at: out.edited_at ?? c.created_at };
        break;
      case "delete":
        out = { ...out, deleted: true, body: "", mentions: [], reactions: [] };
        break;
      case "react": {
        const reactions = toggleReaction(out.reactions, c.op.emoji, me, c.op.on, me);
        if (reactions !== out.reactions) out = { ...out, reactions };
        break;
      }
    }
  }
  return out;
}
