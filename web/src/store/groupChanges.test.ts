/** The ChatStore's group changes: rename, roles, removing and leaving. */
import { describe, expect, it } from "vitest";
import type { Conversation } from "../protocol";
import { ApiError } from "../api/errors";
import { FakeApi, FakeTransport } from "../test/fakes";
import { GROUP_ID, alice, bob, carol, group } from "../test/fixtures";
import { ChatStore } from "./chatStore";

async function setup(conversation: Conversation = group()) {
  const api = new FakeApi([conversation]);
  const store = new ChatStore(alice, api);
  store.attach(new FakeTransport());
  await store.loadConversations();
  return { api, store, conv: () => store.getState().conversations.byId[GROUP_ID] };
}

describe("group changes", () => {
  it("shows the server's answer to a rename or a role change", async () => {
    const { api, store, conv } = await setup();
    const renamed: Conversation = { ...group([alice, bob]), title: "Trip 2" };
    api.conversations.set(GROUP_ID, renamed);
    await store.updateConversation(GROUP_ID, { title: "Trip 2", add_admins: [bob.id] });
    expect(api.callsTo("updateConversation")).toEqual([[GROUP_ID, { title: "Trip 2", add_admins: [bob.id] }]]);
    expect(conv()).toEqual(renamed);
  });

  it("drops a removed member at once, before the conversation frame", async () => {
    const { api, store, conv } = await setup();
    await store.removeMember(GROUP_ID, bob.id);
    expect(api.callsTo("removeMember")).toEqual([[GROUP_ID, bob.id]]);
    expect(conv().members.map((m) => m.user)).toEqual([alice, carol]);
  });

  it("takes a left group off the list and closes it", async () => {
    const { api, store, conv } = await setup();
    store.openConversation(GROUP_ID);
    await store.leaveConversation(GROUP_ID);
    expect(api.callsTo("removeMember")).toEqual([[GROUP_ID, alice.id]]);
    expect(conv()).toBeUndefined();
    expect(store.getState().view.activeId).toBeNull();
  });

  it("changes nothing when the server refuses", async () => {
    const { api, store, conv } = await setup();
    const before = conv();
    api.refusal = new ApiError(409, "last_admin", "a group needs an admin");
    await expect(store.updateConversation(GROUP_ID, { remove_admins: [alice.id] })).rejects.toMatchObject({
      code: "last_admin",
    });
    api.refusal = new ApiError(409, "last_member", "the last member cannot leave");
    await expect(store.leaveConversation(GROUP_ID)).rejects.toMatchObject({ code: "last_member" });
    api.refusal = new ApiError(403, "not_admin", "only an admin");
    await expect(store.removeMember(GROUP_ID, carol.id)).rejects.toMatchObject({ code: "not_admin" });
    expect(conv()).toBe(before);
  });
});
