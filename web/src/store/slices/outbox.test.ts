import { describe, expect, it } from "vitest";
import { DIRECT_ID, alice, bob, msg } from "../../test/fixtures";
import { viewer } from "../../test/state";
import type { ChatEvent } from "../events";
import type { OutgoingMessage } from "../state";
import { outboxReducer, type OutboxState } from "./outbox";

const hello: OutgoingMessage = {
  client_msg_id: "c1",
  conversation_id: DIRECT_ID,
  body: "hello",
  created_at: "2026-01-01T12:00:00Z",
  status: "pending",
};
const after = (...events: ChatEvent[]) => events.reduce<OutboxState>((s, e) => outboxReducer(s, e, viewer), {});

describe("outboxReducer", () => {
  it("keeps a refused message, failed, until it is retried with the same key", () => {
    const failed = after({ type: "message_queued", outgoing: hello }, { type: "send_failed", clientMsgId: "c1", error: "Slow down" });
    expect(failed.c1).toMatchObject({ status: "failed", error: "Slow down" });
    // A second failure (say, the ack timeout after the refusal) keeps the first reason.
    expect(outboxReducer(failed, { type: "send_failed", clientMsgId: "c1", error: "Not delivered" }, viewer)).toBe(failed);
    const retried = outboxReducer(failed, { type: "send_retried", clientMsgId: "c1" }, viewer);
    expect(retried.c1).toEqual(hello);
  });

  it("settles a message when my stored copy arrives, and only mine", () => {
    const queued = after({ type: "message_queued", outgoing: hello });
    const fromBob = { ...msg("7", bob), client_msg_id: "c1" };
    expect(outboxReducer(queued, { type: "message_received", message: fromBob, live: true }, viewer)).toBe(queued);
    const mine = { ...msg("7", alice), client_msg_id: "c1" };
    expect(outboxReducer(queued, { type: "message_received", message: mine, live: true }, viewer)).toEqual({});
  });

  it("forgets a discarded message", () => {
    expect(after({ type: "message_queued", outgoing: hello }, { type: "outgoing_discarded", clientMsgId: "c1" })).toEqual({});
  });
});
