import { describe, expect, it } from "vitest";
import { messageId } from "../../lib/ids";
import { DIRECT_ID, bob, change, msg } from "../../test/fixtures";
import { viewer } from "../../test/state";
import type { ChatEvent } from "../events";
import {
  NO_MESSAGES,
  findMessage,
  mergeMessages,
  messagesReducer as reduce,
  newerPageRange,
  olderPageCursor,
  shownMessages,
  type MessagesState,
} from "./messages";

const messagesReducer = (s: MessagesState, e: ChatEvent) => reduce(s, e, viewer);

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

describe("messagesReducer and changes to messages", () => {
  const loaded = (ids: string[], has_more = false) =>
    messagesReducer({}, { type: "history_loaded", conversationId: DIRECT_ID, page: page(ids, has_more) });

  it("applies a change to the message held, once", () => {
    const state = loaded(["5", "6"]);
    const edited = messagesReducer(state, { type: "message_changed", change: change.edited("7", "5", "fixed", "2026-01-01T12:05:00Z") });
    expect(edited[DIRECT_ID].items[0]).toMatchObject({ id: "5", body: "fixed" });
    expect(edited[DIRECT_ID].items[1]).toBe(state[DIRECT_ID].items[1]);
    expect(messagesReducer(edited, { type: "message_changed", change: change.edited("7", "5", "fixed", "2026-01-01T12:05:00Z") })).toBe(edited);
  });

  it("holds a change for a message not loaded yet and applies it when its page loads", () => {
    let state = loaded(["20", "21"], true);
    state = messagesReducer(state, { type: "message_changed", change: change.deleted("30", "10") });
    state = messagesReducer(state, { type: "message_changed", change: change.reaction("31", "11", "👍", true) });
    expect(state[DIRECT_ID].held.map((c) => c.id)).toEqual(["30", "31"]);
    state = messagesReducer(state, { type: "older_history_requested", conversationId: DIRECT_ID });
    state = messagesReducer(state, { type: "older_history_loaded", conversationId: DIRECT_ID, page: page(["10", "11"], false) });
    expect(state[DIRECT_ID].items[0]).toMatchObject({ id: "10", deleted: true, body: "" });
    expect(state[DIRECT_ID].items[1].reactions).toEqual([{ emoji: "👍", count: 1, me: false, user_ids: [bob.id] }]);
    expect(state[DIRECT_ID].held).toEqual([]);
  });

  it("holds changes in a conversation never opened, and applies them to its first live message or page", () => {
    let state = messagesReducer({}, { type: "message_changed", change: change.edited("9", "5", "edited", "2026-01-01T12:05:00Z") });
    expect(state[DIRECT_ID]).toMatchObject({ loaded: false, items: [] });
    state = messagesReducer(state, { type: "message_received", message: msg("5"), live: true });
    expect(state[DIRECT_ID].items[0].body).toBe("edited");
    expect(state[DIRECT_ID].held).toEqual([]);
  });

  it("replaces a held message with its replayed copy, but keeps a deletion", () => {
    let state = loaded(["5"]);
    const replayed = { ...msg("5"), body: "edited elsewhere", edited_at: "2026-01-01T12:05:00Z" };
    state = messagesReducer(state, { type: "message_received", message: replayed, live: true });
    expect(state[DIRECT_ID].items).toEqual([replayed]);
    state = messagesReducer(state, { type: "message_changed", change: change.deleted("9", "5") });
    state = messagesReducer(state, { type: "history_loaded", conversationId: DIRECT_ID, page: { messages: [replayed], has_more: false } });
    expect(state[DIRECT_ID].items[0].deleted).toBe(true);
  });

  it("opens at an old message with a window ending at it, then fills the gap from the top down", () => {
    let state = loaded(["90", "91"], true);
    state = messagesReducer(state, { type: "message_received", message: msg("92"), live: true });
    // Pages are the newest of their range: `after` the target gives the top, not what follows it.
    state = messagesReducer(state, {
      type: "history_around_loaded",
      conversationId: DIRECT_ID,
      older: page(["9", "10"], true),
      newer: page(["60", "61"], true),
    });
    const entry = state[DIRECT_ID];
    expect(entry.items.map((m) => m.id)).toEqual(["9", "10", "60", "61", "90", "91", "92"]);
    expect(entry).toMatchObject({ hasMore: true, newerCursor: "10", loaded: true });
    expect(shownMessages(entry).map((m) => m.id)).toEqual(["9", "10"]); // not past the gap
    expect(newerPageRange(entry)).toEqual({ after: "10", before: "60" });
    state = messagesReducer(state, { type: "newer_history_requested", conversationId: DIRECT_ID });
    expect(newerPageRange(state[DIRECT_ID])).toBeNull(); // one at a time
    state = messagesReducer(state, { type: "newer_history_loaded", conversationId: DIRECT_ID, page: page(["40", "59"], true) });
    expect(state[DIRECT_ID].newerCursor).toBe("10");
    expect(newerPageRange(state[DIRECT_ID])).toEqual({ after: "10", before: "40" });
    state = messagesReducer(state, { type: "newer_history_loaded", conversationId: DIRECT_ID, page: page(["11", "12"], false) });
    expect(state[DIRECT_ID].newerCursor).toBeNull();
    expect(shownMessages(state[DIRECT_ID]).map((m) => m.id)).toEqual(["9", "10", "11", "12", "40", "59", "60", "61", "90", "91", "92"]);
  });

  it("reaches the present at once when the messages after the target are all there are", () => {
    const state = messagesReducer({}, {
      type: "history_around_loaded",
      conversationId: DIRECT_ID,
      older: page(["9", "10"], true),
      newer: page(["11", "12"], false),
    });
    expect(state[DIRECT_ID].newerCursor).toBeNull();
    expect(shownMessages(state[DIRECT_ID]).map((m) => m.id)).toEqual(["9", "10", "11", "12"]);
  });

  it("goes back to the present when the newest page loads after a jump", () => {
    let state = messagesReducer({}, {
      type: "history_around_loaded",
      conversationId: DIRECT_ID,
      older: page(["9", "10"], false),
      newer: page(["11"], true),
    });
    state = messagesReducer(state, { type: "history_loaded", conversationId: DIRECT_ID, page: page(["90", "91"], true) });
    expect(state[DIRECT_ID]).toMatchObject({ newerCursor: null, hasMore: true });
    expect(state[DIRECT_ID].items.map((m) => m.id)).toEqual(["90", "91"]);
  });

  it("keeps a message fetched to quote it, with the held changes applied", () => {
    let state = messagesReducer({}, { type: "message_changed", change: change.deleted("9", "3") });
    state = messagesReducer(state, { type: "message_fetched", message: msg("3") });
    expect(findMessage(state[DIRECT_ID], messageId("3"))).toMatchObject({ deleted: true });
    expect(state[DIRECT_ID].held).toHaveLength(1); // still waiting for the history to hold it
    state = messagesReducer(state, { type: "message_changed", change: change.reaction("10", "4", "👍", true) });
    state = messagesReducer(state, { type: "message_fetched", message: msg("4") });
    state = messagesReducer(state, { type: "message_changed", change: change.edited("11", "4", "new", "2026-01-01T12:05:00Z") });
    expect(findMessage(state[DIRECT_ID], messageId("4"))).toMatchObject({ body: "new", reactions: [{ emoji: "👍" }] });
  });
});
