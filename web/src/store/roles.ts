/**
 * Group roles as the client shows them, from the server's rules (README, "Group
 * roles"): the creator is an admin; admins rename the group, add and remove members
 * and make or unmake admins; anyone may leave, except the last member; when the last
 * admin leaves, the longest-standing member becomes admin. The server decides; these
 * pure functions only say which controls to offer and what leaving will do, so the
 * settings panel never offers a change the server would refuse.
 *
 * Members arrive in joining order (ties by user id), which is the order in which the
 * server picks a successor.
 */
import type { Conversation, Member, UpdateConversation, User, UserId } from "../protocol";

/** A group title's length limit, as the server checks it (`MAX_TITLE_CHARS`). */
export const MAX_GROUP_TITLE_CHARS = 100;

/** What `me` may do to one member in the settings panel. */
export type MemberAction = "make_admin" | "unmake_admin" | "remove";

export function memberOf(c: Conversation, user: UserId): Member | null {
  return c.members.find((m) => m.user.id === user) ?? null;
}

export function isAdmin(c: Conversation, user: UserId): boolean {
  return c.kind === "group" && memberOf(c, user)?.role === "admin";
}

/** Admins first, then members, each in joining order. */
export function membersByRole(c: Conversation): Member[] {
  return [...c.members.filter((m) => m.role === "admin"), ...c.members.filter((m) => m.role !== "admin")];
}

/** The actions on `target` offered to `me`: only admins change anyone, themselves too. */
export function memberActions(c: Conversation, me: UserId, target: UserId): MemberAction[] {
  if (!isAdmin(c, me)) return [];
  const member = memberOf(c, target);
  if (!member) return [];
  if (member.role === "admin") {
    // Stepping down needs another admin; removing oneself is leaving, offered apart.
    const otherAdmin = c.members.some((m) => m.role === "admin" && m.user.id !== target);
    const actions: MemberAction[] = otherAdmin ? ["unmake_admin"] : [];
    return target === me ? actions : [...actions, "remove"];
  }
  return ["make_admin", "remove"];
}

/** What leaving does: refused for the last member; otherwise who becomes admin, if anyone. */
export type LeaveOutcome = { allowed: false; reason: string } | { allowed: true; successor: User | null };

export function leaveOutcome(c: Conversation, me: UserId): LeaveOutcome {
  if (c.kind !== "group") return { allowed: false, reason: "A direct conversation cannot be left." };
  const others = c.members.filter((m) => m.user.id !== me);
  if (others.length === 0) return { allowed: false, reason: "You are the last member, so you cannot leave." };
  const adminRemains = others.some((m) => m.role === "admin");
  const successor = isAdmin(c, me) && !adminRemains ? others[0].user : null;
  return { allowed: true, successor };
}

/** The request for one action on `target` (removal is not a PATCH). */
export function roleChange(action: Exclude<MemberAction, "remove">, target: UserId): UpdateConversation {
  return action === "make_admin" ? { add_admins: [target] } : { remove_admins: [target] };
}

/** Why `title` would be refused, or null when it is fine (the server trims it). */
export function titleProblem(title: string): string | null {
  const chars = [...title.trim()].length;
  if (chars === 0) return "Give the group a name.";
  if (chars > MAX_GROUP_TITLE_CHARS) return `A group name has at most ${MAX_GROUP_TITLE_CHARS} characters.`;
  return null;
}

/** The conversation without `user`, as it is once an admin removed them (nobody is promoted). */
export function withoutMember(c: Conversation, user: UserId): Conversation {
  if (!memberOf(c, user)) return c;
  return { ...c, members: c.members.filter((m) => m.user.id !== user) };
}
