/**
 * The client side of DESIGN.md §7: the access token lives here, in memory only.
 *
 * The refresh cookie is HttpOnly, so the only thing this class can do with it is ask
 * the server to rotate it. Rotation with reuse detection means two concurrent refreshes
 * with the same cookie would revoke the whole session, so refreshes are single-flight
 * within a tab and serialized across tabs with the Web Locks API where available.
 * A refresh is scheduled before the token expires, and `fetch` refreshes once after a 401.
 */
import type { AuthResponse, LoginRequest, SignupRequest, User } from "../protocol";
import { createAuthApi, type AuthApi } from "../api/auth";
import { ApiError } from "../api/errors";
import { apiFetch, type ApiFetch } from "../api/http";

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
  /** Requests without the access token: the auth endpoints, and the base of `fetch`. */
  private readonly http: ApiFetch;
  private readonly authApi: AuthApi;
  private readonly now: () => number;
  private readonly locks: Pick<LockManager, "request"> | null;
  private readonly channel: BroadcastChannel | null;

  constructor(opts: SessionOptions = {}) {
    this.http = apiFetch(opts.fetch ?? ((input, init) => globalThis.fetch(input, init)));
    this.authApi = createAuthApi(this.http);
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
    return this.start(await this.authApi.signup(req));
  }

  async login(req: LoginRequest): Promise<User> {
    return this.start(await this.authApi.login(req));
  }

  /** Revokes the refresh token family on the server and forgets the access token. */
  async logout(): Promise<void> {
    const token = this.token;
    this.clear();
    this.channel?.postMessage("logout");
    try {
      await this.authApi.logout(token);
    } catch {
      // Offline or refused: the cookie stays until it expires, but this tab forgets everything.
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

  /**
   * `fetch` for the API (a path under API_BASE): adds the bearer token, refreshes and
   * retries once after a 401. The endpoint functions of api/client.ts run on it.
   */
  fetch: ApiFetch = async (path, init) => {
    const first = await this.getToken();
    if (!first) throw new ApiError(401, "unauthenticated", "Please log in again.");
    let res = await this.send(path, init, first);
    if (res.status === 401) {
      const fresh = await this.refresh();
      if (!fresh) throw new ApiError(401, "unauthenticated", "Please log in again.");
      res = await this.send(path, init, fresh);
    }
    return res;
  };

  /** Stops timers; used when the app unmounts and in tests. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private send(path: string, init: RequestInit, token: string): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${token}`);
    return this.http(path, { ...init, headers });
  }

  /** Takes on the token signup or login handed out. */
  private start(auth: AuthResponse): User {
    this.setToken(auth.access_token, auth.expires_in);
    return auth.user;
  }

  private async doRefresh(): Promise<string | null> {
    try {
      const { access_token, expires_in } = await this.authApi.refresh();
      this.setToken(access_token, expires_in);
      return access_token;
    } catch (e) {
      // The cookie was refused: the session is over, which is an answer, not an error.
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        this.end();
        return null;
      }
      // Offline or a server in trouble: keep the current token (it may still be valid)
      // and try again shortly.
      if (this.token) this.schedule(5_000);
      throw e;
    }
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
