/** Component tests for conversation events: actions, editing, reactions, replies, mentions, search. */
import { act, fireEvent, render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Conversation, Message, SearchPage } from "../protocol";
import { messageId } from "../lib/ids";
import { ChatStore } from "../store/chatStore";
import { ChatStoreContext } from "../store/hooks";
import { FakeApi, FakeTransport } from "../test/fakes";
import { DIRECT_ID, alice, bob, carol, change, direct, msg } from "../test/fixtures";
import { Composer } from "./Composer";
import { ConversationView } from "./ConversationView";
import { MessageText } from "./MessageText";
import { SearchPanel } from "./SearchPanel";

async function openWith(history: Message[], conv: Conversation = direct()) {
  const api = new FakeApi([conv], () => ({ messages: [...history].reverse(), has_more: false }));
  const transport = new FakeTransport();
  const store = new ChatStore(alice, api);
  store.attach(transport);
  const wrapper = ({ children }: { children: ReactNode }) => <ChatStoreContext.Provider value={store}>{children}</ChatStoreContext.Provider>;
  await act(() => store.loadConversations());
  await act(async () => {
    store.openConversation(conv.id);
    await Promise.resolve();
  });
  render(<ConversationView conversationId={conv.id} />, { wrapper });
  return { store, transport, api };
}

const messageEl = (id: string) => document.querySelector<HTMLElement>(`[data-message-id="${id}"]`)!;

afterEach(() => vi.useRealTimers());

describe("MessageText mentions", () => {
  it("highlights resolved mentions of the reader, as text", () => {
    const usernames = new Map([
      ["alice", alice.id],
      ["bob", bob.id],
    ]);
    const { container } = render(
      <MessageText text="@alice <b>see</b> @bob and @carol" mentions={{ usernames, mentioned: [alice.id, bob.id], me: alice.id }} />,
    );
    const marked = [...container.querySelectorAll(".mention")].map((el) => [el.textContent, el.getAttribute("data-me")]);
    expect(marked).toEqual([
      ["@alice", "true"],
      ["@bob", "false"],
    ]);
    expect(container.querySelector("b")).toBeNull();
  });
});

describe("Composer mentions and replies", () => {
  it("offers members after @, moves with the arrows and picks with Enter", async () => {
    const user = userEvent.setup();
    const onSend = vi.fn(() => true);
    render(<Composer label="Message group" onSend={onSend} members={[alice, bob, carol]} meId={alice.id} />);
    const box = screen.getByLabelText("Message group");
    await user.type(box, "hi @");
    const options = screen.getAllByRole("option");
    expect(options.map((o) => o.textContent)).toEqual(["Bob @bob", "Carol @carol"]);
    await user.keyboard("{ArrowDown}");
    expect(screen.getByRole("option", { selected: true })).toHaveTextContent("Carol");
    await user.keyboard("{Enter}");
    expect(box).toHaveValue("hi @carol ");
    expect(onSend).not.toHaveBeenCalled(); // Enter picked, it did not send
    expect(screen.queryByRole("listbox")).toBeNull();
    await user.type(box, "and @b");
    await user.keyboard("{Tab}");
    expect(box).toHaveValue("hi @carol and @bob ");
    await user.type(box, "@c");
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("listbox")).toBeNull();
    await user.keyboard("{Enter}");
    expect(onSend).toHaveBeenCalledWith("hi @carol and @bob @c");
  });

  it("shows what a reply answers, and Esc cancels it", async () => {
    const user = userEvent.setup();
    const onCancelReply = vi.fn();
    render(<Composer label="Message Bob" onSend={() => true} replyingTo={{ sender: "Bob", firstLine: "lunch?" }} onCancelReply={onCancelReply} />);
    expect(screen.getByRole("status")).toHaveTextContent("Replying to Bob: lunch?");
    await user.type(screen.getByLabelText("Message Bob"), "{Escape}");
    expect(onCancelReply).toHaveBeenCalled();
  });
});

