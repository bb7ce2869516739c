/** Log-in and sign-up, with the server's rules checked before sending. */
import { useId, useState, type FormEvent } from "react";
import { useAuth } from "../auth/AuthContext";
import { ApiError } from "../api/errors";

type Mode = "login" | "signup";

const USERNAME_RE = /^[a-z0-9_]{3,32}$/;

export function validateUsername(v: string): string | null {
  if (!v) return "Enter a username.";
  if (v.length < 3 || v.length > 32) return "Usernames are 3 to 32 characters long.";
  if (!USERNAME_RE.test(v)) return "Use only lowercase letters, digits and underscores.";
  return null;
}

export function validatePassword(v: string): string | null {
  if (!v) return "Enter a password.";
  if (v.length < 8) return "Passwords have at least 8 characters.";
  if (v.length > 128) return "Passwords have at most 128 characters.";
  return null;
}

export function AuthScreen() {
  const { login, signup } = useAuth();
  const [mode, setMode] = useState<Mode>("login");
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [password, setPassword] = useState("");
  const [touched, setTouched] = useState<{ username?: boolean; password?: boolean }>({});
  const [submitted, setSubmitted] = useState(false);
  const [busy, setBusy] = useState(false);
  const [serverError, setServerError] = useState<string | null>(null);
  const ids = { user: useId(), name: useId(), pass: useId(), userErr: useId(), passErr: useId() };

  const usernameError = validateUsername(username);
  const passwordError = mode === "signup" ? validatePassword(password) : password ? null : "Enter your password.";
  const showUser = (touched.username || submitted) && usernameError;
  const showPass = (touched.password || submitted) && passwordError;

  async function onSubmit(e: FormEvent) {
    e.preventDefault();
    setSubmitted(true);
    setServerError(null);
    if (usernameError || passwordError) return;
    setBusy(true);
    try {
      if (mode === "login") await login({ username, password });
      else await signup({ username, password, ...(displayName.trim() ? { display_name: displayName.trim() } : {}) });
    } catch (err) {
      setServerError(describeAuthError(err, mode));
      setBusy(false);
    }
  }

  function switchMode(next: Mode) {
    setMode(next);
    setSubmitted(false);
    setTouched({});
    setServerError(null);
  }

  return (
    <main className="auth">
      <form className="auth-card" onSubmit={(e) => void onSubmit(e)} noValidate aria-labelledby="auth-title">
        <div className="brand" aria-hidden="true">
          <span className="brand-mark" />
          Chat
        </div>
        <h1 id="auth-title">{mode === "login" ? "Log in" : "Create your account"}</h1>

        <label htmlFor={ids.user}>Username</label>
        <input
          id={ids.user}
          name="username"
          autoComplete="username"
          autoCapitalize="none"
          spellCheck={false}
          value={username}
          onChange={(e) => setUsername(e.target.value.trim())}
          onBlur={() => setTouched((t) => ({ ...t, username: true }))}
          aria-invalid={!!showUser}
          aria-describedby={showUser ? ids.userErr : undefined}
        />
        {showUser && (
          <p className="field-error" id={ids.userErr}>
            {usernameError}
          </p>
        )}

        {mode === "signup" && (
          <>
            <label htmlFor={ids.name}>
              Display name <span className="optional">(optional)</span>
            </label>
            <input
              id={ids.name}
              name="display_name"
              autoComplete="nickname"
              value={displayName}
              maxLength={64}
              onChange={(e) => setDisplayName(e.target.value)}
            />
          </>
        )}

        <label htmlFor={ids.pass}>Password</label>
        <input
          id={ids.pass}
          name="password"
          type="password"
          autoComplete={mode === "login" ? "current-password" : "new-password"}
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          onBlur={() => setTouched((t) => ({ ...t, password: true }))}
          aria-invalid={!!showPass}
          aria-describedby={showPass ? ids.passErr : undefined}
        />
        {showPass && (
          <p className="field-error" id={ids.passErr}>
            {passwordError}
          </p>
        )}

        {serverError && (
          <p className="form-error" role="alert">
            {serverError}
          </p>
        )}

        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Please wait…" : mode === "login" ? "Log in" : "Sign up"}
        </button>

        <p className="auth-switch">
          {mode === "login" ? (
            <>
              New here?{" "}
              <button type="button" className="link" onClick={() => switchMode("signup")}>
                Create an account
              </button>
            </>
          ) : (
            <>
              Already have an account?{" "}
              <button type="button" className="link" onClick={() => switchMode("login")}>
                Log in
              </button>
            </>
          )}
        </p>
      </form>
    </main>
  );
}

function describeAuthError(err: unknown, mode: Mode): string {
  if (err instanceof ApiError) {
    switch (err.code) {
      case "invalid_credentials":
        if (mode === "login") return "Wrong username or password.";
        break;
      case "username_taken":
        return "That username is taken. Try another one.";
      case "rate_limited":
      case "too_many_attempts":
        return "Too many attempts. Wait a minute and try again.";
      case "overloaded":
        return "The server is busy. Try again in a few seconds.";
    }
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return "Something went wrong. Try again.";
}
