import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Conversation, Message } from "../protocol";
import { MAX_BODY_CHARS } from "../protocol";
import { conversationId, messageId } from "../lib/ids";
import { FakeApi, FakeTransport } from "../test/fakes";
import { DIRECT_ID, alice, bob, change, direct, msg } from "../test/fixtures";
import { ACK_TIMEOUT_MS, AROUND_PAGE, ChatStore, TYPING_SHOW_MS, type ChatNotifier } from "./chatStore";
import { withMyChanges } from "./slices/changes";

const OTHER_ID = conversationId("200");
const NEW_ID = conversationId("300");

function setup(conversations: Conversation[] = [direct()], history: Message[] = [], notifier?: ChatNotifier) {
  const api = new FakeApi(conversations, () => ({ messages: [...history].reverse(), has_more: false }));
  const transport = new FakeTransport();
  const store = new ChatStore(alice, api, Date.now, notifier);
  store.attach(transport);
  return { api, transport, store, s: () => store.getState() };
}

describe("ChatStore", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("shows a message once whether it arrives live, by sync or from history", async () => {
    const m = msg("5");
    const { store, transport, s } = setup([direct()], [m]);
    await store.loadConversations();
    transport.emit({ type: "message", message: m });
    transport.emit({ type: "message", message: m }); // at-least-once delivery
    transport.goReady(alice); // reconnect → sync replays it again
    await vi.advanceTimersByTimeAsync(0);
    transport.emit({ type: "message", message: m });
    await store.loadLatest(DIRECT_ID);
    expect(s().messages[DIRECT_ID].items.map((x) => x.id)).toEqual(["5"]);
    expect(s().conversations.byId[DIRECT_ID].unread_count).toBe(1);
  });

  it("syncs from the newest id it has seen after every ready", async () => {
    const { store, transport } = setup([direct(DIRECT_ID, msg("40"))]);
    void store.loadConversations(); // the first ready waits for it
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.ofType("sync")).toEqual([{ type: "sync", since: messageId("40") }]);
    transport.emit({ type: "message", message: msg("41") });
    transport.emit({ type: "synced", until: messageId("41") });
    transport.goOffline();
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.ofType("sync").at(-1)).toEqual({ type: "sync", since: messageId("41") });
  });

  it("does not skip what a replay cut short by a drop had not delivered yet", async () => {
    const { store, transport } = setup([direct(DIRECT_ID, msg("40"))]);
    void store.loadConversations(); // the first ready waits for it
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    // The replay has reached 42 and a live 90 slips in; the connection drops
    // before `synced`, so 43…89 may never have been sent.
    transport.emit({ type: "message", message: msg("42") });
    transport.emit({ type: "message", message: msg("90") });
    transport.goOffline();
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.ofType("sync").at(-1)).toEqual({ type: "sync", since: messageId("40") });
    // This time the replay completes: everything it carried counts.
    transport.emit({ type: "message", message: msg("91") });
    transport.emit({ type: "synced", until: messageId("89") });
    transport.emit({ type: "message", message: msg("92") });
    transport.goOffline();
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.ofType("sync").at(-1)).toEqual({ type: "sync", since: messageId("92") });
  });

  it("asks again, backing off, when a sync is refused while history catches up", async () => {
    const { store, transport, s } = setup([direct(DIRECT_ID, msg("40"))]);
    void store.loadConversations();
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    const refused = { type: "error", code: "unavailable", message: "message history is unavailable right now" } as const;
    // The server's wait is a floor.
    transport.emit({ ...refused, retry_after_ms: 1_000 });
    await vi.advanceTimersByTimeAsync(999);
    expect(transport.ofType("sync")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.ofType("sync")).toHaveLength(2);
    // Refused again: the wait doubles (1–2 s with jitter).
    transport.emit(refused);
    await vi.advanceTimersByTimeAsync(999);
    expect(transport.ofType("sync")).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1_001);
    expect(transport.ofType("sync")).toHaveLength(3);
    expect(transport.ofType("sync").at(-1)).toEqual({ type: "sync", since: messageId("40") });
    transport.emit({ type: "synced", until: messageId("41") });
    expect(s().sync.replaying).toBe(false);
    // A refusal of something else (typing, say) after the sync is not a sync to retry.
    transport.emit(refused);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(transport.ofType("sync")).toHaveLength(3);
  });

  it("drops a pending sync retry when the connection goes; the next ready syncs", async () => {
    const { store, transport } = setup([direct(DIRECT_ID, msg("40"))]);
    void store.loadConversations();
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    transport.emit({ type: "error", code: "unavailable", message: "behind", retry_after_ms: 1_000 });
    transport.goOffline();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(transport.ofType("sync")).toHaveLength(1);
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.ofType("sync")).toHaveLength(2);
  });

  it("sends optimistically and settles on ack and echo without duplicating", async () => {
    const { store, transport, s } = setup();
    await store.loadConversations();
    const cid = store.sendMessage(DIRECT_ID, "  hello  ")!;
    expect(s().outbox[cid]).toMatchObject({ status: "pending", body: "hello" });
    expect(transport.ofType("send")).toEqual([{ type: "send", conversation_id: DIRECT_ID, client_msg_id: cid, body: "hello" }]);
    transport.emit({ type: "ack", client_msg_id: cid, message_id: messageId("77"), conversation_id: DIRECT_ID, event_id: messageId("77") });
    expect(s().outbox[cid]).toBeUndefined();
    transport.emit({
      type: "message",
      message: { id: messageId("77"), conversation_id: DIRECT_ID, sender_id: alice.id, body: "hello", client_msg_id: cid, created_at: "2026-01-01T12:00:00Z", reply_to: null, mentions: [], edited_at: null, deleted: false, reactions: [] },
    });
    expect(s().messages[DIRECT_ID].items).toHaveLength(1);
    expect(s().messages[DIRECT_ID].items[0].created_at).toBe("2026-01-01T12:00:00Z"); // the server's copy wins
    expect(s().conversations.byId[DIRECT_ID].last_message?.id).toBe("77");
  });

  it("marks a refused send failed and retries it with the same client_msg_id", async () => {
    const { store, transport, s } = setup();
    await store.loadConversations();
    const cid = store.sendMessage(DIRECT_ID, "hi")!;
    transport.emit({ type: "error", code: "rate_limited", message: "Slow down", client_msg_id: cid });
    expect(s().outbox[cid]).toMatchObject({ status: "failed", error: "Slow down" });
    store.retry(cid);
    expect(s().outbox[cid].status).toBe("pending");
    const sends = transport.ofType("send");
    expect(sends).toHaveLength(2);
    expect(sends[1].client_msg_id).toBe(cid);
  });

  it("accepts a body of emoji up to the limit in code points, and refuses one past it", async () => {
    const { store, transport, s } = setup();
    await store.loadConversations();
    expect(store.sendMessage(DIRECT_ID, "😀".repeat(MAX_BODY_CHARS))).not.toBeNull();
    expect(store.sendMessage(DIRECT_ID, "😀".repeat(MAX_BODY_CHARS + 1))).toBeNull();
    expect(transport.ofType("send")).toHaveLength(1);
    expect(s().view.notice).toBe(`Messages can be at most ${MAX_BODY_CHARS} characters.`);
  });

  it("fails a send that is never acknowledged", async () => {
    const { store, s } = setup();
    await store.loadConversations();
    const cid = store.sendMessage(DIRECT_ID, "hi")!;
    await vi.advanceTimersByTimeAsync(ACK_TIMEOUT_MS);
    expect(s().outbox[cid].status).toBe("failed");
  });

  it("queues sends while disconnected and sends them after the sync on ready", async () => {
    const { store, transport, s } = setup();
    await store.loadConversations();
    transport.goOffline();
    const cid = store.sendMessage(DIRECT_ID, "while offline")!;
    await vi.advanceTimersByTimeAsync(ACK_TIMEOUT_MS * 2);
    expect(s().outbox[cid].status).toBe("pending"); // waiting, not failed
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.sent.map((f) => f.type)).toEqual(["sync", "send"]);
    expect(transport.ofType("send")[0].client_msg_id).toBe(cid);
  });

  it("does not fail a send that was in flight when the connection dropped; resends it", async () => {
    const { store, transport, s } = setup();
    await store.loadConversations();
    const cid = store.sendMessage(DIRECT_ID, "in flight")!;
    transport.goOffline();
    await vi.advanceTimersByTimeAsync(ACK_TIMEOUT_MS * 2);
    expect(s().outbox[cid].status).toBe("pending");
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.ofType("send").map((f) => f.client_msg_id)).toEqual([cid, cid]);
  });

  it("counts unread only for new messages from others in conversations not on screen", async () => {
    const { store, transport, s } = setup([direct(DIRECT_ID, msg("50"), 2)]);
    await store.loadConversations();
    transport.emit({ type: "message", message: msg("49") }); // a sync replay of an old one
    expect(s().conversations.byId[DIRECT_ID].unread_count).toBe(2);
    transport.emit({ type: "message", message: msg("51") });
    expect(s().conversations.byId[DIRECT_ID].unread_count).toBe(3);
    transport.emit({ type: "message", message: msg("52", alice) });
    expect(s().conversations.byId[DIRECT_ID].unread_count).toBe(0);
  });

  it("marks the open conversation read and updates receipts from read frames", async () => {
    const { store, transport, s } = setup([direct(DIRECT_ID, msg("60"), 1)], [msg("60")]);
    await store.loadConversations();
    store.openConversation(DIRECT_ID);
    await vi.advanceTimersByTimeAsync(0);
    expect(transport.ofType("read")).toEqual([{ type: "read", conversation_id: DIRECT_ID, message_id: messageId("60") }]);
    expect(s().conversations.byId[DIRECT_ID].unread_count).toBe(0);
    transport.emit({ type: "message", message: msg("61") });
    expect(transport.ofType("read").at(-1)).toEqual({ type: "read", conversation_id: DIRECT_ID, message_id: messageId("61") });
    expect(s().conversations.byId[DIRECT_ID].unread_count).toBe(0);
    // Not while the tab is hidden.
    store.setVisible(false);
    transport.emit({ type: "message", message: msg("62") });
    expect(transport.ofType("read")).toHaveLength(2);
    expect(s().conversations.byId[DIRECT_ID].unread_count).toBe(1);
    store.setVisible(true);
    expect(transport.ofType("read").at(-1)?.message_id).toBe("62");
    transport.emit({ type: "read", conversation_id: DIRECT_ID, user_id: bob.id, message_id: messageId("61") });
    const bobMember = s().conversations.byId[DIRECT_ID].members.find((m) => m.user.id === bob.id)!;
    expect(bobMember.last_read_id).toBe("61");
    // An older receipt never moves it back.
    transport.emit({ type: "read", conversation_id: DIRECT_ID, user_id: bob.id, message_id: messageId("55") });
    expect(s().conversations.byId[DIRECT_ID].members.find((m) => m.user.id === bob.id)!.last_read_id).toBe("61");
  });

  it("shows typing for a few seconds, and stops when the typist's message arrives", async () => {
    const { store, transport, s } = setup();
    await store.loadConversations();
    transport.emit({ type: "typing", conversation_id: DIRECT_ID, user_id: bob.id });
    expect(Object.keys(s().typing[DIRECT_ID])).toEqual([bob.id]);
    await vi.advanceTimersByTimeAsync(TYPING_SHOW_MS);
    expect(s().typing[DIRECT_ID]).toEqual({});
    transport.emit({ type: "typing", conversation_id: DIRECT_ID, user_id: bob.id });
    transport.emit({ type: "message", message: msg("70") });
    expect(s().typing[DIRECT_ID]).toEqual({});
  });

  it("throttles its own typing notifications", async () => {
    const { store, transport } = setup();
    store.notifyTyping(DIRECT_ID);
    store.notifyTyping(DIRECT_ID);
    expect(transport.ofType("typing")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(3_000);
    store.notifyTyping(DIRECT_ID);
    expect(transport.ofType("typing")).toHaveLength(2);
  });

  it("fetches a conversation it first hears about through a message", async () => {
    const { store, transport, api, s } = setup([]);
    await store.loadConversations();
    api.conversations.set(OTHER_ID, direct(OTHER_ID)); // created while the list was loading
    transport.emit({ type: "message", message: msg("80", bob, OTHER_ID) });
    await vi.advanceTimersByTimeAsync(0);
    expect(api.callsTo("getConversation")).toEqual([[OTHER_ID]]);
    expect(s().conversations.byId[OTHER_ID]).toBeDefined();
    expect(s().messages[OTHER_ID].items.map((m) => m.id)).toEqual(["80"]);
  });

  it("tracks presence and conversations added or removed live", async () => {
    const { store, transport, s } = setup([]);
    await store.loadConversations();
    transport.emit({ type: "presence", user_id: bob.id, online: true });
    expect(s().presence[bob.id]).toBe(true);
    transport.emit({ type: "conversation", conversation: direct(NEW_ID) });
    expect(s().conversations.byId[NEW_ID]).toBeDefined();
    store.openConversation(NEW_ID);
    transport.emit({ type: "removed", conversation_id: NEW_ID });
    expect(s().conversations.byId[NEW_ID]).toBeUndefined();
    expect(s().view.activeId).toBeNull();
  });

  it("forgets presence while disconnected, since offline events are missed", () => {
    const { transport, s } = setup([]);
    transport.emit({ type: "presence", user_id: bob.id, online: true });
    transport.goOffline();
    expect(s().presence).toEqual({});
    expect(s().connection).toBe("reconnecting");
    transport.goReady(alice);
    transport.emit({ type: "presence", user_id: bob.id, online: true });
    expect(s().presence[bob.id]).toBe(true);
  });

  it("keeps the chat across connections, and hears nothing from a detached one", async () => {
    const api = new FakeApi([direct(DIRECT_ID, msg("40"))]);
    const store = new ChatStore(alice, api);
    const first = new FakeTransport();
    const detach = store.attach(first);
    await store.loadConversations();
    first.emit({ type: "message", message: msg("41") });
    detach();
    expect(store.getState().connection).toBe("offline");
    first.emit({ type: "message", message: msg("42") }); // a socket on its way out
    const second = new FakeTransport();
    store.attach(second);
    second.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    expect(store.getState().messages[DIRECT_ID].items.map((m) => m.id)).toEqual(["41"]);
    expect(second.ofType("sync")).toEqual([{ type: "sync", since: messageId("41") }]);
    expect(first.ofType("sync")).toEqual([]);
  });

  it("loads older history by cursor and merges it", async () => {
    const page1 = Array.from({ length: 3 }, (_, i) => msg(String(20 + i)));
    const older = [msg("10"), msg("11")];
    const api = new FakeApi([direct(DIRECT_ID, page1[2])], (_id, { before }) =>
      before === page1[0].id
        ? { messages: [...older].reverse(), has_more: false }
        : { messages: [...page1].reverse(), has_more: true },
    );
    const store = new ChatStore(alice, api);
    store.attach(new FakeTransport());
    await store.loadConversations();
    await store.loadLatest(DIRECT_ID);
    expect(store.getState().messages[DIRECT_ID].hasMore).toBe(true);
    await store.loadOlder(DIRECT_ID);
    const entry = store.getState().messages[DIRECT_ID];
    expect(entry.items.map((m) => m.id)).toEqual(["10", "11", "20", "21", "22"]);
    expect(entry.hasMore).toBe(false);
    expect(api.callsTo("history").at(-1)).toEqual([DIRECT_ID, { before: "20", limit: 50 }]);
  });

  /** Alice's message 5 as shown, with her changes on their way. */
  const shown = (s: ReturnType<ChatStore["getState"]>, id = "5") =>
    withMyChanges(s.messages[DIRECT_ID].items.find((m) => m.id === id)!, Object.values(s.changes), alice.id);

  it("edits optimistically and settles when the edit's own event comes back, not before", async () => {
    const { store, transport, s } = setup([direct()], [msg("5", alice)]);
    await store.loadConversations();
    await store.loadLatest(DIRECT_ID);
    expect(store.editMessage(DIRECT_ID, messageId("5"), "  fixed  ")).toBe(true);
    const [frame] = transport.ofType("edit");
    expect(frame).toMatchObject({ conversation_id: DIRECT_ID, message_id: "5", body: "fixed" });
    expect(shown(s())).toMatchObject({ body: "fixed" });
    transport.emit({ type: "ack", client_msg_id: frame.client_msg_id, message_id: messageId("5"), conversation_id: DIRECT_ID, event_id: messageId("6") });
    expect(shown(s()).body).toBe("fixed"); // no flash of the old body before the event
    await vi.advanceTimersByTimeAsync(ACK_TIMEOUT_MS * 2);
    expect(s().view.notice).toBeNull(); // acknowledged: no timeout
    const event = { ...change.edited("6", "5", "fixed", "2026-01-01T12:10:00Z", alice), client_msg_id: frame.client_msg_id };
    transport.emit(event);
    expect(s().changes).toEqual({});
    expect(s().messages[DIRECT_ID].items[0]).toMatchObject({ body: "fixed", edited_at: "2026-01-01T12:10:00Z" });
    // An empty edit is refused before it is sent.
    expect(store.editMessage(DIRECT_ID, messageId("5"), "   ")).toBe(false);
    expect(transport.ofType("edit")).toHaveLength(1);
  });

  it("resends a change with the same client_msg_id after a reconnect", async () => {
    const { store, transport, s } = setup([direct()], [msg("5")]);
    await store.loadConversations();
    await store.loadLatest(DIRECT_ID);
    transport.goOffline();
    store.toggleReaction(DIRECT_ID, messageId("5"), "👍");
    expect(transport.ofType("react")).toHaveLength(0);
    expect(shown(s()).reactions).toMatchObject([{ emoji: "👍", count: 1, me: true }]);
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    transport.goOffline(); // dropped before the ack
    transport.goReady(alice);
    await vi.advanceTimersByTimeAsync(0);
    const reacts = transport.ofType("react");
    expect(reacts).toHaveLength(2);
    expect(reacts[0]).toMatchObject({ emoji: "👍", on: true, message_id: "5" });
    expect(reacts[1].client_msg_id).toBe(reacts[0].client_msg_id);
  });

  it("toggles a reaction off when I have it, and drops a refused change with a notice", async () => {
    const m = { ...msg("5"), reactions: [{ emoji: "🎉", count: 2, me: true, user_ids: [bob.id, alice.id] }] };
    const { store, transport, s } = setup([direct()], [m]);
    await store.loadConversations();
    await store.loadLatest(DIRECT_ID);
    store.toggleReaction(DIRECT_ID, messageId("5"), "🎉");
    const [frame] = transport.ofType("react");
    expect(frame.on).toBe(false);
    expect(shown(s()).reactions).toMatchObject([{ emoji: "🎉", count: 1, me: false }]);
    transport.emit({ type: "error", code: "rate_limited", message: "Slow down.", client_msg_id: frame.client_msg_id });
    expect(s().changes).toEqual({});
    expect(shown(s()).reactions).toMatchObject([{ emoji: "🎉", count: 2, me: true }]);
    expect(s().view.notice).toBe("Reaction not saved: Slow down.");
  });

  it("drops a change never acknowledged, and says so", async () => {
    const { store, transport, s } = setup([direct()], [msg("5", alice)]);
    await store.loadConversations();
    await store.loadLatest(DIRECT_ID);
    store.deleteMessage(DIRECT_ID, messageId("5"));
    expect(transport.ofType("delete")).toHaveLength(1);
    expect(shown(s())).toMatchObject({ deleted: true });
    await vi.advanceTimersByTimeAsync(ACK_TIMEOUT_MS);
    expect(s().changes).toEqual({});
    expect(s().view.notice).toMatch(/^Not deleted/);
  });

  it("applies live edits, deletions and reactions from others, and sends replies with reply_to", async () => {
    const { store, transport, s } = setup([direct()], [msg("5"), msg("6")]);
    await store.loadConversations();
    await store.loadLatest(DIRECT_ID);
    transport.emit(change.reaction("7", "5", "👍", true));
    transport.emit(change.reaction("7", "5", "👍", true)); // delivered twice
    transport.emit(change.deleted("8", "6"));
    expect(s().messages[DIRECT_ID].items.map((m) => [m.reactions.length, m.deleted])).toEqual([[1, false], [0, true]]);
    const cid = store.sendMessage(DIRECT_ID, "yes", messageId("5"))!;
    expect(transport.ofType("send")).toEqual([{ type: "send", conversation_id: DIRECT_ID, client_msg_id: cid, body: "yes", reply_to: "5" }]);
    transport.emit({ type: "ack", client_msg_id: cid, message_id: messageId("9"), conversation_id: DIRECT_ID, event_id: messageId("9") });
    expect(s().messages[DIRECT_ID].items.at(-1)).toMatchObject({ id: "9", reply_to: "5" });
  });

  it("opens a conversation around an old message, with ids past 2^53 done exactly", async () => {
    const target = "9007199254740993"; // 2^53 + 1: a Number would round it
    const { store, api, s } = setup([direct()]);
    await store.loadConversations();
    await store.openAtMessage(DIRECT_ID, messageId(target));
    expect(api.callsTo("history")).toEqual([
      [DIRECT_ID, { before: "9007199254740994", limit: AROUND_PAGE }],
      [DIRECT_ID, { after: target, limit: AROUND_PAGE }],
    ]);
    expect(s().view).toMatchObject({ activeId: DIRECT_ID, focus: { conversationId: DIRECT_ID, messageId: target } });
    expect(s().messages[DIRECT_ID].loaded).toBe(true);
    store.openConversation(DIRECT_ID); // the URL follows: no newest page on top of the window
    expect(api.callsTo("history")).toHaveLength(2);
  });

  it("fetches the original of a reply once, and remembers one that is gone", async () => {
    const { store, api, s } = setup([direct()]);
    api.messages.set(messageId("3"), msg("3"));
    store.fetchQuoted(DIRECT_ID, messageId("3"));
    store.fetchQuoted(DIRECT_ID, messageId("3"));
    store.fetchQuoted(DIRECT_ID, messageId("4")); // 404
    await vi.advanceTimersByTimeAsync(0);
    store.fetchQuoted(DIRECT_ID, messageId("3"));
    store.fetchQuoted(DIRECT_ID, messageId("4"));
    expect(api.callsTo("getMessage")).toEqual([
      [DIRECT_ID, "3"],
      [DIRECT_ID, "4"],
    ]);
    expect(s().messages[DIRECT_ID].quoted[messageId("3")]).toMatchObject({ id: "3" });
    expect(s().messages[DIRECT_ID].quoted[messageId("4")]).toBeNull(); // shown as "original deleted"
  });

  it("notifies of a direct message or a mention only while the page is hidden", async () => {
    const notify = vi.fn<ChatNotifier["notify"]>();
    const group: Conversation = { ...direct(OTHER_ID), kind: "group", title: "Trip" };
    const { store, transport } = setup([direct(), group], [], { notify });
    await store.loadConversations();
    transport.emit({ type: "message", message: msg("10") });
    expect(notify).not.toHaveBeenCalled(); // visible
    store.setVisible(false);
    transport.emit({ type: "message", message: msg("11") });
    transport.emit({ type: "message", message: msg("12", bob, OTHER_ID) }); // a group, no mention
    transport.emit({ type: "message", message: { ...msg("13", bob, OTHER_ID, "@alice look"), mentions: [alice.id] } });
    transport.emit({ type: "message", message: msg("14", alice) }); // mine
    expect(notify.mock.calls.map(([n]) => n)).toEqual([
      { title: "Bob", body: "m11", conversationId: DIRECT_ID },
      { title: "Bob in Trip mentioned you", body: "@alice look", conversationId: OTHER_ID },
    ]);
  });
});
