/** The bell in the sidebar: turns browser notifications on (asking permission once) or off. */
import { useState } from "react";
import { notificationsEnabled, notificationsSupported, setNotificationsEnabled } from "../lib/notifications";
import { useChatStore } from "../store/hooks";

export function NotificationToggle() {
  const store = useChatStore();
  const [on, setOn] = useState(notificationsEnabled);
  if (!notificationsSupported()) return null;

  async function toggle() {
    const next = await setNotificationsEnabled(!on);
    setOn(next);
    if (!on && !next) store.showNotice("Notifications are blocked by the browser. Allow them in the site settings to turn them on.");
  }

  return (
    <button
      type="button"
      className="icon-button header-icon"
      aria-pressed={on}
      aria-label={on ? "Notifications on: mentions and direct messages while away" : "Notifications off"}
      title={on ? "Notifications on" : "Notify me of mentions and direct messages while away"}
      onClick={() => void toggle()}
    >
      <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
        <path d="M6 16V11a6 6 0 1 1 12 0v5l2 2H4z M10 20a2 2 0 0 0 4 0" fill={on ? "currentColor" : "none"} stroke="currentColor" strokeWidth="1.8" strokeLinejoin="round" />
        {!on && <path d="M4 4l16 16" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" />}
      </svg>
    </button>
  );
}
