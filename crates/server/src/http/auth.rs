//! Sign-up, login, refresh and logout (DESIGN.md §7). The access token goes in the
//! response body (clients keep it in memory only); the refresh token only ever in an
//! `HttpOnly; SameSite=Strict` cookie scoped to `/api/v1/auth`. Refresh and logout
//! require the custom CSRF header, which a cross-site form cannot send.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use chat_protocol::ErrorCode;
use chat_protocol::http::{
    AuthResponse, ErrorBody, LoginRequest, RefreshResponse, SignupRequest, User,
};
use chat_protocol::{CSRF_HEADER, REFRESH_COOKIE};
use chrono::Utc;

use super::{ClientAddr, Json};
use crate::auth::{PasswordHasher, Tokens, new_refresh_token, refresh_token_hash};
use crate::cache::{Limit, RateLimits};
use crate::error::{AppError, AppResult};
use crate::sessions::{SessionError, Sessions};
use crate::store::{CreateUserError, Users};
use crate::text;

const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
const COOKIE_PATH: &str = "/api/v1/auth";
const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// How sign-up, login and sessions behave, from the configuration.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Mark the refresh cookie `Secure`.
    pub cookie_secure: bool,
    pub refresh_token_ttl_secs: u64,
    pub login_failures_per_account: u32,
    pub login_failures_per_address: u32,
    pub signups_per_minute: u32,
    /// Whether a user who never chose lets the training dataset use their messages.
    pub dataset_consent_by_default: bool,
}

/// What the auth endpoints (and `/me`, user search) use.
#[derive(Clone)]
pub struct AuthState {
    pub settings: Arc<AuthSettings>,
    pub users: Arc<dyn Users>,
    pub sessions: Arc<dyn Sessions>,
    pub tokens: Arc<Tokens>,
    /// Argon2id on its own bounded pool of threads (sign-up and login only).
    pub passwords: Arc<PasswordHasher>,
    /// Sign-up and failed-login throttles.
    pub limits: Arc<dyn RateLimits>,
}

#[utoipa::path(post, path = "/auth/signup", tag = "auth", operation_id = "signup", request_body = SignupRequest,
    responses((status = 201, body = AuthResponse, description = "signed up and logged in",
               headers(("set-cookie" = String, description = "the refresh token: `chat_refresh=…; HttpOnly; SameSite=Strict; Path=/api/v1/auth`"))),
              (status = 400, body = ErrorBody, description = "- `invalid_username`: not 3 to 32 letters, digits or underscores\n- `invalid_password`: not 8 to 128 characters\n- `invalid_input`: a display name that is long, holds control or bidirectional-control characters, or has nothing visible"),
              (status = 409, body = ErrorBody, description = "- `username_taken`: someone has this username"),
              (status = 429, body = ErrorBody, description = "- `rate_limited`: too many sign-ups from this address"),
              (status = 503, body = ErrorBody, description = "- `overloaded`: too many password checks are waiting; see `Retry-After`")))]
pub async fn signup(
    State(auth): State<AuthState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    Json(request): Json<SignupRequest>,
) -> AppResult<impl IntoResponse> {
    let username = check_username(&request.username)?;
    check_password(&request.password)?;
    let display_name = check_display_name(request.display_name.as_deref().unwrap_or(&username))?;
    let limit = Limit::per_window(auth.settings.signups_per_minute, Duration::from_secs(60));
    if let Err(retry_after) = auth
        .limits
        .acquire(&format!("signup:{addr}"), limit)
        .await?
    {
        return Err(AppError::RateLimited {
            code: ErrorCode::RateLimited,
            message: "too many sign-ups from this address; try again later".into(),
            retry_after,
        });
    }
    let hash = auth.passwords.hash(request.password).await?;
    let user = match auth
        .users
        .create_user(&username, &display_name, &hash)
        .await
    {
        Ok(user) => user,
        Err(CreateUserError::Taken) => {
            return Err(AppError::Conflict {
                code: ErrorCode::UsernameTaken,
                message: format!("the username `{username}` is taken"),
            });
        }
        Err(CreateUserError::Store(error)) => return Err(error.into()),
    };
    tracing::info!(user = %user.id, "signed up");
    let (jar, body) = start_session(&auth, jar, user).await?;
    Ok((StatusCode::CREATED, jar, Json(body)))
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "login", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse, description = "logged in",
               headers(("set-cookie" = String, description = "the refresh token: `chat_refresh=…; HttpOnly; SameSite=Strict; Path=/api/v1/auth`"))),
              (status = 401, body = ErrorBody, description = "- `invalid_credentials`: wrong username or password"),
              (status = 429, body = ErrorBody, description = "- `too_many_attempts`: too many failed logins for this account or address"),
              (status = 503, body = ErrorBody, description = "- `overloaded`: too many password checks are waiting; see `Retry-After`")))]
