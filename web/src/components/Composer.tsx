/**
 * The message input: Enter sends, Shift+Enter breaks the line, it grows with its text.
 * Typing `@` offers the conversation's members (arrows to move, Enter or Tab to pick,
 * Esc to close); a "replying to" bar above it says what the message will answer (Esc
 * or × cancels).
 */
import { useEffect, useId, useLayoutEffect, useRef, useState, type KeyboardEvent } from "react";
import type { User, UserId } from "../protocol";
import { MAX_BODY_CHARS } from "../protocol";
import { bodyLength } from "../lib/messageBody";
import { insertMention, matchMembers, mentionQueryAt } from "../lib/mentions";
import { displayName } from "../store/selectors";

export interface ReplyTarget {
  sender: string;
  firstLine: string;
}

export function Composer({
  label,
  onSend,
  onTyping,
  members = [],
  meId,
  replyingTo = null,
  onCancelReply,
}: {
  label: string;
  /** Returns whether the text was accepted (then the input clears). */
  onSend: (text: string) => boolean;
  onTyping?: () => void;
  /** Who `@` may name. */
  members?: User[];
  meId?: UserId;
  replyingTo?: ReplyTarget | null;
  onCancelReply?: () => void;
}) {
  const [text, setText] = useState("");
  const [caret, setCaret] = useState(0);
  const [active, setActive] = useState(0);
  /** Where the `@` of a mention the user closed with Esc is: it stays closed. */
  const [dismissedAt, setDismissedAt] = useState<number | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);
  /** Where the caret goes once a picked mention is in the text. */
  const caretAfterPick = useRef<number | null>(null);
  const listId = useId();

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
    if (caretAfterPick.current !== null) {
      el.setSelectionRange(caretAfterPick.current, caretAfterPick.current);
      caretAfterPick.current = null;
    }
  }, [text]);

  // Choosing to reply brings the caret here.
  const replyKey = replyingTo ? `${replyingTo.sender}\n${replyingTo.firstLine}` : null;
  useEffect(() => {
    if (replyKey) ref.current?.focus();
  }, [replyKey]);

  const mention = mentionQueryAt(text, caret);
  const candidates = mention && mention.start !== dismissedAt ? matchMembers(members, mention.query, meId ?? ("" as UserId)) : [];
  const open = candidates.length > 0;
  const activeIndex = Math.min(active, candidates.length - 1);

  function submit() {
    if (!text.trim()) return;
    if (onSend(text)) {
      setText("");
      setCaret(0);
    }
    ref.current?.focus();
  }

  function pick(user: User) {
    if (!mention) return;
    const next = insertMention(text, mention.start, caret, user.username);
    setText(next.text);
    setCaret(next.caret);
    setActive(0);
    caretAfterPick.current = next.caret;
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.nativeEvent.isComposing) return;
    if (open && mention) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        const step = e.key === "ArrowDown" ? 1 : -1;
        setActive((activeIndex + step + candidates.length) % candidates.length);
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        pick(candidates[activeIndex]);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        setDismissedAt(mention.start);
        return;
      }
    }
    if (e.key === "Escape" && replyingTo) {
      e.preventDefault();
      onCancelReply?.();
      return;
    }
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      submit();
    }
  }

  const charsLeft = MAX_BODY_CHARS - bodyLength(text);
  const tooLong = charsLeft < 0;
  return (
    <div className="composer-wrap">
      {replyingTo && (
        <div className="replying-to" role="status">
          <span className="replying-text">
            Replying to <strong>{replyingTo.sender}</strong>: <span className="quote-text">{replyingTo.firstLine}</span>
          </span>
          <button type="button" className="icon-button" aria-label="Cancel reply" onClick={onCancelReply}>
            ×
          </button>
        </div>
      )}
      {open && (
        <ul className="mention-list" id={listId} role="listbox" aria-label="Members to mention">
          {candidates.map((u, i) => (
            <li
              key={u.id}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === activeIndex}
              onMouseDown={(e) => {
                // Keep the focus (and the caret) in the textarea.
                e.preventDefault();
                pick(u);
              }}
            >
              <strong>{displayName(u)}</strong> <span className="muted">@{u.username}</span>
            </li>
          ))}
        </ul>
      )}
      <form
        className="composer"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <textarea
          ref={ref}
          rows={1}
          value={text}
          placeholder="Write a message"
          aria-label={label}
          autoFocus
          role="combobox"
          aria-autocomplete="list"
          aria-expanded={open}
          aria-controls={open ? listId : undefined}
          aria-activedescendant={open ? `${listId}-${activeIndex}` : undefined}
          onChange={(e) => {
            setText(e.target.value);
            setCaret(e.target.selectionStart);
            if (e.target.value) onTyping?.();
          }}
          onSelect={(e) => setCaret(e.currentTarget.selectionStart)}
          onKeyDown={onKeyDown}
          aria-invalid={tooLong}
        />
        {tooLong && <span className="field-error counter">{charsLeft}</span>}
        <button type="submit" className="send" aria-label="Send message" disabled={!text.trim() || tooLong}>
          <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
            <path d="M3.4 20.4 21 12 3.4 3.6l-.01 6.53L15 12l-11.61 1.87z" fill="currentColor" />
          </svg>
        </button>
      </form>
    </div>
  );
}
