import { describe, expect, it } from "vitest";
import type { Conversation } from "../protocol";
import { alice, bob, direct, msg } from "../test/fixtures";
import { stateAfter } from "../test/state";
import { canDelete, notificationFor } from "./selectors";

describe("canDelete", () => {
  const group: Conversation = { ...direct(), kind: "group", title: "Trip" };

  it("lets me delete my own messages, and others' only as a group admin", () => {
    expect(canDelete(direct(), msg("5", alice), alice.id)).toBe(true);
    expect(canDelete(direct(), msg("5", bob), alice.id)).toBe(false);
    expect(canDelete(group, msg("5", bob), alice.id)).toBe(false);
    const adminGroup: Conversation = {
      ...group,
      members: group.members.map((m) => (m.user.id === alice.id ? { ...m, role: "admin" as const } : m)),
    };
    expect(canDelete(adminGroup, msg("5", bob), alice.id)).toBe(true);
    const directWithFlag = { ...adminGroup, kind: "direct" as const };
    expect(canDelete(directWithFlag, msg("5", bob), alice.id)).toBe(false);
  });
});

describe("notificationFor", () => {
  it("is for a direct message while the page is hidden, not during a sync replay", () => {
    const hidden = stateAfter([direct()], { type: "visibility_changed", visible: false });
    expect(notificationFor(hidden, msg("5"))).toEqual({ title: "Bob", body: "m5" });
    const replaying = stateAfter([direct()], { type: "visibility_changed", visible: false }, { type: "sync_started" });
    expect(notificationFor(replaying, msg("5"))).toBeNull();
    expect(notificationFor(stateAfter([direct()]), msg("5"))).toBeNull();
  });
});
