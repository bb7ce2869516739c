/**
 * The client side of DESIGN.md §7: the access token lives here, in memory only.
 *
 * The refresh cookie is HttpOnly, so the only thing this class can do with it is ask
 * the server to rotate it. Rotation with reuse detection means two concurrent refreshes
 * with the same cookie would revoke the whole session, so refreshes are single-flight
 * within a tab and serialized across tabs with the Web Locks API where available.
 * A refresh is scheduled before the token expires, and `fetch` refreshes once after a 401.
 */
import type { AuthResponse, LoginRequest, RefreshResponse, SignupRequest, User } from "../protocol";
import { CSRF_HEADER } from "../protocol";
import { ApiError, NetworkError } from "../api/errors";

export const API_BASE = "/api/v1";

/** How long before expiry to refresh: a minute, or a quarter of a short lifetime. */
export function refreshLeadMs(expiresInSec: number): number {
  return Math.min(60_000, (expiresInSec * 1000) / 4);
}

type Listener = () => void;

export interface SessionOptions {
  fetch?: typeof fetch;
  now?: () => number;
  locks?: Pick<LockManager, "request"> | null;
  /** Tells the other tabs about a logout; null to stay silent (tests). */
  channel?: BroadcastChannel | null;
}

export class Session {
  private token: string | null = null;
  private expiresAt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inflight: Promise<string | null> | null = null;
  private endedListeners = new Set<Listener>();
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  private readonly locks: Pick<LockManager, "request"> | null;
  private readonly channel: BroadcastChannel | null;

  constructor(opts: SessionOptions = {}) {
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.now = opts.now ?? Date.now;
    this.locks =
      opts.locks !== undefined ? opts.locks : typeof navigator !== "undefined" && navigator.locks ? navigator.locks : null;
    this.channel = opts.channel !== undefined ? opts.channel : typeof BroadcastChannel !== "undefined" ? new BroadcastChannel("chat-auth") : null;
    // Logging out in one tab revokes the refresh family: the other tabs follow at once.
    if (this.channel) this.channel.onmessage = (ev: MessageEvent) => ev.data === "logout" && this.end();
  }

  get accessToken(): string | null {
    return this.token;
  }

  /** Called when the session is gone for good (refresh refused): the UI shows log-in. */
  onEnded(fn: Listener): () => void {
    this.endedListeners.add(fn);
    return () => this.endedListeners.delete(fn);
  }

  async signup(req: SignupRequest): Promise<User> {
    return this.authenticate("/auth/signup", req);
  }

  async login(req: LoginRequest): Promise<User> {
    return this.authenticate("/auth/login", req);
  }

  /** Revokes the refresh token family on the server and forgets the access token. */
  async logout(): Promise<void> {
    const token = this.token;
    this.clear();
    this.channel?.postMessage("logout");
    try {
      await this.fetchImpl(`${API_BASE}/auth/logout`, {
        method: "POST",
        credentials: "same-origin",
        headers: { [CSRF_HEADER]: "1", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
    } catch {
      // Offline: the cookie stays until it expires, but this tab forgets everything.
    }
  }

  /**
   * A token valid for at least a few more seconds, refreshing if needed.
   * Resolves null when there is no session; rejects with NetworkError when offline.
   */
  async getToken(): Promise<string | null> {
    if (this.token && this.expiresAt - this.now() > 5_000) return this.token;
    return this.refresh();
  }

  /** Rotates the refresh cookie for a new access token. Single-flight. */
  refresh(): Promise<string | null> {
    if (!this.inflight) {
      const run = () => this.doRefresh();
      const locks = this.locks;
      const p = locks ? (async () => await locks.request("chat-auth-refresh", run))() : run();
      this.inflight = p.finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  /** `fetch` for the API: adds the bearer token, refreshes and retries once after a 401. */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const first = await this.getToken();
    if (!first) throw new ApiError(401, "unauthenticated", "Please log in again.");
    let res = await this.send(path, init, first);
    if (res.status === 401) {
      const fresh = await this.refresh();
      if (!fresh) throw new ApiError(401, "unauthenticated", "Please log in again.");
      res = await this.send(path, init, fresh);
    }
    return res;
  }

  /** `fetch` plus JSON decoding and ApiError for non-2xx answers. */
  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const headers = new Headers(init.headers);
    if (init.body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
    const res = await this.fetch(path, { ...init, headers });
    if (!res.ok) throw await ApiError.from(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Stops timers; used when the app unmounts and in tests. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async send(path: string, init: RequestInit, token: string): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${token}`);
    try {
      return await this.fetchImpl(`${API_BASE}${path}`, { ...init, headers, credentials: "same-origin" });
    } catch (e) {
      throw new NetworkError(e);
    }
  }

  private async authenticate(path: string, body: unknown): Promise<User> {
    let res: Response;
    try {
      res = await this.fetchImpl(`${API_BASE}${path}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new NetworkError(e);
    }
    if (!res.ok) throw await ApiError.from(res);
    const auth = (await res.json()) as AuthResponse;
    this.setToken(auth.access_token, auth.expires_in);
    return auth.user;
  }

  private async doRefresh(): Promise<string | null> {
    let res: Response;
    try {
      res = await this.fetchImpl(`${API_BASE}/auth/refresh`, {
        method: "POST",
        credentials: "same-origin",
        headers: { [CSRF_HEADER]: "1" },
      });
    } catch (e) {
      // Keep the current token (it may still be valid) and try again shortly.
      if (this.token) this.schedule(5_000);
      throw new NetworkError(e);
    }
    if (res.status === 401 || res.status === 403) {
      this.end();
      return null;
    }
    if (!res.ok) {
      if (this.token) this.schedule(5_000);
      throw await ApiError.from(res);
    }
    const body = (await res.json()) as RefreshResponse;
    this.setToken(body.access_token, body.expires_in);
    return body.access_token;
  }

  private setToken(token: string, expiresInSec: number): void {
    this.token = token;
    this.expiresAt = this.now() + expiresInSec * 1000;
    this.schedule(expiresInSec * 1000 - refreshLeadMs(expiresInSec));
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh().catch(() => {
        // Network trouble: doRefresh already scheduled the next attempt.
      });
    }, Math.max(0, delayMs));
  }

  /** The session is over (refused refresh, or a logout in another tab). */
  private end(): void {
    const hadSession = this.token !== null;
    this.clear();
    if (hadSession) this.endedListeners.forEach((fn) => fn());
  }

  private clear(): void {
    this.token = null;
    this.expiresAt = 0;
    this.dispose();
  }
}
