import { describe, expect, it } from "vitest";
import { userId } from "./ids";
import { COMMON_EMOJI } from "./emoji";
import { insertMention, matchMembers, mentionQueryAt, splitMentions } from "./mentions";
import { alice, bob, carol } from "../test/fixtures";

const usernames = new Map([
  ["alice", alice.id],
  ["bob", bob.id],
  ["carol", carol.id],
]);

describe("splitMentions", () => {
  it("marks the tokens of users the server resolved, and nothing else", () => {
    const segs = splitMentions("hi @alice and @Bob, not @carol nor mail@bob or @bobby", usernames, [alice.id, bob.id]);
    expect(segs).toEqual([
      { kind: "text", text: "hi " },
      { kind: "mention", text: "@alice", userId: alice.id },
      { kind: "text", text: " and " },
      { kind: "mention", text: "@Bob", userId: bob.id },
      { kind: "text", text: ", not @carol nor mail@bob or @bobby" },
    ]);
  });

  it("returns the text whole when nobody is mentioned", () => {
    expect(splitMentions("@alice", usernames, [])).toEqual([{ kind: "text", text: "@alice" }]);
    expect(splitMentions("@ghost", usernames, [userId("9")])).toEqual([{ kind: "text", text: "@ghost" }]);
  });
});

describe("mentionQueryAt", () => {
  it("finds the mention being typed before the caret", () => {
    expect(mentionQueryAt("@", 1)).toEqual({ start: 0, query: "" });
    expect(mentionQueryAt("hey @Al", 7)).toEqual({ start: 4, query: "al" });
    expect(mentionQueryAt("hey @al there", 7)).toEqual({ start: 4, query: "al" });
    expect(mentionQueryAt("(@bo", 4)).toEqual({ start: 1, query: "bo" });
  });

  it("ignores e-mail addresses, finished words and a caret past a space", () => {
    expect(mentionQueryAt("me@al", 5)).toBeNull();
    expect(mentionQueryAt("@al ", 4)).toBeNull();
    expect(mentionQueryAt("hello", 5)).toBeNull();
    expect(mentionQueryAt("@@al", 4)).toBeNull();
  });
});

describe("matchMembers", () => {
  const dave = { id: userId("4"), username: "dave", display_name: "Alan Dave" };
  const members = [carol, dave, bob, alice];

  it("ranks username prefixes before display-name words, and leaves me out", () => {
    expect(matchMembers(members, "al", alice.id).map((u) => u.username)).toEqual(["dave"]);
    expect(matchMembers(members, "a", bob.id).map((u) => u.username)).toEqual(["alice", "dave"]);
    expect(matchMembers(members, "", alice.id).map((u) => u.username)).toEqual(["bob", "carol", "dave"]);
    expect(matchMembers(members, "", alice.id, 2)).toHaveLength(2);
    expect(matchMembers(members, "zz", alice.id)).toEqual([]);
  });
});

describe("insertMention", () => {
  it("replaces the typed part with the username and a space, and puts the caret after", () => {
    expect(insertMention("hey @al", 4, 7, "alice")).toEqual({ text: "hey @alice ", caret: 11 });
    expect(insertMention("hey @al there", 4, 7, "alice")).toEqual({ text: "hey @alice there", caret: 11 });
  });
});

describe("the emoji offered", () => {
  it("are about forty single graphemes, none twice", () => {
    const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
    expect(COMMON_EMOJI.length).toBeGreaterThanOrEqual(40);
    expect(new Set(COMMON_EMOJI).size).toBe(COMMON_EMOJI.length);
    for (const e of COMMON_EMOJI) expect([...graphemes.segment(e)]).toHaveLength(1);
  });
});
