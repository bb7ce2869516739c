/** Chat states for the reducer tests: Alice's client, built up from events. */
import type { Conversation } from "../protocol";
import type { ChatEvent } from "../store/events";
import { chatReducer } from "../store/reducer";
import { initialChatState, type ChatState, type Viewer } from "../store/state";
import { alice } from "./fixtures";

/** Alice, looking at nothing, on a visible page. */
export const viewer: Viewer = { me: alice.id, activeId: null, visible: true };

/** Alice's state after `events`, starting online with `conversations` listed. */
export function stateAfter(conversations: Conversation[], ...events: ChatEvent[]): ChatState {
  const listed = chatReducer(initialChatState(alice, "online"), { type: "conversations_listed", conversations });
  return events.reduce(chatReducer, listed);
}
