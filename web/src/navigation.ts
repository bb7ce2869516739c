/**
 * The open conversation lives in the URL hash (`#/c/<id>`), so a reload, the back
 * button and a shared link all return to it. Components link and navigate through
 * these helpers; the chat app listens for changes and opens what the hash names.
 *
 * This module imports no component, so any component may use it without forming an
 * import cycle with the app that lays them out.
 */
import type { ConversationId } from "./protocol";
import { parseConversationId } from "./lib/ids";

const CONVERSATION_HASH = /^#\/c\/([^/]+)$/;

/** The `href` of a link that opens the conversation. */
export function conversationHref(id: ConversationId | null): string {
  return id ? `#/c/${id}` : "#/";
}

/** The conversation a hash names; null for the list, or for anything that is not an id. */
export function conversationIdFromHash(hash: string): ConversationId | null {
  return parseConversationId(CONVERSATION_HASH.exec(hash)?.[1]);
}

/** Opens the conversation (null: back to the list) by changing the hash. */
export function openConversationLink(id: ConversationId | null): void {
  const hash = conversationHref(id);
  if (location.hash !== hash) location.hash = hash;
}

/** Calls `open` now and whenever the hash changes; returns the unsubscribe. */
export function followOpenConversation(open: (id: ConversationId | null) => void): () => void {
  const sync = () => open(conversationIdFromHash(location.hash));
  sync();
  window.addEventListener("hashchange", sync);
  return () => window.removeEventListener("hashchange", sync);
}
