/**
 * One stored message in the history: its reply quote, body (or the inline editor),
 * reactions and receipts, and its actions — reply, react, edit and delete. The
 * actions show on hover and when the message has keyboard focus; on a touch screen
 * the "…" button opens them. With the message focused, R replies and E edits.
 */
import { useEffect, useState, type KeyboardEvent } from "react";
import type { Conversation, Message, MessageId, Reaction, UserId } from "../protocol";
import { QUICK_REACTIONS } from "../lib/emoji";
import { bodyLength } from "../lib/messageBody";
import { MAX_BODY_CHARS } from "../protocol";
import { formatFull, formatTime } from "../lib/time";
import { useChat, useChatStore } from "../store/hooks";
import { canDelete, userName } from "../store/selectors";
import { findMessage } from "../store/slices/messages";
import { EmojiPicker } from "./EmojiPicker";
import { MessageText, type MentionContext } from "./MessageText";

export interface MessageItemProps {
  m: Message;
  conv: Conversation;
  meId: UserId;
  startsRun: boolean;
  readByAll: boolean;
  seenBy: string[] | null;
  highlighted: boolean;
  editing: boolean;
  usernames: ReadonlyMap<string, UserId>;
  onEdit: (id: MessageId | null) => void;
  onReply: (m: Message) => void;
}

export function MessageItem(props: MessageItemProps) {
  const { m, conv, meId, startsRun, readByAll, seenBy, highlighted, editing, onEdit, onReply } = props;
  const store = useChatStore();
  const [actionsOpen, setActionsOpen] = useState(false);
  const [picking, setPicking] = useState(false);
  const [confirmingDelete, setConfirmingDelete] = useState(false);
  const mine = m.sender_id === meId;
  const mayEdit = mine && !m.deleted;
  const mayDelete = !m.deleted && canDelete(conv, m, meId);
  const mentions: MentionContext = { usernames: props.usernames, mentioned: m.mentions, me: meId };
  const mentionsMe = !m.deleted && m.mentions.includes(meId);

  const react = (emoji: string) => {
    store.toggleReaction(conv.id, m.id, emoji);
    setPicking(false);
    setActionsOpen(false);
  };

  function onKeyDown(e: KeyboardEvent<HTMLLIElement>) {
    if (e.target !== e.currentTarget || m.deleted) return;
    if (e.key === "r") {
      e.preventDefault();
      onReply(m);
    } else if (e.key === "e" && mayEdit) {
      e.preventDefault();
      onEdit(m.id);
    }
  }

  return (
    <li
      className="message"
      data-mine={mine}
      data-starts-run={startsRun}
      data-message-id={m.id}
      data-highlighted={highlighted || undefined}
      data-mentions-me={mentionsMe || undefined}
      data-actions-open={actionsOpen || picking || undefined}
      tabIndex={0}
      aria-label={`${mine ? "You" : userName(conv, m.sender_id)}: ${m.deleted ? "message deleted" : m.body}`}
      onKeyDown={onKeyDown}
    >
      {!mine && conv.kind === "group" && startsRun && <span className="sender">{userName(conv, m.sender_id)}</span>}
      <div className="message-line">
        <div className="bubble" data-deleted={m.deleted || undefined}>
          {m.reply_to && <ReplyQuote conv={conv} id={m.reply_to} meId={meId} />}
          {m.deleted ? (
            <span className="body deleted">message deleted</span>
          ) : editing ? (
            <EditBox initial={m.body} onSave={(body) => store.editMessage(conv.id, m.id, body)} onClose={() => onEdit(null)} />
          ) : (
            <span className="body">
              <MessageText text={m.body} mentions={mentions} />
            </span>
          )}
          <span className="meta">
            {m.edited_at && !m.deleted && (
              <span className="edited" title={`Edited ${formatFull(m.edited_at)}`}>
                edited
              </span>
            )}
            <time dateTime={m.created_at} title={formatFull(m.created_at)}>
              {formatTime(m.created_at)}
            </time>
            {mine && (
              <span className="status" data-status={readByAll ? "read" : "sent"} aria-label={readByAll ? "Read" : "Sent"}>
                {readByAll ? "✓✓" : "✓"}
              </span>
            )}
          </span>
        </div>
        {!m.deleted && !editing && (
          <div className="message-actions" role="toolbar" aria-label="Message actions">
            <button
              type="button"
              className="action more"
              aria-label="More actions"
              aria-expanded={actionsOpen}
              onClick={() => setActionsOpen((o) => !o)}
            >
              …
            </button>
            <span className="action-buttons">
              {QUICK_REACTIONS.slice(0, 3).map((emoji) => (
                <button key={emoji} type="button" className="action quick" aria-label={`React with ${emoji}`} onClick={() => react(emoji)}>
                  {emoji}
                </button>
              ))}
              <button type="button" className="action" aria-label="Add reaction" onClick={() => setPicking(true)}>
                ☺︎+
              </button>
              <button
                type="button"
                className="action"
                aria-label="Reply"
                onClick={() => {
                  setActionsOpen(false);
                  onReply(m);
                }}
              >
                ↩
              </button>
              {mayEdit && (
                <button
                  type="button"
                  className="action"
                  aria-label="Edit"
                  onClick={() => {
                    setActionsOpen(false);
                    onEdit(m.id);
                  }}
                >
                  ✎
                </button>
              )}
              {mayDelete && (
                <button type="button" className="action danger" aria-label="Delete" onClick={() => setConfirmingDelete(true)}>
                  <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
                    <path
                      d="M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6"
                      fill="none"
                      stroke="currentColor"
                      strokeWidth="1.8"
                      strokeLinecap="round"
                      strokeLinejoin="round"
                    />
                  </svg>
                </button>
              )}
            </span>
          </div>
        )}
        {picking && <EmojiPicker onPick={react} onClose={() => setPicking(false)} />}
      </div>
      {confirmingDelete && (
        <span className="confirm" role="alertdialog" aria-label="Delete this message?">
          Delete this message for everyone?{" "}
          <button
            type="button"
            className="link danger"
            onClick={() => {
              setConfirmingDelete(false);
              setActionsOpen(false);
              store.deleteMessage(conv.id, m.id);
            }}
          >
            Delete
          </button>{" "}
          ·{" "}
          <button type="button" className="link" onClick={() => setConfirmingDelete(false)}>
            Cancel
          </button>
        </span>
      )}
      {m.reactions.length > 0 && (
        <ReactionChips reactions={m.reactions} conv={conv} onToggle={(emoji) => store.toggleReaction(conv.id, m.id, emoji)} />
      )}
      {seenBy && (
        <span className="seen" data-testid="seen">
          {conv.kind === "direct" ? "Seen" : `Seen by ${seenBy.join(", ")}`}
        </span>
      )}
    </li>
  );
}