describe("ConversationView message actions", () => {
  it("edits my message inline: Esc cancels, Enter saves, and it shows edited", async () => {
    const user = userEvent.setup();
    const { transport } = await openWith([msg("5", alice, DIRECT_ID, "helo")]);
    const row = messageEl("5");
    await user.click(within(row).getByRole("button", { name: "Edit" }));
    const editor = screen.getByLabelText("Edit message");
    await user.type(editor, "x{Escape}");
    expect(screen.queryByLabelText("Edit message")).toBeNull();
    expect(row).toHaveTextContent("helo");
    // E on the focused message edits too.
    row.focus();
    await user.keyboard("e");
    await user.clear(screen.getByLabelText("Edit message"));
    await user.type(screen.getByLabelText("Edit message"), "hello{Shift>}{Enter}{/Shift}there{Enter}");
    expect(transport.ofType("edit")).toMatchObject([{ message_id: "5", body: "hello\nthere" }]);
    expect(screen.queryByLabelText("Edit message")).toBeNull();
    expect(messageEl("5")).toHaveTextContent("hello");
    expect(within(messageEl("5")).getByText("edited")).toBeInTheDocument();
  });

  it("offers edit and delete on my messages only", async () => {
    await openWith([msg("5", bob), msg("6", alice)]);
    expect(within(messageEl("5")).queryByRole("button", { name: "Edit" })).toBeNull();
    expect(within(messageEl("5")).queryByRole("button", { name: "Delete" })).toBeNull();
    expect(within(messageEl("5")).getByRole("button", { name: "Reply" })).toBeInTheDocument();
    expect(within(messageEl("6")).getByRole("button", { name: "Delete" })).toBeInTheDocument();
  });

  it("deletes after a confirmation and shows the message as deleted", async () => {
    const user = userEvent.setup();
    const { transport } = await openWith([msg("6", alice, DIRECT_ID, "oops")]);
    await user.click(within(messageEl("6")).getByRole("button", { name: "Delete" }));
    expect(transport.ofType("delete")).toHaveLength(0);
    await user.click(within(screen.getByRole("alertdialog")).getByRole("button", { name: "Delete" }));
    expect(transport.ofType("delete")).toMatchObject([{ message_id: "6" }]);
    expect(messageEl("6")).toHaveTextContent("message deleted");
    expect(messageEl("6")).not.toHaveTextContent("oops");
  });

  it("shows reaction chips with counts, mine highlighted, and toggles mine", async () => {
    const user = userEvent.setup();
    const { transport } = await openWith([msg("5")]);
    act(() => {
      transport.emit(change.reaction("7", "5", "👍", true, bob));
      transport.emit(change.reaction("8", "5", "👍", true, alice));
      transport.emit(change.reaction("9", "5", "🎉", true, bob));
    });
    const thumbs = screen.getByRole("button", { name: "👍 2, including you" });
    expect(thumbs).toHaveAttribute("aria-pressed", "true");
    expect(screen.getByRole("button", { name: "🎉 1" })).toHaveAttribute("aria-pressed", "false");
    await user.click(thumbs);
    expect(transport.ofType("react")).toMatchObject([{ emoji: "👍", on: false }]);
    expect(screen.getByRole("button", { name: "👍 1" })).toHaveAttribute("aria-pressed", "false");
    // From the picker.
    await user.click(within(messageEl("5")).getByRole("button", { name: "Add reaction" }));
    await user.click(within(screen.getByRole("dialog", { name: "Pick a reaction" })).getByRole("button", { name: "React with 🚀" }));
    expect(transport.ofType("react").at(-1)).toMatchObject({ emoji: "🚀", on: true });
    expect(screen.queryByRole("dialog", { name: "Pick a reaction" })).toBeNull();
  });

  it("replies with a quote of the original, and says when the original is deleted", async () => {
    const user = userEvent.setup();
    const { transport } = await openWith([msg("5", bob, DIRECT_ID, "lunch at noon?\nor later")]);
    await user.click(within(messageEl("5")).getByRole("button", { name: "Reply" }));
    expect(screen.getByRole("status")).toHaveTextContent("Replying to Bob: lunch at noon?");
    await user.type(screen.getByLabelText("Message Bob"), "noon works{Enter}");
    const [send] = transport.ofType("send");
    expect(send).toMatchObject({ body: "noon works", reply_to: "5" });
    expect(screen.queryByText(/Replying to/)).toBeNull();
    act(() =>
      transport.emit({
        type: "message",
        message: { ...msg("6", alice, DIRECT_ID, "noon works"), client_msg_id: send.client_msg_id, reply_to: messageId("5") },
      }),
    );
    const quote = within(messageEl("6")).getByRole("button", { name: /^Reply to Bob: lunch at noon\?/ });
    expect(quote).toHaveTextContent("Bob");
    expect(quote).not.toHaveTextContent("or later");
    act(() => transport.emit(change.deleted("7", "5")));
    expect(within(messageEl("6")).getByRole("button", { name: /original deleted/ })).toBeInTheDocument();
  });

  it("highlights a message that mentions me", async () => {
    await openWith([{ ...msg("5", bob, DIRECT_ID, "@alice look"), mentions: [alice.id] }]);
    expect(messageEl("5")).toHaveAttribute("data-mentions-me", "true");
    expect(within(messageEl("5")).getByText("@alice")).toHaveAttribute("data-me", "true");
  });
});

