import { describe, expect, it } from "vitest";
import { alice, bob, carol, change, msg } from "../test/fixtures";
import { MAX_HELD_CHANGES, applyChange, applyHeld, holdChange, reconcileMessage, toggleReaction } from "./messageChanges";

const me = alice.id;

describe("applyChange", () => {
  it("applies an edit only when it is newer than the last one", () => {
    const m = msg("5");
    const once = applyChange(m, change.edited("6", "5", "fixed", "2026-01-01T12:05:00Z"), me);
    expect(once).toMatchObject({ body: "fixed", edited_at: "2026-01-01T12:05:00Z" });
    // The same edit again, or an older one arriving late, changes nothing.
    expect(applyChange(once, change.edited("6", "5", "fixed", "2026-01-01T12:05:00Z"), me)).toBe(once);
    expect(applyChange(once, change.edited("7", "5", "older", "2026-01-01T12:04:59.500Z"), me)).toBe(once);
    // Times are compared as times, not text ("…00Z" sorts after "…00.5Z").
    const later = applyChange(once, change.edited("8", "5", "later", "2026-01-01T12:05:00.5Z"), me);
    expect(later.body).toBe("later");
  });

  it("makes a deletion final: no body, no reactions, and later changes ignored", () => {
    const m = { ...msg("5"), reactions: [{ emoji: "👍", count: 1, me: false, user_ids: [bob.id] }] };
    const gone = applyChange(m, change.deleted("6", "5"), me);
    expect(gone).toMatchObject({ deleted: true, body: "", reactions: [], id: "5", sender_id: bob.id });
    expect(applyChange(gone, change.deleted("6", "5"), me)).toBe(gone);
    expect(applyChange(gone, change.edited("7", "5", "back", "2026-01-02T00:00:00Z"), me)).toBe(gone);
    expect(applyChange(gone, change.reaction("8", "5", "🎉", true), me)).toBe(gone);
  });

  it("ignores a change for another message", () => {
    const m = msg("5");
    expect(applyChange(m, change.deleted("6", "4"), me)).toBe(m);
  });

  it("treats reactions as a set, so a repeated event changes nothing", () => {
    const m = msg("5");
    const one = applyChange(m, change.reaction("6", "5", "👍", true, bob), me);
    expect(one.reactions).toEqual([{ emoji: "👍", count: 1, me: false, user_ids: [bob.id] }]);
    expect(applyChange(one, change.reaction("6", "5", "👍", true, bob), me)).toBe(one);
    const two = applyChange(one, change.reaction("7", "5", "👍", true, alice), me);
    expect(two.reactions).toEqual([{ emoji: "👍", count: 2, me: true, user_ids: [bob.id, alice.id] }]);
    const off = applyChange(two, change.reaction("8", "5", "👍", false, bob), me);
    expect(off.reactions).toEqual([{ emoji: "👍", count: 1, me: true, user_ids: [alice.id] }]);
    expect(applyChange(off, change.reaction("8", "5", "👍", false, bob), me)).toBe(off);
    expect(applyChange(off, change.reaction("9", "5", "👍", false, alice), me).reactions).toEqual([]);
  });
});

describe("toggleReaction", () => {
  it("keeps emoji in the order first used", () => {
    let r = toggleReaction([], "👍", bob.id, true, me);
    r = toggleReaction(r, "🎉", carol.id, true, me);
    r = toggleReaction(r, "👍", alice.id, true, me);
    expect(r.map((x) => [x.emoji, x.count, x.me])).toEqual([
      ["👍", 2, true],
      ["🎉", 1, false],
    ]);
  });
});

describe("reconcileMessage", () => {
  it("takes the server's copy but never undoes a deletion or a later edit", () => {
    const held = { ...msg("5"), body: "new", edited_at: "2026-01-01T12:10:00Z" };
    const stale = { ...held, body: "old", edited_at: null, reactions: [{ emoji: "👍", count: 1, me: false, user_ids: [bob.id] }] };
    const merged = reconcileMessage(held, stale);
    expect(merged).toMatchObject({ body: "new", edited_at: "2026-01-01T12:10:00Z", reactions: stale.reactions });
    const deleted = { ...msg("6"), deleted: true, body: "" };
    expect(reconcileMessage(deleted, msg("6"))).toBe(deleted);
    const newer = { ...held, body: "newer", edited_at: "2026-01-01T12:11:00Z" };
    expect(reconcileMessage(held, newer)).toBe(newer);
  });
});

describe("the held changes", () => {
  it("holds each change once, and only the newest MAX_HELD_CHANGES", () => {
    let held = holdChange([], change.deleted("6", "5"));
    expect(holdChange(held, change.deleted("6", "5"))).toBe(held);
    for (let i = 0; i < MAX_HELD_CHANGES + 10; i++) held = holdChange(held, change.reaction(String(100 + i), "5", "👍", i % 2 === 0));
    expect(held).toHaveLength(MAX_HELD_CHANGES);
    expect(held[0].id).toBe(String(110));
  });

  it("applies held changes in order when their message arrives and keeps the others", () => {
    const held = [
      change.edited("10", "5", "edited", "2026-01-01T12:05:00Z"),
      change.reaction("11", "5", "👍", true, carol),
      change.deleted("12", "9"),
    ];
    const { messages, held: waiting } = applyHeld([msg("5"), msg("6")], held, me);
    expect(messages[0]).toMatchObject({ body: "edited", reactions: [{ emoji: "👍", count: 1 }] });
    expect(messages[1]).toMatchObject({ id: "6", body: "m6", reactions: [] });
    expect(waiting.map((c) => c.id)).toEqual(["12"]);
    // Nothing for these messages: the same arrays back.
    const none = [msg("7")];
    expect(applyHeld(none, waiting, me)).toEqual({ messages: none, held: waiting });
  });
});