/** Reaction chips with counts; mine highlighted; a click toggles mine. */
function ReactionChips({
  reactions,
  conv,
  onToggle,
}: {
  reactions: Reaction[];
  conv: Conversation;
  onToggle: (emoji: string) => void;
}) {
  return (
    <ul className="reactions" aria-label="Reactions">
      {reactions.map((r) => (
        <li key={r.emoji}>
          <button
            type="button"
            className="reaction"
            aria-pressed={r.me}
            aria-label={`${r.emoji} ${r.count}${r.me ? ", including you" : ""}`}
            title={r.user_ids.map((id) => userName(conv, id)).join(", ")}
            onClick={() => onToggle(r.emoji)}
          >
            <span aria-hidden="true">{r.emoji}</span>
            <span className="count">{r.count}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}

/** The original a reply answers: sender and first line; a click jumps to it. */
function ReplyQuote({ conv, id, meId }: { conv: Conversation; id: MessageId; meId: UserId }) {
  const store = useChatStore();
  const original = useChat((s) => findMessage(s.messages[conv.id], id));
  // Not loaded: fetch it (once; the store remembers one that is gone).
  useEffect(() => {
    if (original === undefined) store.fetchQuoted(conv.id, id);
  }, [original, store, conv.id, id]);
  const gone = original === null || original?.deleted === true;
  const sender = original ? (original.sender_id === meId ? "You" : userName(conv, original.sender_id)) : null;
  const text = gone ? "original deleted" : !original ? "Loading…" : (original.body.split("\n")[0] ?? "");
  return (
    <button
      type="button"
      className="reply-quote"
      data-deleted={gone || undefined}
      disabled={original === null}
      aria-label={`Reply to ${sender ?? "a message"}: ${text}. Show the original`}
      onClick={() => void store.openAtMessage(conv.id, id)}
    >
      {sender && <strong>{sender}</strong>}
      <span className="quote-text">{text}</span>
    </button>
  );
}

/** The inline editor: Enter saves, Shift+Enter breaks the line, Esc cancels. */
function EditBox({ initial, onSave, onClose }: { initial: string; onSave: (body: string) => boolean; onClose: () => void }) {
  const [text, setText] = useState(initial);
  const tooLong = bodyLength(text) > MAX_BODY_CHARS;
  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      onClose();
    } else if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      if (!tooLong && onSave(text)) onClose();
    }
  }
  return (
    <span className="edit-box">
      <textarea
        aria-label="Edit message"
        value={text}
        autoFocus
        rows={Math.min(6, text.split("\n").length)}
        aria-invalid={tooLong || !text.trim()}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        onFocus={(e) => e.currentTarget.setSelectionRange(e.currentTarget.value.length, e.currentTarget.value.length)}
      />
      <span className="edit-hint">
        {tooLong ? <span className="field-error">Too long by {bodyLength(text) - MAX_BODY_CHARS}</span> : "Enter to save · Esc to cancel"}
      </span>
    </span>
  );
}