describe("SearchPanel", () => {
  function renderSearch(search: FakeApi["search"]) {
    const api = new FakeApi([direct()]);
    api.search = search;
    const store = new ChatStore(alice, api);
    store.attach(new FakeTransport());
    render(
      <ChatStoreContext.Provider value={store}>
        <SearchPanel onClose={() => undefined} />
      </ChatStoreContext.Provider>,
    );
    return { api, store };
  }

  const hit = (id: string, pieces: Array<[string, boolean]>) => ({
    message: msg(id, bob, DIRECT_ID, pieces.map(([t]) => t).join("")),
    marked: pieces.map(([text, matched]) => ({ text, matched })),
  });

  it("marks the matched pieces as text, loads more, and opens a result at its message", async () => {
    const user = userEvent.setup();
    const pages: Record<string, SearchPage> = {
      first: { results: [hit("9", [["the ", false], ["<i>tea</i>", true], [" is hot", false]])], next_before: messageId("9") },
      more: { results: [hit("3", [["more ", false], ["tea", true]])], next_before: null },
    };
    const { api, store } = renderSearch((q) => (q.before ? pages.more : pages.first));
    await store.loadConversations();
    await user.type(screen.getByLabelText("Search messages"), "tea{Enter}");
    const marks = await screen.findAllByText("<i>tea</i>");
    expect(marks[0].tagName).toBe("MARK");
    expect(document.querySelector("i")).toBeNull();
    await user.click(screen.getByRole("button", { name: "Load more" }));
    expect(await screen.findByText("tea", { selector: "mark" })).toBeInTheDocument();
    expect(api.callsTo("searchMessages").map(([q]) => q)).toEqual([
      { q: "tea", before: undefined, limit: 20 },
      { q: "tea", before: "9", limit: 20 },
    ]);
    expect(screen.queryByRole("button", { name: "Load more" })).toBeNull();
    await user.click(screen.getAllByRole("button", { name: /Bob/ })[1]);
    expect(store.getState().view).toMatchObject({ activeId: DIRECT_ID, focus: { messageId: "3" } });
    expect(location.hash).toBe(`#/c/${DIRECT_ID}`);
  });

  it("shows a refused query's explanation inline", async () => {
    const { ApiError } = await import("../api/errors");
    renderSearch(() => Promise.reject(new ApiError(400, "invalid_query", "Unbalanced quote in the query.")));
    fireEvent.change(screen.getByLabelText("Search messages"), { target: { value: '"tea' } });
    fireEvent.submit(screen.getByRole("search"));
    expect(await screen.findByRole("alert")).toHaveTextContent("Unbalanced quote in the query.");
    expect(screen.getByLabelText("Search messages")).toHaveAttribute("aria-invalid", "true");
  });
});
