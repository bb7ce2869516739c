/**
 * The logged-in application: owns the ChatStore for the lifetime of the session and
 * the WebSocket while mounted, keeps the open conversation in the URL hash (so a
 * reload returns to it) and lays out the sidebar and the conversation.
 */
import { useEffect, useState } from "react";
import type { User } from "../protocol";
import { useAuth } from "../auth/AuthContext";
import { ChatSocket, defaultSocketUrl } from "../realtime/socket";
import { ChatStore } from "../store/chatStore";
import { ChatStoreContext, useChat, useChatStore } from "../store/hooks";
import { followOpenConversation, openConversationLink } from "../navigation";
import { browserNotifier } from "../lib/notifications";
import { Sidebar } from "./Sidebar";
import { ConversationView } from "./ConversationView";
import { ConnectionBanner } from "./ConnectionBanner";

export function ChatApp({ me }: { me: User }) {
  const { session, api, logout } = useAuth();
  // App mounts a new ChatApp for another user, so `me` and `api` are fixed here.
  const [store] = useState(
    () => new ChatStore(me, api, Date.now, browserNotifier((n) => openConversationLink(n.conversationId))),
  );

  useEffect(() => {
    const socket = new ChatSocket({
      url: defaultSocketUrl(),
      getToken: () => session.getToken(),
      refreshToken: () => session.refresh(),
      onUnauthenticated: () => void logout(),
    });
    const detach = store.attach(socket);
    store.loadConversations().catch(() => store.showNotice("Could not load your conversations. Retrying when connected."));
    socket.start();
    const onVisibility = () => store.setVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", onVisibility);
    onVisibility();
    return () => {
      document.removeEventListener("visibilitychange", onVisibility);
      socket.stop();
      detach();
    };
  }, [store, session, logout]);

  return (
    <ChatStoreContext.Provider value={store}>
      <Layout />
    </ChatStoreContext.Provider>
  );
}

function Layout() {
  const store = useChatStore();
  const activeId = useChat((s) => s.view.activeId);
  const notice = useChat((s) => s.view.notice);
  const conversations = useChat((s) => s.conversations.byId);

  useEffect(() => {
    const unread = Object.values(conversations).reduce((n, c) => n + c.unread_count, 0);
    document.title = unread ? `(${unread}) Chat` : "Chat";
  }, [conversations]);

  useEffect(() => followOpenConversation((id) => store.openConversation(id)), [store]);

  useEffect(() => {
    if (!notice) return;
    const t = setTimeout(() => store.showNotice(null), 6000);
    return () => clearTimeout(t);
  }, [notice, store]);

  return (
    <div className="app" data-view={activeId ? "chat" : "list"}>
      <ConnectionBanner />
      <Sidebar />
      <main className="chat-pane">
        {activeId ? (
          <ConversationView key={activeId} conversationId={activeId} />
        ) : (
          <div className="empty-pane">
            <p>Select a conversation, or search for someone to start one.</p>
          </div>
        )}
      </main>
      {notice && (
        <div className="toast" role="alert">
          {notice}
          <button type="button" className="icon-button" aria-label="Dismiss" onClick={() => store.showNotice(null)}>
            ×
          </button>
        </div>
      )}
    </div>
  );
}
