/**
 * Ids on the client. Every id is a 64-bit integer that travels as a decimal string
 * (DESIGN.md §3), and protocol.ts brands each kind (`UserId`, `ConversationId`,
 * `MessageId`) so one can never be passed where another is expected.
 *
 * Ids that arrive from the server are typed by protocol.ts already. The constructors
 * here are the only place a plain string becomes an id: `parse…` for outside input
 * (the URL), the bare constructors for strings the client made itself (test fixtures).
 */
import type { ConversationId, MessageId, UserId } from "../protocol";

/** Any kind of id; a function over ids takes one kind at a time. */
type AnyId = UserId | ConversationId | MessageId;

/** What the server sends: a non-negative i64 in decimal, no sign, no padding rules. */
const DECIMAL_ID = /^[0-9]{1,19}$/;

function isDecimalId(raw: string): boolean {
  return DECIMAL_ID.test(raw);
}

export function userId(raw: string): UserId {
  return raw as UserId;
}

export function conversationId(raw: string): ConversationId {
  return raw as ConversationId;
}

export function messageId(raw: string): MessageId {
  return raw as MessageId;
}

/** A conversation id from outside input (the URL); null unless it looks like one. */
export function parseConversationId(raw: string | null | undefined): ConversationId | null {
  return raw && isDecimalId(raw) ? conversationId(raw) : null;
}

/**
 * Snowflake message ids arrive as decimal strings (they exceed 2^53), so they are
 * compared as strings: a longer decimal is larger, equal lengths compare lexically.
 * Both sides must be the same kind of id.
 */
export function compareIds<Id extends AnyId>(a: Id, b: NoInfer<Id>): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function maxId<Id extends AnyId>(a: Id | null | undefined, b: NoInfer<Id> | null | undefined): Id | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

/**
 * The id just after `id`: for `before=` to include the message itself. Ids exceed
 * 2^53, so the arithmetic is BigInt's; a Number would round to a neighbour.
 */
export function nextId<Id extends AnyId>(id: Id): Id {
  return (BigInt(id) + 1n).toString() as Id;
}

/** A v4 UUID, also outside secure contexts where `crypto.randomUUID` is missing. */
export function newUuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
