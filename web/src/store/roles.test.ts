import { describe, expect, it } from "vitest";
import { alice, bob, carol, direct, group } from "../test/fixtures";
import { isAdmin, leaveOutcome, memberActions, membersByRole, roleChange, titleProblem, withoutMember } from "./roles";

describe("group roles", () => {
  it("knows who administers a group, and that a direct conversation has no admins", () => {
    const g = group([alice, carol]);
    expect(isAdmin(g, alice.id)).toBe(true);
    expect(isAdmin(g, bob.id)).toBe(false);
    expect(membersByRole(g).map((m) => m.user)).toEqual([alice, carol, bob]);
    const d = direct();
    expect(isAdmin({ ...d, members: d.members.map((m) => ({ ...m, role: "admin" as const })) }, alice.id)).toBe(false);
  });

  it("offers admins every change to others and nothing to members", () => {
    const g = group([alice]);
    expect(memberActions(g, alice.id, bob.id)).toEqual(["make_admin", "remove"]);
    expect(memberActions(g, bob.id, carol.id)).toEqual([]);
    expect(memberActions(g, bob.id, alice.id)).toEqual([]);
    const two = group([alice, bob]);
    expect(memberActions(two, alice.id, bob.id)).toEqual(["unmake_admin", "remove"]);
  });

  it("lets an admin step down only while another admin remains", () => {
    expect(memberActions(group([alice]), alice.id, alice.id)).toEqual([]);
    expect(memberActions(group([alice, bob]), alice.id, alice.id)).toEqual(["unmake_admin"]);
  });

  it("says who becomes admin when the last admin leaves: the longest-standing member", () => {
    expect(leaveOutcome(group([alice]), alice.id)).toEqual({ allowed: true, successor: bob });
    // Joining order decides, not the id: Carol joined before Bob here.
    expect(leaveOutcome(group([alice], [alice, carol, bob]), alice.id)).toEqual({ allowed: true, successor: carol });
    expect(leaveOutcome(group([alice, carol]), alice.id)).toEqual({ allowed: true, successor: null });
    expect(leaveOutcome(group([alice]), bob.id)).toEqual({ allowed: true, successor: null });
  });

  it("refuses leaving to the last member and in a direct conversation", () => {
    expect(leaveOutcome(group([alice], [alice]), alice.id)).toMatchObject({ allowed: false });
    expect(leaveOutcome(direct(), alice.id)).toMatchObject({ allowed: false });
  });

  it("builds the PATCH body of a role change", () => {
    expect(roleChange("make_admin", bob.id)).toEqual({ add_admins: [bob.id] });
    expect(roleChange("unmake_admin", bob.id)).toEqual({ remove_admins: [bob.id] });
  });

  it("checks a title as the server does: trimmed, 1 to 100 characters counted as code points", () => {
    expect(titleProblem("  ")).not.toBeNull();
    expect(titleProblem(" Trip ")).toBeNull();
    expect(titleProblem("😀".repeat(100))).toBeNull();
    expect(titleProblem("😀".repeat(101))).not.toBeNull();
  });

  it("drops a removed member and keeps the rest as they were", () => {
    const g = group([alice]);
    const after = withoutMember(g, bob.id);
    expect(after.members.map((m) => m.user)).toEqual([alice, carol]);
    expect(after.members[0]).toBe(g.members[0]);
    expect(withoutMember(after, bob.id)).toBe(after);
  });
});
