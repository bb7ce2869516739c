/**
 * Who is online. While disconnected nobody's presence is known (offline events are
 * missed), so it is forgotten; the snapshot after the next `ready` refills it.
 */
import type { UserId } from "../../protocol";
import type { ChatEvent } from "../events";

export type PresenceState = Record<UserId, boolean>;

const NOBODY_KNOWN: PresenceState = {};

export function presenceReducer(state: PresenceState, event: ChatEvent): PresenceState {
  switch (event.type) {
    case "presence_changed":
      return state[event.userId] === event.online ? state : { ...state, [event.userId]: event.online };
    case "connection_changed":
      return event.status === "online" || Object.keys(state).length === 0 ? state : NOBODY_KNOWN;
    default:
      return state;
  }
}
