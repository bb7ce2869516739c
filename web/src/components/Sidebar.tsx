/** The conversation list, people and message search, notifications and the account menu. */
import { useMemo, useState } from "react";
import type { Conversation, User, UserId } from "../protocol";
import { useAuth } from "../auth/AuthContext";
import { conversationHref, openConversationLink } from "../navigation";
import { useChat, useChatStore } from "../store/hooks";
import { conversationTitle, directPeer, displayName, sortConversations, typingUserIds, userName } from "../store/selectors";
import { formatListTime } from "../lib/time";
import { Avatar, UserSummary } from "./Avatar";
import { DatasetConsent } from "./DatasetConsent";
import { GroupDialog } from "./GroupDialog";
import { NotificationToggle } from "./NotificationToggle";
import { SearchPanel } from "./SearchPanel";
import { useUserSearch } from "./useUserSearch";

export function Sidebar() {
  const { logout } = useAuth();
  const store = useChatStore();
  const me = useChat((s) => s.me);
  const conversations = useChat((s) => s.conversations.byId);
  const loaded = useChat((s) => s.conversations.loaded);
  const [query, setQuery] = useState("");
  const [groupOpen, setGroupOpen] = useState(false);
  const [searchingMessages, setSearchingMessages] = useState(false);
  const search = useUserSearch(query);
  const sorted = useMemo(() => sortConversations(Object.values(conversations)), [conversations]);

  async function startChat(user: User) {
    try {
      const c = await store.startDirect(user.id);
      setQuery("");
      openConversationLink(c.id);
    } catch (e) {
      store.showNotice(e instanceof Error ? e.message : "Could not start the conversation.");
    }
  }

  return (
    <aside className="sidebar" aria-label="Conversations">
      <header className="sidebar-header">
        <Avatar name={displayName(me)} seed={me.id} />
        <div className="me">
          <strong>{displayName(me)}</strong>
          <span className="muted">@{me.username}</span>
        </div>
        <button
          type="button"
          className="icon-button header-icon"
          aria-label="Find messages"
          aria-pressed={searchingMessages}
          onClick={() => setSearchingMessages((on) => !on)}
        >
          <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
            <circle cx="10.5" cy="10.5" r="6.5" fill="none" stroke="currentColor" strokeWidth="2" />
            <path d="m15.5 15.5 5 5" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
        </button>
        <NotificationToggle />
        <button type="button" className="ghost" onClick={() => void logout()}>
          Log out
        </button>
      </header>

      {searchingMessages ? (
        <SearchPanel onClose={() => setSearchingMessages(false)} />
      ) : (
        <>
          <div className="search">
            <input
              type="search"
              placeholder="Search people"
              aria-label="Search people"
              value={query}
              onChange={(e) => setQuery(e.target.value)}
              onKeyDown={(e) => e.key === "Escape" && setQuery("")}
            />
            <button type="button" className="ghost" onClick={() => setGroupOpen(true)}>
              New group
            </button>
          </div>

          {search.active ? (
            <section className="search-results" aria-label="People">
              {search.loading && search.results.length === 0 && <p className="muted pad">Searching…</p>}
              {search.error && <p className="field-error pad">{search.error}</p>}
              {!search.loading && !search.error && search.results.length === 0 && <p className="muted pad">Nobody found.</p>}
              <ul className="list">
                {search.results.map((u) => (
                  <li key={u.id}>
                    <button type="button" className="row" onClick={() => void startChat(u)} aria-label={`Chat with ${displayName(u)}`}>
                      <UserSummary user={u} />
                    </button>
                  </li>
                ))}
              </ul>
            </section>
          ) : (
            <nav className="conversation-list" aria-label="Conversation list">
              {loaded && sorted.length === 0 && (
                <p className="muted pad">No conversations yet. Search for someone above to say hello.</p>
              )}
              <ul className="list">
                {sorted.map((c) => (
                  <ConversationRow key={c.id} c={c} meId={me.id} />
                ))}
              </ul>
            </nav>
          )}
        </>
      )}

      <DatasetConsent />
      {groupOpen && <GroupDialog mode={{ kind: "create" }} onClose={() => setGroupOpen(false)} />}
    </aside>
  );
}

function ConversationRow({ c, meId }: { c: Conversation; meId: UserId }) {
  const activeId = useChat((s) => s.view.activeId);
  const presence = useChat((s) => s.presence);
  const typing = useChat((s) => s.typing[c.id]);
  const title = conversationTitle(c, meId);
  const peer = directPeer(c, meId);
  const last = c.last_message;
  const someoneTyping = typingUserIds(typing).length > 0;
  const preview = someoneTyping
    ? "typing…"
    : last
      ? `${last.sender_id === meId ? "You: " : c.kind === "group" ? `${senderFirstName(c, last.sender_id)}: ` : ""}${last.deleted ? "message deleted" : last.body}`
      : "No messages yet";
  const unread = c.unread_count;
  const mentions = c.unread_mentions;
  return (
    <li>
      <a
        href={conversationHref(c.id)}
        className="row"
        aria-current={activeId === c.id ? "page" : undefined}
        aria-label={`${title}${unread ? `, ${unread} unread` : ""}${mentions ? `, ${mentions} mentioning you` : ""}${peer ? (presence[peer.id] ? ", online" : ", offline") : ""}`}
        data-conversation-id={c.id}
      >
        <Avatar name={title} seed={peer?.id ?? c.id} online={peer ? !!presence[peer.id] : null} group={c.kind === "group"} />
        <span className="row-main">
          <span className="row-top">
            <span className="row-title">{title}</span>
            {last && <time className="row-time muted">{formatListTime(last.created_at)}</time>}
          </span>
          <span className="row-bottom">
            <span className={`row-sub ${someoneTyping ? "accent" : "muted"}`}>{preview}</span>
            {mentions > 0 && (
              <span className="badge mention-badge" aria-hidden="true" data-testid="mention-badge">
                @{mentions > 99 ? "99+" : mentions}
              </span>
            )}
            {unread > 0 && (
              <span className="badge" aria-hidden="true">
                {unread > 99 ? "99+" : unread}
              </span>
            )}
          </span>
        </span>
      </a>
    </li>
  );
}

function senderFirstName(c: Conversation, id: UserId): string {
  return userName(c, id).split(/\s+/)[0];
}
