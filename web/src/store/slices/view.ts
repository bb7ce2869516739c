/**
 * What the user is looking at: the open conversation, whether the page is visible,
 * and a passing notice. A conversation that disappears (removed, or missing from a
 * fresh list) is closed.
 */
import type { ChatEvent } from "../events";
import type { ViewState } from "../state";

export function viewReducer(state: ViewState, event: ChatEvent): ViewState {
  switch (event.type) {
    case "conversation_opened":
      return state.activeId === event.conversationId ? state : { ...state, activeId: event.conversationId };
    case "message_focused":
      return state.focus === event.focus ? state : { ...state, focus: event.focus };
    case "visibility_changed":
      return state.visible === event.visible ? state : { ...state, visible: event.visible };
    case "notice_shown":
      return state.notice === event.notice ? state : { ...state, notice: event.notice };
    case "conversations_listed":
      return state.activeId && !event.conversations.some((c) => c.id === state.activeId)
        ? { ...state, activeId: null }
        : state;
    case "conversation_removed":
      return state.activeId === event.conversationId ? { ...state, activeId: null } : state;
    default:
      return state;
  }
}