pub async fn login(
    State(auth): State<AuthState>,
    ClientAddr(addr): ClientAddr,
    jar: CookieJar,
    Json(request): Json<LoginRequest>,
) -> AppResult<impl IntoResponse> {
    let username = request.username.trim().to_lowercase();
    let account_key = format!("login:user:{username}");
    let address_key = format!("login:addr:{addr}");
    let account_limit = Limit::per_window(auth.settings.login_failures_per_account, LOGIN_WINDOW);
    let address_limit = Limit::per_window(auth.settings.login_failures_per_address, LOGIN_WINDOW);
    let attempt = [(account_key, account_limit), (address_key, address_limit)];
    reserve_attempt(&auth, &attempt).await?;
    let credentials = match auth.users.credentials(&username).await {
        Ok(credentials) => credentials,
        Err(error) => {
            refund_attempt(&auth, &attempt).await;
            return Err(error.into());
        }
    };
    let checked = match &credentials {
        Some(c) => {
            auth.passwords
                .verify(request.password, c.password_hash.clone())
                .await
        }
        None => auth.passwords.verify_dummy(request.password).await,
    };
    let valid = match checked {
        Ok(valid) => valid,
        Err(error) => {
            // Not checked (the hashing pool is full): not a failed attempt either.
            refund_attempt(&auth, &attempt).await;
            return Err(error.into());
        }
    };
    let Some(credentials) = credentials.filter(|_| valid) else {
        tracing::info!(%addr, "failed login");
        return Err(AppError::InvalidCredentials);
    };
    refund_attempt(&auth, &attempt).await;
    let (jar, body) = start_session(&auth, jar, credentials.user).await?;
    Ok((jar, Json(body)))
}

/// Takes one attempt from each of the login's buckets (the account's, then the
/// address's) before the password is checked, atomically in the cache, so parallel
/// guesses cannot all pass one check before any is counted. Refused (429) when a
/// bucket is empty; what was taken for a refused attempt is given back.
async fn reserve_attempt(auth: &AuthState, attempt: &[(String, Limit)]) -> AppResult<()> {
    for (taken, (key, limit)) in attempt.iter().enumerate() {
        let refused = match auth.limits.acquire(key, *limit).await {
            Ok(Ok(())) => continue,
            Ok(Err(retry_after)) => AppError::RateLimited {
                code: ErrorCode::TooManyAttempts,
                message: "too many failed logins; wait before trying again".into(),
                retry_after,
            },
            Err(error) => error.into(),
        };
        refund_attempt(auth, &attempt[..taken]).await;
        return Err(refused);
    }
    Ok(())
}

/// Gives back a reserved attempt that did not fail: a successful login, or one
/// whose password could not be checked.
async fn refund_attempt(auth: &AuthState, attempt: &[(String, Limit)]) {
    for (key, limit) in attempt {
        if let Err(error) = auth.limits.refund(key, *limit).await {
            tracing::warn!(%error, "a login attempt was not given back: the cache is down");
        }
    }
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "refresh",
    params(("x-chat-csrf" = String, Header, min_length = 1, example = "1", description = "any non-empty value: a cross-site form cannot send it (CSRF defence)"),
           ("chat_refresh" = Option<String>, Cookie, nullable = false, description = "the refresh token, set by sign-up, login and refresh")),
    responses((status = 200, body = RefreshResponse, description = "a new access token",
               headers(("set-cookie" = String, description = "the rotated refresh token; the presented one is spent"))),
              (status = 401, body = ErrorBody, description = "- `invalid_refresh_token`: the cookie is missing, expired or revoked, or was already rotated (which revokes its whole family)"),
              (status = 403, body = ErrorBody, description = "- `csrf_header_missing`: no `x-chat-csrf` header")))]
