/**
 * The rules for changing a message after it was posted: an edit, a deletion, a
 * reaction (DESIGN.md §5). Live frames are the same for every recipient and may come
 * twice (at-least-once delivery, `sync` replays), so every rule is idempotent:
 * - an edit applies only if its `at` is newer than the message's `edited_at`;
 * - a deletion is final: it empties the body and the reactions, and later edits or
 *   reactions to the message change nothing;
 * - a reaction is a set operation on the emoji's `user_ids`, so `count` and `me` are
 *   derived, never counted up or down.
 *
 * A change for a message the client does not hold yet is *held* (`holdChange`) and
 * applied when the message loads (`applyHeld`); because the rules are idempotent, a
 * held change applied to a page that already contains it changes nothing.
 */
import type { Message, MessageDeleted, MessageEdited, MessageId, Reaction, ReactionChanged, UserId } from "../protocol";

/** A change to an existing message, as the server frames it. */
export type MessageChange =
  | ({ type: "edited" } & MessageEdited)
  | ({ type: "deleted" } & MessageDeleted)
  | ({ type: "reaction" } & ReactionChanged);

/** At most this many changes wait per conversation for their message; the oldest go first. */
export const MAX_HELD_CHANGES = 500;

/** The message after `change`; the very same object when it changes nothing. */
export function applyChange(m: Message, change: MessageChange, me: UserId): Message {
  if (m.id !== change.message_id || m.deleted) return m;
  switch (change.type) {
    case "edited":
      if (!isLater(change.at, m.edited_at)) return m;
      return { ...m, body: change.body, mentions: change.mentions, edited_at: change.at };
    case "deleted":
      return { ...m, deleted: true, body: "", mentions: [], reactions: [] };
    case "reaction": {
      const reactions = toggleReaction(m.reactions, change.emoji, change.user_id, change.on, me);
      return reactions === m.reactions ? m : { ...m, reactions };
    }
  }
}

/** Whether an edit made at `at` is newer than the last one (`null`: never edited). */
function isLater(at: string, than: string | null): boolean {
  if (!than) return true;
  // Parsed, not compared as text: "12:00:00Z" and "12:00:00.5Z" sort wrongly as strings.
  return Date.parse(at) > Date.parse(than);
}

/** The summary with `user` added to (`on`) or removed from the emoji's reactors. */
export function toggleReaction(
  reactions: readonly Reaction[],
  emoji: string,
  user: UserId,
  on: boolean,
  me: UserId,
): Reaction[] {
  const i = reactions.findIndex((r) => r.emoji === emoji);
  const cur = reactions[i];
  const has = cur?.user_ids.includes(user) ?? false;
  if (has === on) return reactions as Reaction[];
  if (!on) {
    const user_ids = cur.user_ids.filter((u) => u !== user);
    if (user_ids.length === 0) return reactions.filter((_, j) => j !== i);
    return reactions.map((r, j) => (j === i ? summary(emoji, user_ids, me) : r));
  }
  // A new emoji goes last: the summary keeps the order in which each was first used.
  if (!cur) return [...reactions, summary(emoji, [user], me)];
  return reactions.map((r, j) => (j === i ? summary(emoji, [...r.user_ids, user], me) : r));
}

function summary(emoji: string, user_ids: UserId[], me: UserId): Reaction {
  return { emoji, user_ids, count: user_ids.length, me: user_ids.includes(me) };
}

/**
 * A second copy of a message (a history page, a `sync` replay) against the one held:
 * the copy is the server's current state and wins, except that it never undoes what
 * the held one has seen happen later — a deletion, or a newer edit (a page fetched
 * before a live edit may arrive after it).
 */
export function reconcileMessage(held: Message, incoming: Message): Message {
  if (held.deleted && !incoming.deleted) return held;
  if (!incoming.deleted && held.edited_at && isLater(held.edited_at, incoming.edited_at)) {
    return { ...incoming, body: held.body, mentions: held.mentions, edited_at: held.edited_at };
  }
  return incoming;
}

/** Whether two copies of a message show the same thing (so the held one can stay). */
export function sameMessage(a: Message, b: Message): boolean {
  return (
    a === b ||
    (a.body === b.body &&
      a.created_at === b.created_at &&
      a.sender_id === b.sender_id &&
      a.edited_at === b.edited_at &&
      a.deleted === b.deleted &&
      a.reply_to === b.reply_to &&
      sameList(a.mentions, b.mentions) &&
      a.reactions.length === b.reactions.length &&
      a.reactions.every((r, i) => r.emoji === b.reactions[i].emoji && r.me === b.reactions[i].me && sameList(r.user_ids, b.reactions[i].user_ids)))
  );
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `held` with `change` added (once: a repeated event is not held twice), bounded. */
export function holdChange(held: readonly MessageChange[], change: MessageChange): MessageChange[] {
  if (held.some((c) => c.id === change.id)) return held as MessageChange[];
  const next = [...held, change];
  return next.length > MAX_HELD_CHANGES ? next.slice(next.length - MAX_HELD_CHANGES) : next;
}

/**
 * Applies the held changes to the messages that have now arrived, in the order the
 * changes happened; returns the messages and the changes still waiting.
 */
export function applyHeld(
  messages: readonly Message[],
  held: readonly MessageChange[],
  me: UserId,
): { messages: Message[]; held: MessageChange[] } {
  if (held.length === 0) return { messages: messages as Message[], held: held as MessageChange[] };
  const arrived = new Set<MessageId>(messages.map((m) => m.id));
  const waiting = held.filter((c) => !arrived.has(c.message_id));
  if (waiting.length === held.length) return { messages: messages as Message[], held: held as MessageChange[] };
  const applied = messages.map((m) => held.reduce((acc, c) => applyChange(acc, c, me), m));
  return { messages: applied, held: waiting };
}
