/**
 * The auth endpoints (DESIGN.md §7). They run without an access token: signup and
 * login answer with one, refresh rotates the HttpOnly refresh cookie for a new one,
 * logout revokes the cookie's family. Refresh and logout carry the CSRF header,
 * since the cookie alone would authorize them.
 *
 * Only `Session` calls these; it owns the token they hand out.
 */
import type { AuthResponse, LoginRequest, RefreshResponse, SignupRequest } from "../protocol";
import { CSRF_HEADER } from "../protocol";
import { postJson, sendForNothing, type ApiFetch } from "./http";

export interface AuthApi {
  signup(req: SignupRequest): Promise<AuthResponse>;
  login(req: LoginRequest): Promise<AuthResponse>;
  /** Rejects with ApiError 401/403 when the cookie is missing, expired or reused. */
  refresh(): Promise<RefreshResponse>;
  /** The token, when there is one, lets the server end this very session too. */
  logout(accessToken: string | null): Promise<void>;
}

const CSRF = { [CSRF_HEADER]: "1" };

export function createAuthApi(fetch: ApiFetch): AuthApi {
  return {
    signup: (req) => postJson<SignupRequest, AuthResponse>(fetch, "/auth/signup", req),
    login: (req) => postJson<LoginRequest, AuthResponse>(fetch, "/auth/login", req),
    refresh: () => postJson<undefined, RefreshResponse>(fetch, "/auth/refresh", undefined, CSRF),
    logout: (accessToken) =>
      sendForNothing(fetch, "/auth/logout", "POST", {
        ...CSRF,
        ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}),
      }),
  };
}
