/** Create a group, or add people to one: a title (when creating) and picked people. */
import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import type { ConversationId, User, UserId } from "../protocol";
import { openConversationLink } from "../navigation";
import { useChatStore } from "../store/hooks";
import { displayName } from "../store/selectors";
import { UserSummary } from "./Avatar";
import { useUserSearch } from "./useUserSearch";

type Mode = { kind: "create" } | { kind: "add"; conversationId: ConversationId; memberIds: UserId[] };

export function GroupDialog({ mode, onClose }: { mode: Mode; onClose: () => void }) {
  const store = useChatStore();
  const [title, setTitle] = useState("");
  const [query, setQuery] = useState("");
  const [picked, setPicked] = useState<User[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const search = useUserSearch(query);
  const titleId = useId();
  const headingId = useId();
  const firstField = useRef<HTMLInputElement>(null);
  const creating = mode.kind === "create";
  const existing = new Set<UserId>(mode.kind === "add" ? mode.memberIds : []);

  useEffect(() => {
    firstField.current?.focus();
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);

  function toggle(u: User) {
    setPicked((p) => (p.some((x) => x.id === u.id) ? p.filter((x) => x.id !== u.id) : [...p, u]));
  }

  async function onSubmit(e: FormEvent) {
    e.preventDefault();
    if (creating && !title.trim()) return setError("Give the group a name.");
    if (picked.length === 0) return setError("Pick at least one person.");
    setBusy(true);
    setError(null);
    try {
      if (mode.kind === "create") {
        const c = await store.createGroup(title.trim(), picked.map((u) => u.id));
        openConversationLink(c.id);
      } else {
        await store.addMembers(mode.conversationId, picked.map((u) => u.id));
      }
      onClose();
    } catch (err) {
      setError(err instanceof Error ? err.message : "Something went wrong.");
      setBusy(false);
    }
  }

  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <form className="modal" role="dialog" aria-modal="true" aria-labelledby={headingId} onSubmit={(e) => void onSubmit(e)}>
        <h2 id={headingId}>{creating ? "New group" : "Add people"}</h2>
        {creating && (
          <>
            <label htmlFor={titleId}>Group name</label>
            <input id={titleId} ref={firstField} value={title} maxLength={100} onChange={(e) => setTitle(e.target.value)} />
          </>
        )}
        <label>
          {creating ? "Add people" : "Search people"}
          <input
            ref={creating ? undefined : firstField}
            type="search"
            placeholder="Search by username"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
          />
        </label>
        {picked.length > 0 && (
          <ul className="chips" aria-label="Selected people">
            {picked.map((u) => (
              <li key={u.id}>
                <button type="button" className="chip" onClick={() => toggle(u)} aria-label={`Remove ${displayName(u)}`}>
                  {displayName(u)} ×
                </button>
              </li>
            ))}
          </ul>
        )}
        <ul className="list picker" aria-label="Search results">
          {search.results
            .filter((u) => !existing.has(u.id))
            .map((u) => {
              const on = picked.some((x) => x.id === u.id);
              return (
                <li key={u.id}>
                  <label className="row">
                    <input type="checkbox" checked={on} onChange={() => toggle(u)} aria-label={`Add ${displayName(u)}`} />
                    <UserSummary user={u} />
                  </label>
                </li>
              );
            })}
        </ul>
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        <div className="modal-actions">
          <button type="button" className="ghost" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {creating ? "Create group" : "Add"}
          </button>
        </div>
      </form>
    </div>
  );
}
