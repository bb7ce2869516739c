/**
 * Who is typing where. Each indicator carries its expiry, so a timer that fires for
 * an indicator since renewed leaves the renewed one alone; a message from the typist
 * ends it at once.
 */
import type { ConversationId, UserId } from "../../protocol";
import type { ChatEvent } from "../events";
import type { TypingState, Viewer } from "../state";

export function typingReducer(state: TypingState, event: ChatEvent, viewer: Viewer): TypingState {
  switch (event.type) {
    case "typing_started": {
      // My own typing, echoed from another tab, is not news to me.
      if (event.userId === viewer.me) return state;
      const here = state[event.conversationId] ?? {};
      return { ...state, [event.conversationId]: { ...here, [event.userId]: event.until } };
    }
    case "typing_expired":
      return state[event.conversationId]?.[event.userId] === event.until
        ? stopTyping(state, event.conversationId, event.userId)
        : state;
    case "message_received":
      return stopTyping(state, event.message.conversation_id, event.message.sender_id);
    default:
      return state;
  }
}

function stopTyping(state: TypingState, id: ConversationId, userId: UserId): TypingState {
  const here = state[id];
  if (!here?.[userId]) return state;
  const { [userId]: _stopped, ...rest } = here;
  return { ...state, [id]: rest };
}
