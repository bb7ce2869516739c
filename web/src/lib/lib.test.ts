import { describe, expect, it } from "vitest";
import type { ConversationId } from "../protocol";
import { compareIds, conversationId, maxId, messageId, newUuid, parseConversationId, userId } from "./ids";
import { MAX_BODY_CHARS } from "../protocol";
import { linkify } from "./linkify";
import { bodyLength, isBodyTooLong } from "./messageBody";
import { formatDay } from "./time";

describe("compareIds", () => {
  it("orders 64-bit decimal ids numerically, beyond 2^53", () => {
    const id = messageId;
    expect(compareIds(id("9"), id("10"))).toBe(-1);
    expect(compareIds(id("9007199254740993"), id("9007199254740992"))).toBe(1);
    expect(compareIds(id("385556351339724800"), id("385556351339724800"))).toBe(0);
    expect(maxId(null, id("5"))).toBe("5");
    expect(maxId(id("100"), id("99"))).toBe("100");
  });

  it("parses conversation ids from outside input, refusing anything that is not one", () => {
    expect(parseConversationId("385556351339724800")).toBe(conversationId("385556351339724800"));
    for (const raw of ["", "abc", "-4", "1.5", "12345678901234567890", "1/2", null, undefined]) {
      expect(parseConversationId(raw)).toBeNull();
    }
  });

  it("keeps the kinds of id apart at compile time", () => {
    const user = userId("7");
    // @ts-expect-error a user id is not a conversation id
    const asConversation: ConversationId = user;
    // @ts-expect-error nor is a plain string
    const fromString: ConversationId = "7";
    expect([asConversation, fromString]).toEqual(["7", "7"]); // the brand costs nothing at run time
  });

  it("makes v4 UUIDs", () => {
    expect(newUuid()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe("linkify", () => {
  it("leaves sentence punctuation out of links", () => {
    expect(linkify("see (https://a.example/x), then http://b.example!")).toEqual([
      { kind: "text", text: "see (" },
      { kind: "link", text: "https://a.example/x", href: "https://a.example/x" },
      { kind: "text", text: "), then " },
      { kind: "link", text: "http://b.example", href: "http://b.example" },
      { kind: "text", text: "!" },
    ]);
  });

  it("links nothing but http(s)", () => {
    for (const text of ["javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://x.example", "<a href=x>y</a>"]) {
      expect(linkify(text)).toEqual([{ kind: "text", text }]);
    }
  });
});

describe("formatDay", () => {
  it("says Today and Yesterday, else the date", () => {
    const now = new Date(2026, 10, 29, 15, 0);
    expect(formatDay(new Date(2026, 10, 29, 0, 5).toISOString(), now)).toBe("Today");
    expect(formatDay(new Date(2026, 10, 28, 23, 59).toISOString(), now)).toBe("Yesterday");
    expect(formatDay(new Date(2026, 10, 20).toISOString(), now)).not.toMatch(/Today|Yesterday/);
  });
});

describe("message body length", () => {
  it("counts code points, as the server does, so an emoji is one character", () => {
    expect(bodyLength("😀")).toBe(1);
    expect("😀".length).toBe(2); // what it must not count
    expect(bodyLength("a😀é𝄞")).toBe(4);
    const longestEmoji = "😀".repeat(MAX_BODY_CHARS);
    expect(isBodyTooLong(longestEmoji)).toBe(false);
    expect(isBodyTooLong(`${longestEmoji}!`)).toBe(true);
  });
});