pub async fn refresh(
    State(auth): State<AuthState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> AppResult<impl IntoResponse> {
    require_csrf_header(&headers)?;
    let presented = jar
        .get(REFRESH_COOKIE)
        .map(|c| c.value().to_owned())
        .ok_or(AppError::InvalidRefreshToken)?;
    let token = new_refresh_token();
    let expires_at = Utc::now() + refresh_ttl(&auth.settings);
    let rotated = auth
        .sessions
        .rotate(
            &refresh_token_hash(&presented),
            &refresh_token_hash(&token),
            expires_at,
        )
        .await;
    if let Err(SessionError::Reused) = &rotated {
        tracing::warn!("a rotated refresh token was presented again; its family is revoked");
    }
    let user = rotated?;
    let access_token = auth.tokens.issue(user)?;
    let body = RefreshResponse {
        access_token,
        expires_in: auth.tokens.ttl().as_secs() as u32,
    };
    Ok((jar.add(refresh_cookie(&auth.settings, token)), Json(body)))
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "logout",
    params(("x-chat-csrf" = String, Header, min_length = 1, example = "1", description = "any non-empty value: a cross-site form cannot send it (CSRF defence)"),
           ("chat_refresh" = Option<String>, Cookie, nullable = false, description = "the refresh token whose family to revoke")),
    responses((status = 204, description = "the session's token family is revoked and the cookie cleared",
               headers(("set-cookie" = String, description = "clears `chat_refresh`"))),
              (status = 403, body = ErrorBody, description = "- `csrf_header_missing`: no `x-chat-csrf` header")))]
pub async fn logout(
    State(auth): State<AuthState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> AppResult<impl IntoResponse> {
    require_csrf_header(&headers)?;
    if let Some(cookie) = jar.get(REFRESH_COOKIE) {
        auth.sessions
            .revoke_family(&refresh_token_hash(cookie.value()))
            .await?;
    }
    let removal = Cookie::build((REFRESH_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(auth.settings.cookie_secure)
        .path(COOKIE_PATH)
        .build();
    Ok((StatusCode::NO_CONTENT, jar.remove(removal)))
}

async fn start_session(
    auth: &AuthState,
    jar: CookieJar,
    user: User,
) -> AppResult<(CookieJar, AuthResponse)> {
    let token = new_refresh_token();
    auth.sessions
        .start(
            user.id,
            &refresh_token_hash(&token),
            Utc::now() + refresh_ttl(&auth.settings),
        )
        .await?;
    let access_token = auth.tokens.issue(user.id)?;
    let body = AuthResponse {
        user,
        access_token,
        expires_in: auth.tokens.ttl().as_secs() as u32,
    };
    Ok((jar.add(refresh_cookie(&auth.settings, token)), body))
}

fn refresh_ttl(settings: &AuthSettings) -> chrono::Duration {
    chrono::Duration::seconds(settings.refresh_token_ttl_secs as i64)
}

fn refresh_cookie(settings: &AuthSettings, token: String) -> Cookie<'static> {
    Cookie::build((REFRESH_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(settings.cookie_secure)
        .path(COOKIE_PATH)
        .max_age(time_duration(settings.refresh_token_ttl_secs))
        .build()
}

fn time_duration(secs: u64) -> cookie::time::Duration {
    cookie::time::Duration::seconds(secs as i64)
}

fn require_csrf_header(headers: &HeaderMap) -> AppResult<()> {
    match headers.get(CSRF_HEADER) {
        Some(value) if !value.is_empty() => Ok(()),
        _ => Err(AppError::CsrfHeaderMissing),
    }
}

/// 3 to 32 characters of `a-z`, `0-9` and `_`, compared case-insensitively.
pub fn check_username(username: &str) -> AppResult<String> {
    let username = username.trim().to_lowercase();
    let valid = (3..=32).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(username)
    } else {
        Err(AppError::invalid(
            ErrorCode::InvalidUsername,
            "a username has 3 to 32 letters, digits or underscores",
        ))
    }
}

pub fn check_password(password: &str) -> AppResult<()> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AppError::invalid(
            ErrorCode::InvalidPassword,
            "a password has 8 to 128 characters",
        ))
    }
}

/// 1 to 64 characters, by the rule for every name people see ([`text::check_name`]).
pub fn check_display_name(name: &str) -> AppResult<String> {
    text::check_name("a display name", name, MAX_DISPLAY_NAME_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_restricted() {
        assert_eq!(check_username(" Alice_1 ").unwrap(), "alice_1");
        for bad in [
            "ab",
            "a b c",
            "ünïcode",
            "x".repeat(33).as_str(),
            "semi;colon",
        ] {
            assert_eq!(
                check_username(bad).unwrap_err().code(),
                ErrorCode::InvalidUsername,
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_and_display_names_have_bounds() {
        assert!(check_password("12345678").is_ok());
        assert!(check_password("1234567").is_err());
        assert!(check_password(&"p".repeat(129)).is_err());
        assert_eq!(check_display_name("  Ada L. ").unwrap(), "Ada L.");
        assert!(check_display_name("bell\u{7}").is_err());
        assert!(check_display_name(" ").is_err());
        assert!(check_display_name("Admin\u{202e}gnp.exe").is_err());
        assert!(check_display_name("\u{200b}\u{2060}").is_err());
    }
}
