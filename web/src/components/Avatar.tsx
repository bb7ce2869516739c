import type { User } from "../protocol";
import { displayName } from "../store/selectors";

/** Initials on a colour derived from the name; a presence dot for direct chats. */
export function Avatar({ name, seed, online, group }: { name: string; seed: string; online?: boolean | null; group?: boolean }) {
  const initials =
    name
      .split(/\s+/)
      .filter(Boolean)
      .slice(0, 2)
      .map((w) => [...w][0]?.toUpperCase() ?? "")
      .join("") || "?";
  // Golden-angle steps keep neighbouring seeds (sequential ids) far apart in hue.
  let n = 0;
  for (const ch of seed) n = (n * 31 + ch.charCodeAt(0)) % 1_000_003;
  const h = Math.round((n * 137.508) % 360);
  return (
    <span className="avatar" style={{ ["--hue" as string]: String(h) }} aria-hidden="true" data-group={group || undefined}>
      {initials}
      {online != null && <span className="presence-dot" data-online={online} />}
    </span>
  );
}

/** A person in a list: avatar, name and @username. */
export function UserSummary({ user }: { user: User }) {
  return (
    <>
      <Avatar name={displayName(user)} seed={user.id} />
      <span className="row-main">
        <span className="row-title">{displayName(user)}</span>
        <span className="row-sub muted">@{user.username}</span>
      </span>
    </>
  );
}
