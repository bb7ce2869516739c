import { describe, expect, it } from "vitest";
import { messageId } from "../../lib/ids";
import { DIRECT_ID, alice, bob, change, direct, msg } from "../../test/fixtures";
import { viewer } from "../../test/state";
import type { ConversationsState } from "../state";
import { conversationsReducer } from "./conversations";

function listed(...conversations: ReturnType<typeof direct>[]): ConversationsState {
  return conversationsReducer({ byId: {}, loaded: false }, { type: "conversations_listed", conversations }, viewer);
}

describe("conversationsReducer", () => {
  it("counts unread only for new messages from others in conversations not on screen", () => {
    let state = listed(direct(DIRECT_ID, msg("50"), 2));
    const receive = (m: ReturnType<typeof msg>, v = viewer) =>
      (state = conversationsReducer(state, { type: "message_received", message: m, live: true }, v));
    receive(msg("49")); // a sync replay of one the list counted
    expect(state.byId[DIRECT_ID].unread_count).toBe(2);
    receive(msg("51"));
    expect(state.byId[DIRECT_ID]).toMatchObject({ unread_count: 3, last_message: { id: "51" } });
    receive(msg("52"), { ...viewer, activeId: DIRECT_ID });
    expect(state.byId[DIRECT_ID].unread_count).toBe(3); // on screen: seen, not counted
    receive(msg("53"), { ...viewer, activeId: DIRECT_ID, visible: false });
    expect(state.byId[DIRECT_ID].unread_count).toBe(4); // open in a hidden tab: not seen
    receive(msg("54", alice));
    expect(state.byId[DIRECT_ID].unread_count).toBe(0); // writing means having read
  });

  it("keeps a last message newer than the list's snapshot, with its unread count", () => {
    let state = listed(direct(DIRECT_ID, msg("50"), 0));
    state = conversationsReducer(state, { type: "message_received", message: msg("60"), live: true }, viewer);
    // The list was requested before 60 arrived and answers after.
    state = conversationsReducer(state, { type: "conversations_listed", conversations: [direct(DIRECT_ID, msg("50"), 0)] }, viewer);
    expect(state.byId[DIRECT_ID]).toMatchObject({ last_message: { id: "60" }, unread_count: 1 });
    state = conversationsReducer(state, { type: "conversation_received", conversation: direct(DIRECT_ID, msg("70"), 2) }, viewer);
    expect(state.byId[DIRECT_ID]).toMatchObject({ last_message: { id: "70" }, unread_count: 2 });
  });

  it("moves read markers forward only, and my own receipt clears my unread count", () => {
    let state = listed(direct(DIRECT_ID, msg("62"), 3));
    const read = (userId: typeof bob.id, id: string) =>
      (state = conversationsReducer(state, { type: "read_receipt", conversationId: DIRECT_ID, userId, messageId: messageId(id) }, viewer));
    const marker = (userId: typeof bob.id) => state.byId[DIRECT_ID].members.find((m) => m.user.id === userId)?.last_read_id;
    read(bob.id, "61");
    expect(marker(bob.id)).toBe("61");
    const before = state;
    read(bob.id, "55");
    expect(state).toBe(before); // late and older: nothing changes
    expect(state.byId[DIRECT_ID].unread_count).toBe(3);
    read(alice.id, "62"); // read on another device
    expect(marker(alice.id)).toBe("62");
    expect(state.byId[DIRECT_ID].unread_count).toBe(0);
  });

  it("clears the unread count of a conversation the user has seen", () => {
    const state = conversationsReducer(listed(direct(DIRECT_ID, msg("62"), 3)), { type: "conversation_seen", conversationId: DIRECT_ID }, viewer);
    expect(state.byId[DIRECT_ID].unread_count).toBe(0);
    expect(conversationsReducer(state, { type: "conversation_seen", conversationId: DIRECT_ID }, viewer)).toBe(state);
  });

  it("drops a conversation removed live, and marks the list loaded even when empty", () => {
    expect(listed().loaded).toBe(true);
    const state = conversationsReducer(listed(direct()), { type: "conversation_removed", conversationId: DIRECT_ID }, viewer);
    expect(state.byId).toEqual({});
  });

  it("counts the unread messages that mention me, and clears them with the rest", () => {
    let state = listed(direct(DIRECT_ID, msg("50"), 0));
    const receive = (m: ReturnType<typeof msg>, v = viewer) =>
      (state = conversationsReducer(state, { type: "message_received", message: m, live: true }, v));
    const mentioning = (id: string) => ({ ...msg(id), mentions: [alice.id] });
    receive(mentioning("51"));
    receive(msg("52"));
    expect(state.byId[DIRECT_ID]).toMatchObject({ unread_count: 2, unread_mentions: 1 });
    receive(mentioning("51")); // the same message again
    receive(mentioning("49")); // an old one, replayed
    expect(state.byId[DIRECT_ID].unread_mentions).toBe(1);
    receive(mentioning("53"), { ...viewer, activeId: DIRECT_ID }); // seen as it arrives
    expect(state.byId[DIRECT_ID].unread_mentions).toBe(1);
    receive({ ...msg("54"), mentions: [bob.id] }); // someone else is mentioned
    expect(state.byId[DIRECT_ID].unread_mentions).toBe(1);
    state = conversationsReducer(state, { type: "conversation_seen", conversationId: DIRECT_ID }, viewer);
    expect(state.byId[DIRECT_ID]).toMatchObject({ unread_count: 0, unread_mentions: 0 });
    receive(mentioning("55"));
    receive(msg("56", alice));
    expect(state.byId[DIRECT_ID].unread_mentions).toBe(0); // writing means having read
  });

  it("shows an edit or a deletion of the last message in the list", () => {
    let state = listed(direct(DIRECT_ID, msg("50"), 0));
    state = conversationsReducer(state, { type: "message_changed", change: change.edited("51", "50", "fixed", "2026-01-01T13:00:00Z") }, viewer);
    expect(state.byId[DIRECT_ID].last_message).toMatchObject({ id: "50", body: "fixed" });
    state = conversationsReducer(state, { type: "message_changed", change: change.deleted("52", "50") }, viewer);
    expect(state.byId[DIRECT_ID].last_message).toMatchObject({ deleted: true, body: "" });
    const same = conversationsReducer(state, { type: "message_changed", change: change.deleted("53", "49") }, viewer);
    expect(same).toBe(state);
  });
});
