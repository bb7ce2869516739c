/**
 * A group's settings: its name (admins rename it), its members with an admin badge
 * (admins make or unmake admins and remove people), adding people (admins) and
 * leaving (anyone). Which controls appear comes from `store/roles.ts`, so nobody is
 * offered a change the server would refuse; a refusal that happens anyway (someone
 * else changed the group meanwhile) is shown as the server worded it.
 */
import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import type { ConversationId, Member, UserId } from "../protocol";
import { openConversationLink } from "../navigation";
import { useChat, useChatStore } from "../store/hooks";
import { isAdmin, leaveOutcome, memberActions, membersByRole, roleChange, titleProblem, type MemberAction } from "../store/roles";
import { displayName } from "../store/selectors";
import { UserSummary } from "./Avatar";

const ACTION_LABEL: Record<MemberAction, string> = {
  make_admin: "Make admin",
  unmake_admin: "Remove admin",
  remove: "Remove",
};

export function GroupSettings({
  conversationId,
  onAddPeople,
  onClose,
}: {
  conversationId: ConversationId;
  onAddPeople: () => void;
  onClose: () => void;
}) {
  const store = useChatStore();
  const conv = useChat((s) => s.conversations.byId[conversationId]);
  const me = useChat((s) => s.me.id);
  // What the admin is typing; null shows the current title, which another admin
  // may change while the panel is open.
  const [draft, setDraft] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [confirmingLeave, setConfirmingLeave] = useState(false);
  const headingId = useId();
  const titleId = useId();
  const closeButton = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    closeButton.current?.focus();
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);

  // Gone from the list (left, or removed by an admin): nothing left to set.
  useEffect(() => {
    if (!conv) onClose();
  }, [conv, onClose]);
  if (!conv || conv.kind !== "group") return null;

  const admin = isAdmin(conv, me);
  const leave = leaveOutcome(conv, me);
  const title = draft ?? conv.title ?? "";
  const problem = titleProblem(title);
  const renamed = title.trim() !== (conv.title ?? "");

  async function run(change: () => Promise<void>): Promise<boolean> {
    setBusy(true);
    setError(null);
    try {
      await change();
      return true;
    } catch (err) {
      setError(err instanceof Error ? err.message : "Something went wrong.");
      return false;
    } finally {
      setBusy(false);
    }
  }

  function onRename(e: FormEvent) {
    e.preventDefault();
    if (problem) return setError(problem);
    void run(async () => {
      await store.updateConversation(conversationId, { title: title.trim() });
      setDraft(null);
    });
  }

  function onAction(action: MemberAction, target: UserId) {
    void run(() =>
      action === "remove"
        ? store.removeMember(conversationId, target)
        : store.updateConversation(conversationId, roleChange(action, target)),
    );
  }

  async function onLeave() {
    if (await run(() => store.leaveConversation(conversationId))) openConversationLink(null);
  }

  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="modal group-settings" role="dialog" aria-modal="true" aria-labelledby={headingId}>
        <div className="settings-header">
          <h2 id={headingId}>Group settings</h2>
          <button type="button" ref={closeButton} className="icon-button" aria-label="Close group settings" onClick={onClose}>
            ×
          </button>
        </div>

        {admin ? (
          <form className="title-form" onSubmit={onRename}>
            <label htmlFor={titleId}>Group name</label>
            <div className="title-row">
              <input
                id={titleId}
                value={title}
                aria-invalid={renamed && problem !== null}
                onChange={(e) => setDraft(e.target.value)}
              />
              <button type="submit" className="primary" disabled={busy || !renamed || problem !== null}>
                Rename
              </button>
            </div>
            {renamed && problem && <p className="field-error">{problem}</p>}
          </form>
        ) : (
          <p className="muted">
            <strong className="settings-title">{conv.title}</strong>
            <br />
            Only admins can rename the group or change who is in it.
          </p>
        )}

        <div className="settings-members-header">
          <h3>{conv.members.length} members</h3>
          {admin && (
            <button type="button" className="ghost" disabled={busy} onClick={onAddPeople}>
              Add people
            </button>
          )}
        </div>
        <ul className="list settings-members" aria-label="Members">
          {membersByRole(conv).map((m) => (
            <MemberRow key={m.user.id} member={m} me={me} actions={memberActions(conv, me, m.user.id)} busy={busy} onAction={onAction} />
          ))}
        </ul>

        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}

        <div className="leave">
          {!leave.allowed ? (
            <p className="muted">{leave.reason}</p>
          ) : confirmingLeave ? (
            <>
              <p>
                Leave {conv.title}? You will no longer get its messages
                {leave.successor ? `, and ${displayName(leave.successor)} will become admin` : ""}.
              </p>
              <div className="modal-actions">
                <button type="button" className="ghost" onClick={() => setConfirmingLeave(false)}>
                  Stay
                </button>
                <button type="button" className="primary danger" disabled={busy} onClick={() => void onLeave()}>
                  Leave
                </button>
              </div>
            </>
          ) : (
            <button type="button" className="ghost danger-text" disabled={busy} onClick={() => setConfirmingLeave(true)}>
              Leave group
            </button>
          )}
        </div>
      </div>
    </div>
  );
}

function MemberRow({
  member,
  me,
  actions,
  busy,
  onAction,
}: {
  member: Member;
  me: UserId;
  actions: MemberAction[];
  busy: boolean;
  onAction: (action: MemberAction, target: UserId) => void;
}) {
  const name = displayName(member.user);
  const self = member.user.id === me;
  return (
    <li className="member-row" data-role={member.role}>
      <span className="member-who">
        <UserSummary user={member.user} />
        {self && <span className="muted">you</span>}
        {member.role === "admin" && <span className="role-badge">Admin</span>}
      </span>
      {actions.length > 0 && (
        <span className="member-actions">
          {actions.map((action) => (
            <button
              key={action}
              type="button"
              className={action === "remove" ? "ghost danger-text" : "ghost"}
              disabled={busy}
              aria-label={actionLabel(action, name, self)}
              onClick={() => onAction(action, member.user.id)}
            >
              {self && action === "unmake_admin" ? "Step down" : ACTION_LABEL[action]}
            </button>
          ))}
        </span>
      )}
    </li>
  );
}

function actionLabel(action: MemberAction, name: string, self: boolean): string {
  switch (action) {
    case "make_admin":
      return `Make ${name} an admin`;
    case "unmake_admin":
      return self ? "Step down as admin" : `Remove ${name} as admin`;
    case "remove":
      return `Remove ${name} from the group`;
  }
}
