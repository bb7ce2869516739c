import { describe, expect, it } from "vitest";
import { messageId } from "../../lib/ids";
import { DIRECT_ID, alice, bob, change, msg } from "../../test/fixtures";
import { viewer } from "../../test/state";
import type { ChatEvent } from "../events";
import type { OutgoingChange } from "../state";
import { changesReducer, withMyChanges, type ChangesState } from "./changes";

const edit: OutgoingChange = {
  client_msg_id: "e1",
  conversation_id: DIRECT_ID,
  message_id: messageId("5"),
  op: { kind: "edit", body: "fixed" },
  created_at: "2026-01-01T12:30:00Z",
  status: "pending",
};
const after = (...events: ChatEvent[]) => events.reduce<ChangesState>((s, e) => changesReducer(s, e, viewer), {});
/** My own edit event coming back, with the change's client_msg_id. */
const myEvent = { ...change.edited("9", "5", "fixed", "2026-01-01T12:30:01Z", alice), client_msg_id: "e1" };

describe("changesReducer", () => {
  it("keeps a change after its ack, until its own event comes back", () => {
    const acked = after({ type: "change_queued", change: edit }, { type: "change_acked", clientMsgId: "e1" });
    expect(acked.e1.status).toBe("acked");
    // Someone else's event with the same key is not mine.
    const fromBob = { ...change.edited("9", "5", "x", "2026-01-01T12:30:01Z", bob), client_msg_id: "e1" };
    expect(changesReducer(acked, { type: "message_changed", change: fromBob }, viewer)).toBe(acked);
    expect(changesReducer(acked, { type: "message_changed", change: myEvent }, viewer)).toEqual({});
  });

  it("settles changes acknowledged before a sync at its end; pending ones stay to be resent", () => {
    const e2 = { ...edit, client_msg_id: "e2" };
    const e3 = { ...edit, client_msg_id: "e3" };
    const state = after(
      { type: "change_queued", change: edit },
      { type: "change_queued", change: e2 },
      { type: "change_queued", change: e3 },
      { type: "change_acked", clientMsgId: "e1" },
      { type: "sync_started" },
      // Acknowledged during the replay: its event comes live, after it.
      { type: "change_acked", clientMsgId: "e3" },
      { type: "synced", until: null },
    );
    expect(Object.keys(state).sort()).toEqual(["e2", "e3"]);
    expect(state.e3.status).toBe("acked");
  });

  it("drops a refused change", () => {
    expect(after({ type: "change_queued", change: edit }, { type: "change_failed", clientMsgId: "e1" })).toEqual({});
  });
});

describe("withMyChanges", () => {
  it("shows my changes over the message, in the order made", () => {
    const m = msg("5");
    expect(withMyChanges(m, [], alice.id)).toBe(m);
    const react = (on: boolean, id: string): OutgoingChange => ({ ...edit, client_msg_id: id, op: { kind: "react", emoji: "👍", on } });
    const shown = withMyChanges(m, [edit, react(true, "r1")], alice.id);
    expect(shown).toMatchObject({ body: "fixed", edited_at: edit.created_at, reactions: [{ emoji: "👍", count: 1, me: true }] });
    expect(withMyChanges(m, [react(true, "r1"), react(false, "r2")], alice.id).reactions).toEqual([]);
    const deleted = withMyChanges(m, [edit, { ...edit, client_msg_id: "d1", op: { kind: "delete" } }], alice.id);
    expect(deleted).toMatchObject({ deleted: true, body: "" });
    expect(withMyChanges(msg("6"), [edit], alice.id).body).toBe("m6");
  });
});
