/**
 * Browser notifications for mentions and direct messages while the tab is hidden.
 * Off by default: the user turns them on in the sidebar, which asks the browser's
 * permission once; the choice is kept in localStorage. The store decides which
 * messages deserve one (selectors.ts `notificationFor`); this only shows them.
 */
import type { ChatNotifier } from "../store/chatStore";

const SETTING_KEY = "chat.notifications";

/** Whether this browser can show notifications at all. */
export function notificationsSupported(): boolean {
  return typeof window !== "undefined" && "Notification" in window;
}

/** Whether the user turned notifications on (and the browser still allows them). */
export function notificationsEnabled(): boolean {
  return notificationsSupported() && localStorage.getItem(SETTING_KEY) === "on" && Notification.permission === "granted";
}

/**
 * Turns notifications on or off. Turning them on asks for permission if it was never
 * asked; returns whether they are on afterwards (false if the browser refused).
 */
export async function setNotificationsEnabled(on: boolean): Promise<boolean> {
  if (!on || !notificationsSupported()) {
    localStorage.setItem(SETTING_KEY, "off");
    return false;
  }
  const permission = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
  const granted = permission === "granted";
  localStorage.setItem(SETTING_KEY, granted ? "on" : "off");
  return granted;
}

/** Shows a notification when enabled; a click brings the tab back to the conversation. */
export function browserNotifier(open: (n: Parameters<ChatNotifier["notify"]>[0]) => void): ChatNotifier {
  return {
    notify(n) {
      if (!notificationsEnabled()) return;
      const body = n.body.length > 140 ? `${n.body.slice(0, 139)}…` : n.body;
      const shown = new Notification(n.title, { body, tag: `chat-${n.conversationId}` });
      shown.onclick = () => {
        window.focus();
        open(n);
        shown.close();
      };
    },
  };
}
