/**
 * Pure helpers for message lists. Messages can arrive three ways — live, from a `sync`
 * replay after a reconnect, and from history pages — often overlapping, so every
 * merge dedupes by message id and keeps the list in id order (which is send order
 * within a conversation, DESIGN.md §3).
 */
import type { Message } from "../protocol";
import { compareIds } from "../lib/ids";

/** Merges `incoming` into the id-sorted `existing`; a repeated id takes the newer copy. */
export function mergeMessages(existing: readonly Message[], incoming: readonly Message[]): Message[] {
  if (incoming.length === 0) return existing as Message[];
  const byId = new Map<string, Message>();
  for (const m of existing) byId.set(m.id, m);
  let changed = false;
  for (const m of incoming) {
    const prev = byId.get(m.id);
    if (prev && sameMessage(prev, m)) continue;
    byId.set(m.id, m);
    changed = true;
  }
  if (!changed) return existing as Message[];
  return [...byId.values()].sort((a, b) => compareIds(a.id, b.id));
}

function sameMessage(a: Message, b: Message): boolean {
  return a.body === b.body && a.created_at === b.created_at && a.sender_id === b.sender_id;
}
