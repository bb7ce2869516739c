/** Test doubles for the browser WebSocket and the store's two ports. */
import type { ClientFrame, ServerFrame, User } from "../protocol";
import type { ChatApi, ChatTransport } from "../store/chatStore";
import type { ConnectionStatus } from "../realtime/socket";

export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static instances: FakeWebSocket[] = [];
  static reset() {
    FakeWebSocket.instances = [];
  }
  static get last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  readyState = FakeWebSocket.CONNECTING;
  sent: ClientFrame[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }

  send(data: string) {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }

  close(code = 1000, reason = "") {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason });
  }

  // ---- driven by the test ----
  open() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.();
  }
  receive(frame: ServerFrame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverClose(code: number) {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason: "" });
  }
}

export class FakeTransport implements ChatTransport {
  isReady = true;
  status: ConnectionStatus = "online";
  sent: ClientFrame[] = [];
  private frames = new Set<(f: ServerFrame) => void>();
  private readies = new Set<(u: User) => void>();
  private statuses = new Set<(s: ConnectionStatus) => void>();

  send(frame: ClientFrame): boolean {
    if (!this.isReady) return false;
    this.sent.push(frame);
    return true;
  }
  onFrame(fn: (f: ServerFrame) => void) {
    this.frames.add(fn);
    return () => this.frames.delete(fn);
  }
  onReady(fn: (u: User) => void) {
    this.readies.add(fn);
    return () => this.readies.delete(fn);
  }
  onStatus(fn: (s: ConnectionStatus) => void) {
    this.statuses.add(fn);
    return () => this.statuses.delete(fn);
  }

  emit(frame: ServerFrame) {
    this.frames.forEach((fn) => fn(frame));
  }
  goOffline() {
    this.isReady = false;
    this.status = "reconnecting";
    this.statuses.forEach((fn) => fn("reconnecting"));
  }
  goReady(user: User) {
    this.isReady = true;
    this.status = "online";
    this.statuses.forEach((fn) => fn("online"));
    this.readies.forEach((fn) => fn(user));
  }
  ofType<T extends ClientFrame["type"]>(type: T): Extract<ClientFrame, { type: T }>[] {
    return this.sent.filter((f): f is Extract<ClientFrame, { type: T }> => f.type === type);
  }
}

/** An API that answers from a table of path → body (or function). */
export class FakeApi implements ChatApi {
  calls: Array<{ path: string; init?: RequestInit }> = [];
  constructor(private readonly routes: Record<string, unknown | ((path: string, init?: RequestInit) => unknown)>) {}

  async json<T>(path: string, init?: RequestInit): Promise<T> {
    this.calls.push({ path, init });
    const key = Object.keys(this.routes)
      .sort((a, b) => b.length - a.length)
      .find((k) => path === k || path.startsWith(k));
    if (key === undefined) throw new Error(`no fake route for ${path}`);
    const r = this.routes[key];
    return (typeof r === "function" ? (r as (p: string, i?: RequestInit) => unknown)(path, init) : r) as T;
  }
}

/** A Response-like object good enough for Session. */
export function jsonResponse(status: number, body?: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}
