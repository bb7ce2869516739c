import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createChatApi } from "../api/client";
import { fakeFetch, jsonResponse } from "../test/fakes";
import { Session } from "./session";

const user = { id: "1", username: "alice", display_name: "Alice" };

/** A fake server: counts refreshes and hands out numbered tokens. */
function fakeServer() {
  let refreshes = 0;
  let refreshStatus = 200;
  let meStatusOnce: number | null = null;
  const { fetch, calls } = fakeFetch((url) => {
    if (url.endsWith("/auth/login")) return jsonResponse(200, { user, access_token: "a0", expires_in: 900 });
    if (url.endsWith("/auth/refresh")) {
      if (refreshStatus !== 200) return jsonResponse(refreshStatus, { error: { code: "unauthenticated", message: "no" } });
      refreshes += 1;
      return jsonResponse(200, { access_token: `r${refreshes}`, expires_in: 900 });
    }
    if (url.endsWith("/me")) {
      if (meStatusOnce) {
        const s = meStatusOnce;
        meStatusOnce = null;
        return jsonResponse(s, { error: { code: "unauthenticated", message: "expired" } });
      }
      return jsonResponse(200, user);
    }
    return jsonResponse(404, { error: { code: "not_found", message: "no route" } });
  });
  return {
    fetch,
    calls,
    get refreshes() {
      return refreshes;
    },
    failRefresh(status: number) {
      refreshStatus = status;
    },
    rejectNextMe(status: number) {
      meStatusOnce = status;
    },
  };
}

describe("Session", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("keeps the access token in memory only", async () => {
    const server = fakeServer();
    const s = new Session({ fetch: server.fetch, locks: null, channel: null });
    await s.login({ username: "alice", password: "secret-pass" });
    expect(s.accessToken).toBe("a0");
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
    expect(document.cookie).toBe("");
    s.dispose();
  });

  it("refreshes a minute before the token expires", async () => {
    const server = fakeServer();
    const s = new Session({ fetch: server.fetch, locks: null, channel: null });
    await s.login({ username: "alice", password: "secret-pass" });
    await vi.advanceTimersByTimeAsync(839_000);
    expect(server.refreshes).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(server.refreshes).toBe(1);
    expect(s.accessToken).toBe("r1");
    const refresh = server.calls.find((c) => c.url.endsWith("/auth/refresh"))!;
    expect(new Headers(refresh.init.headers).get("x-chat-csrf")).toBe("1");
    // and again before the new one expires
    await vi.advanceTimersByTimeAsync(840_000);
    expect(server.refreshes).toBe(2);
    s.dispose();
  });

  it("sends one refresh for concurrent callers", async () => {
    const server = fakeServer();
    const s = new Session({ fetch: server.fetch, locks: null, channel: null });
    const [a, b, c] = await Promise.all([s.refresh(), s.refresh(), s.getToken()]);
    expect(server.refreshes).toBe(1);
    expect([a, b, c]).toEqual(["r1", "r1", "r1"]);
    s.dispose();
  });

  it("serializes refreshes through the Web Locks API when present", async () => {
    const server = fakeServer();
    const request = vi.fn(async (_name: string, cb: () => Promise<unknown>) => cb());
    const s = new Session({ fetch: server.fetch, locks: { request } as unknown as LockManager, channel: null });
    expect(await s.refresh()).toBe("r1");
    expect(request).toHaveBeenCalledWith("chat-auth-refresh", expect.any(Function));
    s.dispose();
  });

  it("refreshes after a 401 and retries the request once", async () => {
    const server = fakeServer();
    const s = new Session({ fetch: server.fetch, locks: null, channel: null });
    await s.login({ username: "alice", password: "secret-pass" });
    server.rejectNextMe(401);
    const me = await createChatApi(s.fetch).me();
    expect(me).toEqual(user);
    const meCalls = server.calls.filter((c) => c.url.endsWith("/me"));
    expect(meCalls.map((c) => new Headers(c.init.headers).get("authorization"))).toEqual(["Bearer a0", "Bearer r1"]);
    s.dispose();
  });

  it("ends the session when the refresh cookie is refused", async () => {
    const server = fakeServer();
    const s = new Session({ fetch: server.fetch, locks: null, channel: null });
    const ended = vi.fn();
    s.onEnded(ended);
    await s.login({ username: "alice", password: "secret-pass" });
    server.failRefresh(401);
    expect(await s.refresh()).toBeNull();
    expect(s.accessToken).toBeNull();
    expect(ended).toHaveBeenCalledTimes(1);
    await expect(createChatApi(s.fetch).me()).rejects.toMatchObject({ status: 401, code: "unauthenticated" });
  });

  it("reports no session (not an error) when there is no cookie at start", async () => {
    const server = fakeServer();
    server.failRefresh(401);
    const s = new Session({ fetch: server.fetch, locks: null, channel: null });
    const ended = vi.fn();
    s.onEnded(ended);
    expect(await s.refresh()).toBeNull();
    expect(ended).not.toHaveBeenCalled();
  });

  it("keeps the token and retries later when the server is unreachable", async () => {
    const server = fakeServer();
    let down = false;
    const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      if (down) throw new TypeError("Failed to fetch");
      return server.fetch(input, init);
    }) as typeof globalThis.fetch;
    const s = new Session({ fetch, locks: null, channel: null });
    await s.login({ username: "alice", password: "secret-pass" });
    down = true;
    await expect(s.refresh()).rejects.toThrow(/reach the server/);
    expect(s.accessToken).toBe("a0");
    down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(s.accessToken).toBe("r1");
    s.dispose();
  });

  it("follows a logout in another tab", async () => {
    const server = fakeServer();
    const postMessage = vi.fn();
    const channel = { postMessage, onmessage: null } as unknown as BroadcastChannel;
    const s = new Session({ fetch: server.fetch, locks: null, channel });
    const ended = vi.fn();
    s.onEnded(ended);
    await s.login({ username: "alice", password: "secret-pass" });
    channel.onmessage?.(new MessageEvent("message", { data: "logout" }));
    expect(s.accessToken).toBeNull();
    expect(ended).toHaveBeenCalledTimes(1);
    await s.logout();
    expect(postMessage).toHaveBeenCalledWith("logout");
  });

  it("logout forgets the token and asks the server to revoke the cookie", async () => {
    const server = fakeServer();
    const s = new Session({ fetch: server.fetch, locks: null, channel: null });
    await s.login({ username: "alice", password: "secret-pass" });
    await s.logout();
    expect(s.accessToken).toBeNull();
    const out = server.calls.find((c) => c.url.endsWith("/auth/logout"))!;
    expect(out.init.method).toBe("POST");
    expect(new Headers(out.init.headers).get("x-chat-csrf")).toBe("1");
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(server.refreshes).toBe(0);
  });
});
