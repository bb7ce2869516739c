/**
 * The WebSocket connection of DESIGN.md §5, kept alive for as long as the user is
 * logged in.
 *
 * It authenticates with the first frame (the browser cannot set headers), reconnects
 * with backoff and jitter when the connection drops, and on close 4401 (token expired)
 * gets a fresh token and reconnects at once. An application ping every `heartbeat_ms`
 * detects half-open connections: if nothing arrives for two intervals the socket is
 * replaced. What to do after (re)connecting — `sync`, resending — is the store's job:
 * it listens for `ready`.
 */
import type { ClientFrame, ServerFrame, User } from "../protocol";
import { backoffDelayMs } from "./backoff";

export type ConnectionStatus = "connecting" | "online" | "reconnecting" | "offline";

export const CLOSE_UNAUTHENTICATED = 4401;
/** A connection that has not reached `ready` by then is given up and retried. */
export const CONNECT_TIMEOUT_MS = 15_000;

export interface ChatSocketOptions {
  url: string;
  /** A valid access token; null when the session is gone; throws when offline. */
  getToken: () => Promise<string | null>;
  /** Forces a refresh after the server rejected the token (close 4401). */
  refreshToken: () => Promise<string | null>;
  /** The session is over: stop and let the app show log-in. */
  onUnauthenticated?: () => void;
  WebSocket?: typeof WebSocket;
  random?: () => number;
}

type FrameListener = (frame: ServerFrame) => void;
type StatusListener = (status: ConnectionStatus) => void;
type ReadyListener = (user: User) => void;

export class ChatSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private stopped = true;
  private ready = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private lastFrameAt = 0;
  private status_: ConnectionStatus = "offline";
  private frameListeners = new Set<FrameListener>();
  private statusListeners = new Set<StatusListener>();
  private readyListeners = new Set<ReadyListener>();
  private readonly random: () => number;

  constructor(private readonly opts: ChatSocketOptions) {
    this.random = opts.random ?? Math.random;
  }

  /** Looked up on each use, so a WebSocket patched in later (tests, devtools) applies. */
  private get WS(): typeof WebSocket {
    return this.opts.WebSocket ?? globalThis.WebSocket;
  }

  get status(): ConnectionStatus {
    return this.status_;
  }

  get isReady(): boolean {
    return this.ready;
  }

  onFrame(fn: FrameListener): () => void {
    this.frameListeners.add(fn);
    return () => this.frameListeners.delete(fn);
  }

  onStatus(fn: StatusListener): () => void {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  onReady(fn: ReadyListener): () => void {
    this.readyListeners.add(fn);
    return () => this.readyListeners.delete(fn);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (typeof window !== "undefined") {
      window.addEventListener("online", this.handleOnline);
      window.addEventListener("offline", this.handleOffline);
    }
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (typeof window !== "undefined") {
      window.removeEventListener("online", this.handleOnline);
      window.removeEventListener("offline", this.handleOffline);
    }
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    ws?.close(1000, "bye");
    this.setStatus("offline");
  }

  /** Sends a frame if the connection is authenticated; false otherwise. */
  send(frame: ClientFrame): boolean {
    if (!this.ready || !this.ws || this.ws.readyState !== this.WS.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Drop the current connection and reconnect now (used when the network returns). */
  reconnectNow(): void {
    if (this.stopped) return;
    this.attempt = 0;
    this.dropAndReconnect(0);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setStatus(this.attempt === 0 && this.status_ !== "reconnecting" ? "connecting" : "reconnecting");
    const token = await this.tokenOrGiveUp(this.opts.getToken);
    if (!token) return;
    let ws: WebSocket;
    try {
      ws = new this.WS(this.opts.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      if (this.ws !== ws || this.ready) return;
      this.ws = null;
      ws.close(4000, "connect timeout");
      this.scheduleReconnect();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      ws.send(JSON.stringify({ type: "auth", token } satisfies ClientFrame));
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      if (frame.type === "ready") {
        this.ready = true;
        if (this.connectTimer) clearTimeout(this.connectTimer);
        this.connectTimer = null;
        this.attempt = 0;
        this.startHeartbeat(frame.heartbeat_ms);
        this.setStatus("online");
        this.readyListeners.forEach((fn) => fn(frame.user));
      }
      this.frameListeners.forEach((fn) => fn(frame));
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      this.clearTimers();
      if (this.stopped) return;
      if (ev.code === CLOSE_UNAUTHENTICATED) void this.reauthenticate();
      else this.scheduleReconnect();
    };
    ws.onerror = () => {
      // A close event always follows; reconnecting happens there.
    };
  }

  private async reauthenticate(): Promise<void> {
    this.setStatus("reconnecting");
    if (!(await this.tokenOrGiveUp(this.opts.refreshToken))) return;
    // A fresh token deserves an immediate retry, but a server that keeps refusing it
    // must not be hammered: after the first time, fall back to backoff.
    if (this.attempt === 0) {
      this.attempt = 1;
      void this.connect();
    } else {
      this.scheduleReconnect();
    }
  }

  /**
   * A token, or null after dealing with its absence: offline → retry with backoff,
   * no session → stop and tell the app.
   */
  private async tokenOrGiveUp(get: () => Promise<string | null>): Promise<string | null> {
    let token: string | null;
    try {
      token = await get();
    } catch {
      this.scheduleReconnect();
      return null;
    }
    if (this.stopped) return null;
    if (!token) this.endSession();
    return token;
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const offline = typeof navigator !== "undefined" && navigator.onLine === false;
    this.setStatus(offline ? "offline" : "reconnecting");
    const delay = backoffDelayMs(this.attempt, this.random);
    this.attempt += 1;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delay);
  }

  private dropAndReconnect(delayMs: number): void {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    this.clearTimers();
    ws?.close(4000, "reconnecting");
    this.setStatus("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delayMs);
  }

  private startHeartbeat(intervalMs: number): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const every = Math.max(1_000, intervalMs || 25_000);
    this.lastFrameAt = Date.now();
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > every * 2) {
        this.dropAndReconnect(0);
        return;
      }
      this.send({ type: "ping" });
    }, every);
  }

  private endSession(): void {
    this.stop();
    this.opts.onUnauthenticated?.();
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.reconnectTimer = null;
    this.heartbeatTimer = null;
    this.connectTimer = null;
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.status_) return;
    this.status_ = status;
    this.statusListeners.forEach((fn) => fn(status));
  }

  private handleOnline = () => {
    if (!this.ready) this.reconnectNow();
  };
  private handleOffline = () => {
    this.setStatus("offline");
  };
}

export function defaultSocketUrl(): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/api/v1/ws`;
}
