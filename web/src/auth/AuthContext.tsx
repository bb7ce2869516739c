/**
 * Shares the session with the components: who is logged in, the actions that
 * change it, and the API client that runs on the session's token. On start it tries
 * the refresh cookie, so a reload stays logged in without the token ever touching
 * storage.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import type { LoginRequest, SignupRequest, User } from "../protocol";
import { createChatApi, type ChatApi } from "../api/client";
import { ApiError, NetworkError } from "../api/errors";
import type { Session } from "./session";

export type AuthState =
  | { status: "loading" }
  | { status: "unreachable" }
  | { status: "anonymous" }
  | { status: "authenticated"; user: User };

export interface AuthContextValue {
  state: AuthState;
  session: Session;
  api: ChatApi;
  // Functions, not methods: components take them out of the context on their own.
  login: (req: LoginRequest) => Promise<void>;
  signup: (req: SignupRequest) => Promise<void>;
  logout: () => Promise<void>;
}

const AuthContext = createContext<AuthContextValue | null>(null);

export function useAuth(): AuthContextValue {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error("useAuth must be used inside <AuthProvider>");
  return ctx;
}

export function AuthProvider({ session, children }: { session: Session; children: ReactNode }) {
  const [state, setState] = useState<AuthState>({ status: "loading" });
  const api = useMemo(() => createChatApi(session.fetch), [session]);

  useEffect(() => {
    let cancelled = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const resume = async (attempt: number) => {
      try {
        const token = await session.refresh();
        if (cancelled) return;
        if (!token) {
          setState({ status: "anonymous" });
          return;
        }
        const user = await api.me();
        if (!cancelled) setState({ status: "authenticated", user });
      } catch (e) {
        if (cancelled) return;
        if (e instanceof NetworkError || (e instanceof ApiError && e.status >= 500)) {
          setState({ status: "unreachable" });
          retry = setTimeout(() => void resume(attempt + 1), Math.min(10_000, 1_000 * 2 ** attempt));
        } else {
          setState({ status: "anonymous" });
        }
      }
    };
    void resume(0);
    const off = session.onEnded(() => setState({ status: "anonymous" }));
    return () => {
      cancelled = true;
      clearTimeout(retry);
      off();
    };
  }, [session, api]);

  const login = useCallback(
    async (req: LoginRequest) => setState({ status: "authenticated", user: await session.login(req) }),
    [session],
  );
  const signup = useCallback(
    async (req: SignupRequest) => setState({ status: "authenticated", user: await session.signup(req) }),
    [session],
  );
  const logout = useCallback(async () => {
    await session.logout();
    setState({ status: "anonymous" });
  }, [session]);

  const value = useMemo(
    () => ({ state, session, api, login, signup, logout }),
    [state, session, api, login, signup, logout],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
