//! The one application error. Every refusal the server can give is a variant here,
//! mapped in one place to an HTTP status and to the [`ErrorCode`] that HTTP error
//! bodies and WebSocket `error` frames carry; every port's error type becomes one
//! of these here, and nowhere else.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_protocol::ErrorCode;
use chat_protocol::http::{ErrorBody, ErrorDetail};

use crate::auth::HashError;
use crate::cache::CacheError;
use crate::log::LogError;
use crate::sessions::SessionError;
use crate::store::{GroupChangeError, StoreError};

/// What a refusal for a dependency that is down or behind (`unavailable`) tells the
/// client to wait: long enough not to hammer a node that is recovering, short enough
/// that a persister group's rebalance after a node died (seconds) is soon over.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    #[error("authentication required: send a valid access token")]
    Unauthenticated,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the refresh token is missing, expired or revoked; log in again")]
    InvalidRefreshToken,
    #[error("this request needs the `x-chat-csrf` header")]
    CsrfHeaderMissing,
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No route matches the path (under `/api/`; other paths are the web client's).
    #[error("there is no endpoint at `{0}`: the API is described at /api/v1/openapi.json")]
    NoSuchEndpoint(String),
    /// The path exists, but not with this method; the response's `Allow` says which.
    #[error("`{method}` is not allowed on `{path}`: the `Allow` header lists the methods that are")]
    MethodNotAllowed { method: String, path: String },
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("the request body is too large")]
    TooLarge,
    /// The body did not arrive within the body timeout (a slow-loris client).
    #[error("the request body did not arrive in time; send it at once")]
    RequestTimeout,
    #[error("{message}")]
    RateLimited {
        code: ErrorCode,
        message: String,
        retry_after: Duration,
    },
    #[error("{0} is unavailable right now; try again shortly")]
    Unavailable(&'static str),
    #[error("the server is busy checking passwords; try again in a few seconds")]
    Overloaded { retry_after: Duration },
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::RateLimited {
            code: ErrorCode::RateLimited,
            message: "too many messages; slow down".into(),
            retry_after,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated | Self::InvalidCredentials | Self::InvalidRefreshToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::CsrfHeaderMissing | Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoSuchEndpoint(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long a client should wait before trying again, for a refusal that is
    /// temporary: a rate limit, a full password queue, a dependency down or behind.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Overloaded { retry_after } => {
                Some(*retry_after)
            }
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { code, .. }
            | Self::Conflict { code, .. }
            | Self::Forbidden { code, .. }
            | Self::RateLimited { code, .. } => *code,
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::InvalidRefreshToken => ErrorCode::InvalidRefreshToken,
            Self::CsrfHeaderMissing => ErrorCode::CsrfHeaderMissing,
            Self::NotFound(_) | Self::NoSuchEndpoint(_) => ErrorCode::NotFound,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::TooLarge => ErrorCode::TooLarge,
            Self::RequestTimeout => ErrorCode::RequestTimeout,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Overloaded { .. } => ErrorCode::Overloaded,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl AppError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::Unavailable("the database"),
            StoreError::Corrupt(_) | StoreError::Refused(_) | StoreError::Failed(_) => {
                Self::internal(error)
            }
        }
    }
}

impl From<GroupChangeError> for AppError {
    fn from(error: GroupChangeError) -> Self {
        match error {
            GroupChangeError::Outsider => Self::NotFound("conversation"),
            GroupChangeError::NotAGroup => Self::invalid(
                ErrorCode::NotAGroup,
                "a direct conversation has no admins and its members never change",
            ),
            GroupChangeError::NotAdmin => Self::forbidden(
                ErrorCode::NotAdmin,
                "only an admin of the group can do that (anyone may leave)",
            ),
            GroupChangeError::NotMember(user) => Self::invalid(
                ErrorCode::NotAMember,
                format!("user {user} is not a member of this group; add them first"),
            ),
            GroupChangeError::LastAdmin => Self::conflict(
                ErrorCode::LastAdmin,
                "a group needs an admin: make another member admin first",
            ),
            GroupChangeError::LastMember => Self::conflict(
                ErrorCode::LastMember,
                "the last member cannot leave the group",
            ),
            GroupChangeError::Store(error) => error.into(),
        }
    }
}

impl From<SessionError> for AppError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Invalid | SessionError::Reused => Self::InvalidRefreshToken,
            SessionError::Store(error) => error.into(),
        }
    }
}

impl From<CacheError> for AppError {
    fn from(error: CacheError) -> Self {
        tracing::warn!(%error, "refused: the cache is down");
        Self::Unavailable("the cache")
    }
}

impl From<LogError> for AppError {
    fn from(error: LogError) -> Self {
        tracing::warn!(%error, "refused: the log did not accept it");
        Self::Unavailable("the message log")
    }
}

impl From<HashError> for AppError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy { retry_after } => Self::Overloaded { retry_after },
            error => Self::internal(error),
        }
    }
}

impl From<jsonwebtoken::errors::Error> for AppError {
    fn from(error: jsonwebtoken::errors::Error) -> Self {
        Self::internal(format!("issuing a token: {error}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Internal(error) = &self {
            tracing::error!(%error, "request failed");
        }
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::RequestTimeout) {
            // The rest of a body that timed out may never come: end the connection.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(retry_after) = self.retry_after() {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;
