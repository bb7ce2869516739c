import { describe, expect, it } from "vitest";
import { DIRECT_ID, alice, bob, msg } from "../../test/fixtures";
import { viewer } from "../../test/state";
import { typingReducer } from "./typing";

describe("typingReducer", () => {
  const started = typingReducer({}, { type: "typing_started", conversationId: DIRECT_ID, userId: bob.id, until: 6_000 }, viewer);

  it("shows someone typing until the indicator expires, unless renewed", () => {
    expect(started[DIRECT_ID]).toEqual({ [bob.id]: 6_000 });
    const renewed = typingReducer(started, { type: "typing_started", conversationId: DIRECT_ID, userId: bob.id, until: 9_000 }, viewer);
    // The first indicator's timer fires: the renewed one stays.
    expect(typingReducer(renewed, { type: "typing_expired", conversationId: DIRECT_ID, userId: bob.id, until: 6_000 }, viewer)).toBe(renewed);
    expect(typingReducer(renewed, { type: "typing_expired", conversationId: DIRECT_ID, userId: bob.id, until: 9_000 }, viewer)[DIRECT_ID]).toEqual({});
  });

  it("stops when the typist's message arrives, and ignores my own typing", () => {
    expect(typingReducer(started, { type: "message_received", message: msg("70", bob), live: true }, viewer)[DIRECT_ID]).toEqual({});
    expect(typingReducer({}, { type: "typing_started", conversationId: DIRECT_ID, userId: alice.id, until: 1 }, viewer)).toEqual({});
  });
});
