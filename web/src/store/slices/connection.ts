/** The WebSocket's state, as the connection banner shows it. */
import type { ConnectionStatus } from "../../realtime/socket";
import type { ChatEvent } from "../events";

export function connectionReducer(state: ConnectionStatus, event: ChatEvent): ConnectionStatus {
  return event.type === "connection_changed" ? event.status : state;
}
