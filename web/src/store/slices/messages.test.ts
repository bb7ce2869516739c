import { describe, expect, it } from "vitest";
import { DIRECT_ID, msg } from "../../test/fixtures";
import { NO_MESSAGES, mergeMessages, messagesReducer, olderPageCursor, type MessagesState } from "./messages";

const page = (ids: string[], has_more: boolean) => ({ messages: ids.map((id) => msg(id)).reverse(), has_more });

describe("mergeMessages", () => {
  it("dedupes by id and keeps id order, comparing ids as big numbers", () => {
    const a = msg("9");
    const b = msg("10");
    const c = msg("123456789012345678");
    const merged = mergeMessages([b], [c, a, b, { ...a }]);
    expect(merged.map((m) => m.id)).toEqual(["9", "10", "123456789012345678"]);
    expect(mergeMessages(merged, [a, b])).toBe(merged); // no change, same array
  });

  it("takes the newer copy of a message it already holds", () => {
    const mine = msg("5");
    const stored = { ...mine, created_at: "2026-01-01T12:30:00Z" };
    expect(mergeMessages([mine], [stored])).toEqual([stored]);
  });
});

describe("messagesReducer", () => {
  it("starts a conversation's list with its first live message, before any history", () => {
    const m = msg("5");
    const state = messagesReducer({}, { type: "message_received", message: m, live: true });
    expect(state[DIRECT_ID]).toEqual({ ...NO_MESSAGES, items: [m] });
    // The same message again (at-least-once delivery) changes nothing at all.
    expect(messagesReducer(state, { type: "message_received", message: m, live: true })).toBe(state);
  });

  it("takes has_more from the first newest page only", () => {
    let state: MessagesState = messagesReducer({}, { type: "history_loaded", conversationId: DIRECT_ID, page: page(["20", "21"], true) });
    expect(state[DIRECT_ID]).toMatchObject({ loaded: true, hasMore: true });
    state = messagesReducer(state, { type: "older_history_requested", conversationId: DIRECT_ID });
    state = messagesReducer(state, { type: "older_history_loaded", conversationId: DIRECT_ID, page: page(["10"], false) });
    // Loading the newest page again (a reopened conversation) must not bring back "more".
    state = messagesReducer(state, { type: "history_loaded", conversationId: DIRECT_ID, page: page(["21", "22"], true) });
    expect(state[DIRECT_ID].items.map((m) => m.id)).toEqual(["10", "20", "21", "22"]);
    expect(state[DIRECT_ID].hasMore).toBe(false);
  });

  it("loads older pages one at a time, from the oldest message held", () => {
    let state = messagesReducer({}, { type: "history_loaded", conversationId: DIRECT_ID, page: page(["20", "21"], true) });
    expect(olderPageCursor(state[DIRECT_ID])).toBe("20");
    state = messagesReducer(state, { type: "older_history_requested", conversationId: DIRECT_ID });
    expect(olderPageCursor(state[DIRECT_ID])).toBeNull(); // one request in flight at most
    state = messagesReducer(state, { type: "older_history_failed", conversationId: DIRECT_ID });
    expect(olderPageCursor(state[DIRECT_ID])).toBe("20"); // a failure may be retried
    state = messagesReducer(state, { type: "older_history_loaded", conversationId: DIRECT_ID, page: page(["18", "19"], false) });
    expect(state[DIRECT_ID]).toMatchObject({ hasMore: false, loadingOlder: false });
    expect(olderPageCursor(state[DIRECT_ID])).toBeNull(); // the beginning
    expect(olderPageCursor(undefined)).toBeNull();
    expect(olderPageCursor({ ...NO_MESSAGES, items: [msg("3")] })).toBeNull(); // not loaded yet
  });

  it("forgets a removed conversation's messages", () => {
    const state = messagesReducer({}, { type: "message_received", message: msg("5"), live: true });
    expect(messagesReducer(state, { type: "conversation_removed", conversationId: DIRECT_ID })).toEqual({});
  });
});
