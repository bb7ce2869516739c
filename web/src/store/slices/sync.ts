/**
 * The sync cursor: where the `sync` after the next `ready` replays from (DESIGN.md
 * §6). It must never pass a message that was not delivered, so while a replay runs
 * the ids seen only raise `seenDuringReplay`, which counts once `synced` says the
 * replay is complete; a drop before that replays from the old cursor again.
 */
import type { MessageId } from "../../protocol";
import { maxId } from "../../lib/ids";
import type { ChatEvent } from "../events";
import type { SyncCursor } from "../state";

export function syncReducer(state: SyncCursor, event: ChatEvent): SyncCursor {
  switch (event.type) {
    case "sync_started":
      return { ...state, replaying: true, seenDuringReplay: null };
    case "synced":
      return {
        lastSeenId: maxId(maxId(state.lastSeenId, event.until), state.seenDuringReplay),
        replaying: false,
        seenDuringReplay: null,
      };
    case "message_received":
      // A message made from an ack was not delivered by the stream: it proves nothing.
      return event.live ? seen(state, event.message.id) : state;
    case "message_changed":
      // Changes are events on the log too, with ids of their own (DESIGN.md §5).
      return seen(state, event.change.id);
    case "conversations_listed":
      // The list is a snapshot: everything up to each conversation's last message exists.
      return event.conversations.reduce((cursor, c) => (c.last_message ? seen(cursor, c.last_message.id) : cursor), state);
    default:
      return state;
  }
}

function seen(state: SyncCursor, id: MessageId): SyncCursor {
  if (state.replaying) {
    const seenDuringReplay = maxId(state.seenDuringReplay, id);
    return seenDuringReplay === state.seenDuringReplay ? state : { ...state, seenDuringReplay };
  }
  const lastSeenId = maxId(state.lastSeenId, id);
  return lastSeenId === state.lastSeenId ? state : { ...state, lastSeenId };
}
