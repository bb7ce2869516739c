/**
 * `@username` mentions in message text: finding them to highlight (the server has
 * resolved which are real, in the message's `mentions`), and the composer's
 * autocomplete (which mention is being typed, who matches it, what picking one
 * inserts). Usernames are 3 to 32 lowercase letters, digits and underscores.
 */
import type { User, UserId } from "../protocol";

export type MentionSegment = { kind: "text"; text: string } | { kind: "mention"; text: string; userId: UserId };

/** `@name` not glued to a word or another `@` before it (so not an e-mail address). */
const MENTION_RE = /(?<![\p{L}\p{N}_@])@([a-z0-9_]{3,32})(?![a-z0-9_])/giu;

/**
 * Splits text into plain parts and the mentions of `mentioned` users: a token counts
 * only if its username names a member (`usernames`) the server resolved.
 */
export function splitMentions(
  text: string,
  usernames: ReadonlyMap<string, UserId>,
  mentioned: readonly UserId[],
): MentionSegment[] {
  if (mentioned.length === 0) return [{ kind: "text", text }];
  const out: MentionSegment[] = [];
  let last = 0;
  for (const match of text.matchAll(MENTION_RE)) {
    const userId = usernames.get(match[1].toLowerCase());
    if (!userId || !mentioned.includes(userId)) continue;
    const start = match.index;
    if (start > last) out.push({ kind: "text", text: text.slice(last, start) });
    out.push({ kind: "mention", text: match[0], userId });
    last = start + match[0].length;
  }
  if (last < text.length) out.push({ kind: "text", text: text.slice(last) });
  return out;
}

/** The mention being typed just before the caret: where its `@` is and what follows it. */
export function mentionQueryAt(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const m = /(?:^|[^\p{L}\p{N}_@])@([a-z0-9_]{0,32})$/iu.exec(before);
  if (!m) return null;
  return { start: caret - m[1].length - 1, query: m[1].toLowerCase() };
}

/**
 * The members a typed mention may mean, best first: usernames starting with the query,
 * then display names with a word starting with it; never me; at most `limit`.
 */
export function matchMembers(users: readonly User[], query: string, me: UserId, limit = 8): User[] {
  const q = query.toLowerCase();
  const rank = (u: User): number => {
    if (u.username.startsWith(q)) return 0;
    if (u.display_name.toLowerCase().split(/\s+/).some((w) => w.startsWith(q))) return 1;
    return -1;
  };
  return users
    .filter((u) => u.id !== me)
    .map((u) => ({ u, r: rank(u) }))
    .filter((x) => x.r >= 0)
    .sort((a, b) => a.r - b.r || a.u.username.localeCompare(b.u.username))
    .slice(0, limit)
    .map((x) => x.u);
}

/** The text with the typed mention (from `start` to the caret) replaced by `@username `. */
export function insertMention(text: string, start: number, caret: number, username: string): { text: string; caret: number } {
  const inserted = `@${username} `;
  const rest = text.slice(caret).replace(/^ /, "");
  return { text: text.slice(0, start) + inserted + rest, caret: start + inserted.length };
}
