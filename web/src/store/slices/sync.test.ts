import { describe, expect, it } from "vitest";
import { messageId } from "../../lib/ids";
import { change, direct, msg } from "../../test/fixtures";
import type { ChatEvent } from "../events";
import type { SyncCursor } from "../state";
import { syncReducer } from "./sync";

const start: SyncCursor = { lastSeenId: null, replaying: false, seenDuringReplay: null };
const live = (id: string): ChatEvent => ({ type: "message_received", message: msg(id), live: true });
const after = (...events: ChatEvent[]) => events.reduce(syncReducer, start);

describe("syncReducer", () => {
  it("starts from the newest last message of the listed conversations", () => {
    const cursor = after({ type: "conversations_listed", conversations: [direct(undefined, msg("40")), direct(undefined, msg("9"))] });
    expect(cursor.lastSeenId).toBe("40");
  });

  it("advances with the live stream, but not with a message made from an ack", () => {
    expect(after(live("41")).lastSeenId).toBe("41");
    expect(after(live("41"), { type: "message_received", message: msg("99"), live: false }).lastSeenId).toBe("41");
  });

  it("does not skip what a replay cut short by a drop had not delivered yet", () => {
    // The replay has reached 42 and a live 90 slipped in; the drop means 43…89 may be missing.
    const dropped = after(live("40"), { type: "sync_started" }, live("42"), live("90"));
    expect(dropped.lastSeenId).toBe("40");
    // The next replay completes: everything it carried counts, and so does `until`.
    const completed = [{ type: "sync_started" } as const, live("91"), { type: "synced", until: messageId("89") } as const].reduce(
      syncReducer,
      dropped,
    );
    expect(completed).toEqual({ lastSeenId: "91", replaying: false, seenDuringReplay: null });
    expect(syncReducer(completed, { type: "synced", until: null })).toEqual(completed);
  });

  it("counts the ids of edits, deletions and reactions, which are events on the log too", () => {
    const cursor = after(live("40"), { type: "message_changed", change: change.reaction("45", "40", "👍", true) });
    expect(cursor.lastSeenId).toBe("45");
    const replaying = after({ type: "sync_started" }, { type: "message_changed", change: change.deleted("46", "40") });
    expect(replaying).toMatchObject({ lastSeenId: null, seenDuringReplay: "46" });
  });
});
