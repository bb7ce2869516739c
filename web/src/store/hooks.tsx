/** React access to the ChatStore: a context for the instance, a hook for its state. */
import { createContext, useContext, useSyncExternalStore } from "react";
import type { ChatStore } from "./chatStore";
import type { ChatState } from "./state";

export const ChatStoreContext = createContext<ChatStore | null>(null);

export function useChatStore(): ChatStore {
  const store = useContext(ChatStoreContext);
  if (!store) throw new Error("useChatStore must be used inside <ChatStoreContext.Provider>");
  return store;
}

/** Subscribes to one slice of the state; the selector must return stored references. */
export function useChat<T>(selector: (s: ChatState) => T): T {
  const store = useChatStore();
  return useSyncExternalStore(store.subscribe, () => selector(store.getState()));
}
