//! Every error code the server sends, in HTTP error bodies (`error.code`) and in
//! WebSocket `error` frames (`code`). One enum, so no code is spelled twice and the
//! TypeScript side gets a union type it can switch on exhaustively.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// A stable snake_case code: what went wrong, for programs. The HTTP status (or the
/// frame it arrives in) says how bad; the message beside it says it for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A field is missing, malformed or out of range (400).
    InvalidInput,
    /// The username breaks the username rules (400).
    InvalidUsername,
    /// The password is too short or too long (400).
    InvalidPassword,
    /// A message body is blank (400, or an `error` frame).
    EmptyBody,
    /// A message body is longer than `MAX_BODY_CHARS` characters.
    BodyTooLong,
    /// A role change names a user who is not a member of the group (400).
    NotAMember,
    /// A membership change on a conversation that is not a group (400).
    NotAGroup,
    /// Only a message's author may edit it, and only the author or a group admin may
    /// delete it (403).
    NotAuthor,
    /// The message was deleted: it cannot be edited, reacted to or replied to (409).
    MessageDeleted,
    /// `reply_to` is not a message of this conversation (400).
    InvalidReply,
    /// A reaction must be a single emoji (400).
    InvalidEmoji,
    /// The message already carries `MAX_REACTIONS_PER_MESSAGE` distinct emoji (409).
    TooManyReactions,
    /// The search query cannot be read, or is too long (400).
    InvalidQuery,
    /// The WebSocket frame is JSON but not a frame the server knows.
    InvalidFrame,
    /// The WebSocket frame is not JSON.
    MalformedJson,
    /// An `auth` frame on a connection that is already authenticated.
    AlreadyAuthenticated,
    /// No valid access token (401).
    Unauthenticated,
    /// Wrong username or password (401).
    InvalidCredentials,
    /// The refresh cookie is missing, expired, revoked or reused (401).
    InvalidRefreshToken,
    /// Refresh and logout need the CSRF header (403).
    CsrfHeaderMissing,
    /// Only an admin of the group may do that: add or remove others, rename, change
    /// roles (403).
    NotAdmin,
    /// No such thing, or the caller may not know it exists (404).
    NotFound,
    /// The path exists, but not with this method; `Allow` lists those it has (405).
    MethodNotAllowed,
    /// The username is taken (409).
    UsernameTaken,
    /// The change would leave the group without an admin: make another member admin
    /// first (409).
    LastAdmin,
    /// The last member cannot leave a group (409).
    LastMember,
    /// A send with the same `client_msg_id` is still being appended (409).
    SendInProgress,
    /// A `sync` is already running on this connection.
    SyncInProgress,
    /// The request body is too large (413).
    TooLarge,
    /// The request body did not arrive within the server's body timeout (408); the
    /// connection is closed.
    RequestTimeout,
    /// Too many requests or messages; `Retry-After` says when to try again (429).
    RateLimited,
    /// Too many failed logins for this account or address (429).
    TooManyAttempts,
    /// A dependency is down; try again shortly (503).
    Unavailable,
    /// The server has more sign-ups and logins waiting for a password check than it
    /// queues; `Retry-After` says when to try again (503).
    Overloaded,
    /// A bug or an unexpected failure on the server (500).
    Internal,
    /// A code this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for ErrorCode {
    /// The code as it travels (serde's name is the only spelling of it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(json.trim_matches('"'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_snake_case_names() {
        assert_eq!(ErrorCode::SendInProgress.to_string(), "send_in_progress");
        for code in [
            ErrorCode::InvalidInput,
            ErrorCode::SendInProgress,
            ErrorCode::CsrfHeaderMissing,
            ErrorCode::NotAdmin,
            ErrorCode::LastMember,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn a_code_from_a_newer_server_reads_as_unknown() {
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"quota_exceeded\"").unwrap(),
            ErrorCode::Unknown
        );
    }
}
