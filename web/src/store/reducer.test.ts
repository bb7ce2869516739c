import { describe, expect, it } from "vitest";
import { messageId } from "../lib/ids";
import { DIRECT_ID, alice, direct, msg } from "../test/fixtures";
import { stateAfter } from "../test/state";
import { chatReducer } from "./reducer";

describe("chatReducer", () => {
  const queued = stateAfter([direct()], {
    type: "message_queued",
    outgoing: { client_msg_id: "c1", conversation_id: DIRECT_ID, body: "hi", created_at: "2026-01-01T12:00:00Z", status: "pending" },
  });

  it("shows an acknowledged message as sent before its echo, then takes the server's copy", () => {
    const acked = chatReducer(queued, { type: "send_acked", clientMsgId: "c1", messageId: messageId("77"), conversationId: DIRECT_ID });
    expect(acked.outbox).toEqual({});
    expect(acked.messages[DIRECT_ID].items).toEqual([
      { id: "77", conversation_id: DIRECT_ID, sender_id: alice.id, body: "hi", client_msg_id: "c1", created_at: "2026-01-01T12:00:00Z",
        reply_to: null, mentions: [], edited_at: null, deleted: false, reactions: [] },
    ]);
    expect(acked.sync.lastSeenId).toBeNull(); // an ack proves nothing about the stream
    const echo = { ...acked.messages[DIRECT_ID].items[0], created_at: "2026-01-01T12:00:01Z" };
    const settled = chatReducer(acked, { type: "message_received", message: echo, live: true });
    expect(settled.messages[DIRECT_ID].items).toEqual([echo]);
    expect(settled.conversations.byId[DIRECT_ID].last_message).toBe(echo);
  });

  it("ignores an ack for a message no longer waiting", () => {
    const discarded = chatReducer(queued, { type: "outgoing_discarded", clientMsgId: "c1" });
    expect(chatReducer(discarded, { type: "send_acked", clientMsgId: "c1", messageId: messageId("77"), conversationId: DIRECT_ID })).toBe(discarded);
  });

  it("hands back the same state when nothing changed, so no subscriber wakes", () => {
    const state = stateAfter([direct()], { type: "message_received", message: msg("5"), live: true });
    const again = { type: "message_received", message: state.messages[DIRECT_ID].items[0], live: true } as const;
    expect(chatReducer(state, again)).toBe(state);
    expect(chatReducer(state, { type: "typing_expired", conversationId: DIRECT_ID, userId: alice.id, until: 1 })).toBe(state);
  });
});
