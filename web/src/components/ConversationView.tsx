/** One open conversation: header, messages, who is typing, and the composer. */
import { useCallback, useState } from "react";
import type { ConversationId, Message } from "../protocol";
import { openConversationLink } from "../navigation";
import { useChat, useChatStore } from "../store/hooks";
import { isAdmin } from "../store/roles";
import { conversationTitle, directPeer, displayName, otherMembers, typingUserIds, userName } from "../store/selectors";
import { Avatar } from "./Avatar";
import { Composer } from "./Composer";
import { GroupDialog } from "./GroupDialog";
import { GroupSettings } from "./GroupSettings";
import { MessageList } from "./MessageList";

export function ConversationView({ conversationId }: { conversationId: ConversationId }) {
  const store = useChatStore();
  const conv = useChat((s) => s.conversations.byId[conversationId]);
  const me = useChat((s) => s.me);
  const presence = useChat((s) => s.presence);
  const typing = useChat((s) => s.typing[conversationId]);
  const [adding, setAdding] = useState(false);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const closeSettings = useCallback(() => setSettingsOpen(false), []);
  const [replyTo, setReplyTo] = useState<Message | null>(null);

  if (!conv) {
    return (
      <div className="empty-pane">
        <p>Loading conversation…</p>
      </div>
    );
  }

  const title = conversationTitle(conv, me.id);
  const peer = directPeer(conv, me.id);
  const subtitle = peer
    ? presence[peer.id]
      ? "Online"
      : "Offline"
    : `${conv.members.length} members: ${otherMembers(conv, me.id)
        .map(displayName)
        .concat("you")
        .join(", ")}`;
  const typers = typingUserIds(typing).map((id) => userName(conv, id));

  return (
    <section className="conversation" aria-label={`Conversation with ${title}`}>
      <header className="conversation-header">
        <button type="button" className="icon-button back" aria-label="Back to conversations" onClick={() => openConversationLink(null)}>
          ‹
        </button>
        <Avatar name={title} seed={peer?.id ?? conv.id} online={peer ? !!presence[peer.id] : null} group={conv.kind === "group"} />
        <div className="conversation-title">
          <h2>{title}</h2>
          <p className="muted" data-testid="conversation-subtitle">
            {subtitle}
          </p>
        </div>
        {conv.kind === "group" && isAdmin(conv, me.id) && (
          <button type="button" className="ghost add-people" onClick={() => setAdding(true)}>
            Add people
          </button>
        )}
        {conv.kind === "group" && (
          <button type="button" className="icon-button" aria-label="Group settings" title="Group settings" onClick={() => setSettingsOpen(true)}>
            ⚙
          </button>
        )}
      </header>

      <MessageList conversationId={conversationId} onReply={setReplyTo} />

      <div className="typing" aria-live="polite">
        {typers.length > 0 && (
          <>
            <span className="typing-dots" aria-hidden="true">
              <i />
              <i />
              <i />
            </span>
            {typers.length === 1 ? `${typers[0]} is typing…` : `${typers.join(", ")} are typing…`}
          </>
        )}
      </div>

      <Composer
        key={conversationId}
        label={`Message ${title}`}
        onSend={(text) => {
          const sent = store.sendMessage(conversationId, text, replyTo?.id) !== null;
          if (sent) setReplyTo(null);
          return sent;
        }}
        onTyping={() => store.notifyTyping(conversationId)}
        members={conv.members.map((m) => m.user)}
        meId={me.id}
        replyingTo={
          replyTo && {
            sender: replyTo.sender_id === me.id ? "yourself" : userName(conv, replyTo.sender_id),
            firstLine: replyTo.body.split("\n")[0] ?? "",
          }
        }
        onCancelReply={() => setReplyTo(null)}
      />

      {settingsOpen && (
        <GroupSettings
          conversationId={conversationId}
          onAddPeople={() => {
            setSettingsOpen(false);
            setAdding(true);
          }}
          onClose={closeSettings}
        />
      )}

      {adding && conv.kind === "group" && (
        <GroupDialog
          mode={{ kind: "add", conversationId, memberIds: conv.members.map((m) => m.user.id) }}
          onClose={() => setAdding(false)}
        />
      )}
    </section>
  );
}
