/** The message input: Enter sends, Shift+Enter breaks the line, it grows with its text. */
import { useLayoutEffect, useRef, useState, type KeyboardEvent } from "react";
import { MAX_BODY_CHARS } from "../protocol";
import { bodyLength } from "../lib/messageBody";

export function Composer({
  label,
  onSend,
  onTyping,
}: {
  label: string;
  /** Returns whether the text was accepted (then the input clears). */
  onSend: (text: string) => boolean;
  onTyping?: () => void;
}) {
  const [text, setText] = useState("");
  const ref = useRef<HTMLTextAreaElement>(null);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
  }, [text]);

  function submit() {
    if (!text.trim()) return;
    if (onSend(text)) setText("");
    ref.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      submit();
    }
  }

  const charsLeft = MAX_BODY_CHARS - bodyLength(text);
  const tooLong = charsLeft < 0;
  return (
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
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value) onTyping?.();
        }}
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
  );
}
