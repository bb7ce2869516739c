/** A small grid of common emoji to react with; Esc or a click outside closes it. */
import { useEffect, useRef } from "react";
import { COMMON_EMOJI } from "../lib/emoji";

export function EmojiPicker({ onPick, onClose }: { onPick: (emoji: string) => void; onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null);

  useEffect(() => {
    ref.current?.querySelector("button")?.focus();
    const onDown = (e: PointerEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) onClose();
    };
    document.addEventListener("pointerdown", onDown);
    return () => document.removeEventListener("pointerdown", onDown);
  }, [onClose]);

  return (
    <div
      ref={ref}
      className="emoji-picker"
      role="dialog"
      aria-label="Pick a reaction"
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.stopPropagation();
          onClose();
        }
      }}
    >
      {COMMON_EMOJI.map((emoji) => (
        <button key={emoji} type="button" className="emoji" aria-label={`React with ${emoji}`} onClick={() => onPick(emoji)}>
          {emoji}
        </button>
      ))}
    </div>
  );
}
