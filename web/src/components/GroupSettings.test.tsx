import { act, render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { describe, expect, it, vi } from "vitest";
import type { Conversation, User } from "../protocol";
import { ApiError } from "../api/errors";
import { ChatStore } from "../store/chatStore";
import { ChatStoreContext } from "../store/hooks";
import { FakeApi, FakeTransport } from "../test/fakes";
import { GROUP_ID, alice, bob, carol, group } from "../test/fixtures";
import { ConversationView } from "./ConversationView";
import { GroupSettings } from "./GroupSettings";

async function openSettings(viewer: User, conversation: Conversation = group()) {
  const api = new FakeApi([conversation]);
  const store = new ChatStore(viewer, api);
  store.attach(new FakeTransport());
  await act(() => store.loadConversations());
  const onClose = vi.fn();
  const onAddPeople = vi.fn();
  const wrapper = ({ children }: { children: ReactNode }) => (
    <ChatStoreContext.Provider value={store}>{children}</ChatStoreContext.Provider>
  );
  render(<GroupSettings conversationId={GROUP_ID} onAddPeople={onAddPeople} onClose={onClose} />, { wrapper });
  return { api, store, onClose, onAddPeople, user: userEvent.setup() };
}

describe("GroupSettings", () => {
  it("shows every member with an admin badge, admins first", async () => {
    await openSettings(bob, group([carol]));
    const rows = within(screen.getByRole("list", { name: "Members" })).getAllByRole("listitem");
    expect(rows.map((r) => r.textContent)).toEqual([
      expect.stringMatching(/Carol.*Admin/),
      expect.stringMatching(/Alice/),
      expect.stringMatching(/Bob.*you/),
    ]);
    expect(rows[1]).not.toHaveTextContent("Admin");
  });

  it("offers a member only leaving: no rename, no role or member changes", async () => {
    await openSettings(bob);
    expect(screen.queryByLabelText("Group name")).toBeNull();
    expect(screen.getByText(/Only admins can rename/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /admin|Remove|Add people/ })).toBeNull();
    expect(screen.getByRole("button", { name: "Leave group" })).toBeEnabled();
  });

  it("lets an admin rename, make and unmake admins, and remove people", async () => {
    const { api, user, onAddPeople } = await openSettings(alice);
    const name = screen.getByLabelText("Group name");
    await user.clear(name);
    await user.type(name, "  Trip 2 ");
    await user.click(screen.getByRole("button", { name: "Rename" }));
    await user.click(screen.getByRole("button", { name: "Make Bob an admin" }));
    await user.click(screen.getByRole("button", { name: "Remove Carol from the group" }));
    expect(api.callsTo("updateConversation")).toEqual([
      [GROUP_ID, { title: "Trip 2" }],
      [GROUP_ID, { add_admins: [bob.id] }],
    ]);
    expect(api.callsTo("removeMember")).toEqual([[GROUP_ID, carol.id]]);
    expect(screen.queryByText("Carol")).toBeNull();
    await user.click(screen.getByRole("button", { name: "Add people" }));
    expect(onAddPeople).toHaveBeenCalled();
  });

  it("refuses an empty name before asking the server", async () => {
    const { api, user } = await openSettings(alice);
    await user.clear(screen.getByLabelText("Group name"));
    expect(screen.getByRole("button", { name: "Rename" })).toBeDisabled();
    expect(screen.getByText("Give the group a name.")).toBeInTheDocument();
    expect(api.callsTo("updateConversation")).toEqual([]);
  });

  it("lets the only admin step down only once someone else is admin", async () => {
    await openSettings(alice);
    expect(screen.queryByRole("button", { name: "Step down as admin" })).toBeNull();
  });

  it("says who becomes admin when the last admin leaves, and leaves after a confirmation", async () => {
    const { api, user, onClose } = await openSettings(alice);
    await user.click(screen.getByRole("button", { name: "Leave group" }));
    expect(screen.getByText(/Bob will become admin/)).toBeInTheDocument();
    expect(api.callsTo("removeMember")).toEqual([]);
    await user.click(screen.getByRole("button", { name: "Leave" }));
    expect(api.callsTo("removeMember")).toEqual([[GROUP_ID, alice.id]]);
    expect(onClose).toHaveBeenCalled();
  });

  it("does not offer leaving to the last member", async () => {
    await openSettings(alice, group([alice], [alice]));
    expect(screen.queryByRole("button", { name: "Leave group" })).toBeNull();
    expect(screen.getByText(/last member/)).toBeInTheDocument();
  });

  it("shows the server's refusal and keeps the group as it was", async () => {
    const { api, user } = await openSettings(alice);
    api.refusal = new ApiError(403, "not_admin", "only an admin of the group can do that");
    await user.click(screen.getByRole("button", { name: "Remove Bob from the group" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("only an admin of the group can do that");
    expect(screen.getByText("Bob")).toBeInTheDocument();
  });
});

describe("the group header", () => {
  async function header(viewer: User) {
    const store = new ChatStore(viewer, new FakeApi([group()]));
    store.attach(new FakeTransport());
    await act(() => store.loadConversations());
    act(() => store.openConversation(GROUP_ID));
    render(
      <ChatStoreContext.Provider value={store}>
        <ConversationView conversationId={GROUP_ID} />
      </ChatStoreContext.Provider>,
    );
  }

  it("offers settings to everyone and adding people to admins", async () => {
    await header(alice);
    expect(screen.getByRole("button", { name: "Group settings" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Add people" })).toBeInTheDocument();
  });

  it("opens the settings panel", async () => {
    await header(bob);
    expect(screen.queryByRole("button", { name: "Add people" })).toBeNull();
    await userEvent.setup().click(screen.getByRole("button", { name: "Group settings" }));
    expect(screen.getByRole("dialog", { name: "Group settings" })).toBeInTheDocument();
  });
});
