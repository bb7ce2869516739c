import { act, fireEvent, render, renderHook, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { describe, expect, it, vi } from "vitest";
import { AuthProvider } from "../auth/AuthContext";
import { Session } from "../auth/session";
import { ChatStore } from "../store/chatStore";
import { ChatStoreContext, useChat } from "../store/hooks";
import { MAX_BODY_CHARS } from "../protocol";
import { messageId } from "../lib/ids";
import { FakeApi, FakeTransport, fakeFetch, jsonResponse } from "../test/fakes";
import { DIRECT_ID, alice, bob, direct } from "../test/fixtures";
import { AuthScreen } from "./AuthScreen";
import { Composer } from "./Composer";
import { ConversationView } from "./ConversationView";
import { MessageText } from "./MessageText";

const conv = direct();

describe("MessageText", () => {
  it("renders markup as text and only http(s) URLs as links", () => {
    const { container } = render(
      <MessageText text={'<img src=x onerror=alert(1)> see https://example.com/a?b=1. or javascript:alert(1)'} />,
    );
    expect(container.querySelector("img")).toBeNull();
    expect(container.textContent).toContain("<img src=x onerror=alert(1)>");
    const links = container.querySelectorAll("a");
    expect(links).toHaveLength(1);
    expect(links[0].getAttribute("href")).toBe("https://example.com/a?b=1");
    expect(links[0].getAttribute("rel")).toContain("noopener");
  });
});

describe("Composer", () => {
  it("sends on Enter and inserts a newline on Shift+Enter", async () => {
    const user = userEvent.setup();
    const onSend = vi.fn(() => true);
    const onTyping = vi.fn();
    render(<Composer label="Message Bob" onSend={onSend} onTyping={onTyping} />);
    const box = screen.getByLabelText("Message Bob");
    await user.type(box, "line one{Shift>}{Enter}{/Shift}line two");
    expect(onSend).not.toHaveBeenCalled();
    expect(box).toHaveValue("line one\nline two");
    expect(onTyping).toHaveBeenCalled();
    await user.keyboard("{Enter}");
    expect(onSend).toHaveBeenCalledWith("line one\nline two");
    expect(box).toHaveValue("");
  });

  it("allows as many emoji as the server does, counting each as one character", () => {
    render(<Composer label="Message Bob" onSend={() => true} />);
    const box = screen.getByLabelText("Message Bob");
    const send = screen.getByRole("button", { name: "Send message" });
    fireEvent.change(box, { target: { value: "😀".repeat(MAX_BODY_CHARS) } });
    expect(send).toBeEnabled();
    expect(box).toHaveAttribute("aria-invalid", "false");
    fireEvent.change(box, { target: { value: "😀".repeat(MAX_BODY_CHARS + 1) } });
    expect(send).toBeDisabled();
    expect(screen.getByText("-1")).toBeInTheDocument();
  });

  it("does not send blank text", async () => {
    const user = userEvent.setup();
    const onSend = vi.fn(() => true);
    render(<Composer label="Message Bob" onSend={onSend} />);
    await user.type(screen.getByLabelText("Message Bob"), "   {Enter}");
    expect(onSend).not.toHaveBeenCalled();
    expect(screen.getByRole("button", { name: "Send message" })).toBeDisabled();
  });
});

describe("AuthScreen", () => {
  function renderAuth() {
    const { fetch, calls } = fakeFetch((url) => {
      if (url.endsWith("/auth/refresh")) return jsonResponse(401, { error: { code: "unauthenticated", message: "no" } });
      if (url.endsWith("/auth/signup")) return jsonResponse(409, { error: { code: "username_taken", message: "taken" } });
      return jsonResponse(404, {});
    });
    const session = new Session({ fetch, locks: null, channel: null });
    render(
      <AuthProvider session={session}>
        <AuthScreen />
      </AuthProvider>,
    );
    return calls;
  }

  it("explains the username and password rules before sending anything", async () => {
    const user = userEvent.setup();
    const calls = renderAuth();
    await user.click(screen.getByRole("button", { name: "Create an account" }));
    await user.type(screen.getByLabelText("Username"), "Al");
    await user.type(screen.getByLabelText("Password"), "short");
    await user.click(screen.getByRole("button", { name: "Sign up" }));
    expect(screen.getByText("Usernames are 3 to 32 characters long.")).toBeInTheDocument();
    expect(screen.getByText("Passwords have at least 8 characters.")).toBeInTheDocument();
    expect(screen.getByLabelText("Username")).toHaveAttribute("aria-invalid", "true");
    expect(calls.some(({ url }) => url.endsWith("/auth/signup"))).toBe(false);
    await user.clear(screen.getByLabelText("Username"));
    await user.type(screen.getByLabelText("Username"), "Bad-Name");
    expect(screen.getByText("Use only lowercase letters, digits and underscores.")).toBeInTheDocument();
  });

  it("shows the server's refusal", async () => {
    const user = userEvent.setup();
    renderAuth();
    await user.click(screen.getByRole("button", { name: "Create an account" }));
    await user.type(screen.getByLabelText("Username"), "alice");
    await user.type(screen.getByLabelText("Password"), "long enough");
    await user.click(screen.getByRole("button", { name: "Sign up" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("That username is taken");
  });
});

describe("useChat and the conversation view", () => {
  function withStore() {
    const transport = new FakeTransport();
    const store = new ChatStore(alice, new FakeApi([conv]));
    store.attach(transport);
    const wrapper = ({ children }: { children: ReactNode }) => (
      <ChatStoreContext.Provider value={store}>{children}</ChatStoreContext.Provider>
    );
    return { store, transport, wrapper };
  }

  it("re-renders when its slice changes", () => {
    const { store, transport, wrapper } = withStore();
    const { result } = renderHook(() => useChat((s) => s.presence), { wrapper });
    expect(result.current).toEqual({});
    act(() => transport.emit({ type: "presence", user_id: bob.id, online: true }));
    expect(result.current).toEqual({ [bob.id]: true });
    store.dispose();
  });

  it("shows pending, failed with retry, then sent with a read receipt", async () => {
    const user = userEvent.setup();
    const { store, transport, wrapper } = withStore();
    await act(() => store.loadConversations());
    act(() => store.openConversation(DIRECT_ID));
    render(<ConversationView conversationId={DIRECT_ID} />, { wrapper });
    await user.type(screen.getByLabelText("Message Bob"), "hello there{Enter}");
    const cid = transport.ofType("send")[0].client_msg_id;
    expect(screen.getByLabelText("Sending")).toBeInTheDocument();
    act(() => transport.emit({ type: "error", code: "rate_limited", message: "Too fast", client_msg_id: cid }));
    expect(screen.getByText(/Too fast/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(transport.ofType("send").map((f) => f.client_msg_id)).toEqual([cid, cid]);
    act(() => {
      transport.emit({ type: "ack", client_msg_id: cid, message_id: messageId("900"), conversation_id: DIRECT_ID, event_id: messageId("900") });
      transport.emit({ type: "typing", conversation_id: DIRECT_ID, user_id: bob.id });
    });
    expect(screen.getByLabelText("Sent")).toBeInTheDocument();
    expect(screen.getByText("Bob is typing…")).toBeInTheDocument();
    act(() => transport.emit({ type: "read", conversation_id: DIRECT_ID, user_id: bob.id, message_id: messageId("900") }));
    expect(screen.getByLabelText("Read")).toBeInTheDocument();
    expect(screen.getByText("Seen")).toBeInTheDocument();
    expect(screen.getByText("Today")).toBeInTheDocument();
    store.dispose();
  });
});
