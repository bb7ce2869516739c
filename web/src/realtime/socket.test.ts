import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket } from "../test/fakes";
import { alice } from "../test/fixtures";
import { CONNECT_TIMEOUT_MS, ChatSocket, type ConnectionStatus } from "./socket";

function setup(overrides: Partial<ConstructorParameters<typeof ChatSocket>[0]> = {}) {
  let token = "t1";
  const getToken = vi.fn(() => Promise.resolve(token));
  const refreshToken = vi.fn(() => {
    token = token === "t1" ? "t2" : "t3";
    return Promise.resolve(token);
  });
  const onUnauthenticated = vi.fn();
  const socket = new ChatSocket({
    url: "ws://test/api/v1/ws",
    getToken,
    refreshToken,
    onUnauthenticated,
    WebSocket: FakeWebSocket as unknown as typeof WebSocket,
    random: () => 0,
    ...overrides,
  });
  const statuses: ConnectionStatus[] = [];
  socket.onStatus((s) => statuses.push(s));
  return { socket, getToken, refreshToken, onUnauthenticated, statuses };
}

/** Lets pending promise callbacks (getToken) run. */
const flush = () => vi.advanceTimersByTimeAsync(0);

describe("ChatSocket", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  it("authenticates with the first frame and is online after ready", async () => {
    const { socket, statuses } = setup();
    const ready = vi.fn();
    socket.onReady(ready);
    socket.start();
    await flush();
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe("ws://test/api/v1/ws");
    ws.open();
    expect(ws.sent).toEqual([{ type: "auth", token: "t1" }]);
    expect(socket.send({ type: "ping" })).toBe(false); // not before ready
    ws.receive({ type: "ready", user: alice, heartbeat_ms: 30_000 });
    expect(ready).toHaveBeenCalledWith(alice);
    expect(socket.status).toBe("online");
    expect(statuses).toEqual(["connecting", "online"]);
    expect(socket.send({ type: "ping" })).toBe(true);
    socket.stop();
  });

  it("reconnects after a drop with growing, jittered delays", async () => {
    const { socket } = setup();
    socket.start();
    await flush();
    FakeWebSocket.last.serverClose(1006);
    expect(socket.status).toBe("reconnecting");
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(249);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1); // attempt 0: 250..500 ms, random()=0 → 250
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(499);
    expect(FakeWebSocket.instances).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1); // attempt 1: 500 ms
    expect(FakeWebSocket.instances).toHaveLength(3);
    // A successful ready resets the backoff.
    FakeWebSocket.last.open();
    FakeWebSocket.last.receive({ type: "ready", user: alice, heartbeat_ms: 30_000 });
    FakeWebSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(250);
    expect(FakeWebSocket.instances).toHaveLength(4);
    socket.stop();
  });

  it("refreshes the token and reconnects at once on close 4401", async () => {
    const { socket, refreshToken } = setup();
    socket.start();
    await flush();
    const first = FakeWebSocket.last;
    first.open();
    first.receive({ type: "ready", user: alice, heartbeat_ms: 30_000 });
    first.serverClose(4401);
    await flush();
    expect(refreshToken).toHaveBeenCalledTimes(1);
    const second = FakeWebSocket.last;
    expect(second).not.toBe(first);
    second.open();
    expect(second.sent[0]).toEqual({ type: "auth", token: "t2" });
    socket.stop();
  });

  it("ends the session when the token cannot be refreshed", async () => {
    const { socket, onUnauthenticated } = setup({ refreshToken: () => Promise.resolve(null) });
    socket.start();
    await flush();
    FakeWebSocket.last.serverClose(4401);
    await flush();
    expect(onUnauthenticated).toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("retries with backoff while the server cannot be reached for a token", async () => {
    let calls = 0;
    const { socket } = setup({
      getToken: () => {
        calls += 1;
        return calls < 3 ? Promise.reject(new Error("offline")) : Promise.resolve("t1");
      },
    });
    socket.start();
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(250 + 500);
    expect(FakeWebSocket.instances).toHaveLength(1);
    socket.stop();
  });

  it("gives up on a connection that never becomes ready", async () => {
    const { socket } = setup();
    socket.start();
    await flush();
    const stuck = FakeWebSocket.last;
    await vi.advanceTimersByTimeAsync(CONNECT_TIMEOUT_MS);
    expect(stuck.readyState).toBe(FakeWebSocket.CLOSED);
    expect(socket.status).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(500);
    expect(FakeWebSocket.instances).toHaveLength(2);
    socket.stop();
  });

  it("reconnects at once when the browser comes back online", async () => {
    const { socket } = setup();
    socket.start();
    await flush();
    FakeWebSocket.last.serverClose(1006);
    FakeWebSocket.last.serverClose(1006); // no-op: already closed
    await vi.advanceTimersByTimeAsync(250);
    FakeWebSocket.last.serverClose(1006); // now waiting 500 ms+
    window.dispatchEvent(new Event("online"));
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(3);
    socket.stop();
  });

  it("does not reconnect after stop", async () => {
    const { socket } = setup();
    socket.start();
    await flush();
    socket.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(socket.status).toBe("offline");
  });

  it("pings every heartbeat and replaces a silent connection", async () => {
    const { socket } = setup();
    socket.start();
    await flush();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: "ready", user: alice, heartbeat_ms: 1_000 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(ws.sent.at(-1)).toEqual({ type: "ping" });
    ws.receive({ type: "pong" });
    await vi.advanceTimersByTimeAsync(2_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_100); // > 2 intervals since the pong
    expect(ws.readyState).toBe(FakeWebSocket.CLOSED);
    expect(FakeWebSocket.instances).toHaveLength(2);
    socket.stop();
  });
});
