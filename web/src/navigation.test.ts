import { afterEach, describe, expect, it, vi } from "vitest";
import { conversationId } from "./lib/ids";
import { conversationHref, conversationIdFromHash, followOpenConversation, openConversationLink } from "./navigation";

describe("the conversation in the URL hash", () => {
  afterEach(() => {
    location.hash = "";
  });

  it("round-trips a conversation id through the hash", () => {
    const id = conversationId("385556351339724800");
    expect(conversationHref(id)).toBe("#/c/385556351339724800");
    expect(conversationIdFromHash(conversationHref(id))).toBe(id);
    expect(conversationHref(null)).toBe("#/");
  });

  it("opens nothing for a hash that names no conversation", () => {
    for (const hash of ["", "#/", "#/c/", "#/c/abc", "#/c/1/2", "#/x/1"]) {
      expect(conversationIdFromHash(hash)).toBeNull();
    }
  });

  it("follows hash changes until unsubscribed", () => {
    const open = vi.fn();
    const stop = followOpenConversation(open);
    expect(open).toHaveBeenLastCalledWith(null);
    openConversationLink(conversationId("42"));
    window.dispatchEvent(new HashChangeEvent("hashchange"));
    expect(open).toHaveBeenLastCalledWith("42");
    stop();
    openConversationLink(null);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
    expect(open).toHaveBeenCalledTimes(2);
  });
});
