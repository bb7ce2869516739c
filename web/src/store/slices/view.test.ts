import { describe, expect, it } from "vitest";
import { conversationId } from "../../lib/ids";
import { DIRECT_ID, direct } from "../../test/fixtures";
import type { ViewState } from "../state";
import { viewReducer } from "./view";

const open: ViewState = { activeId: DIRECT_ID, visible: true, notice: null, focus: null };

describe("viewReducer", () => {
  it("closes the open conversation when it is removed or no longer listed", () => {
    expect(viewReducer(open, { type: "conversation_removed", conversationId: DIRECT_ID }).activeId).toBeNull();
    expect(viewReducer(open, { type: "conversation_removed", conversationId: conversationId("200") })).toBe(open);
    expect(viewReducer(open, { type: "conversations_listed", conversations: [direct()] })).toBe(open);
    expect(viewReducer(open, { type: "conversations_listed", conversations: [] }).activeId).toBeNull();
  });
});
