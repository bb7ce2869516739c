//! Bodies of the HTTP API under `/api/v1` (DESIGN.md §4).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[allow(unused_imports)]
use serde_json::json;
use ts_rs::TS;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::errors::ErrorCode;
use crate::events::MessagePosted;
use crate::ids::{ConversationId, MessageId, UserId};

/// A user as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

/// The caller as they see themselves (`GET /me`): a [`User`], and their choices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[schema(example = json!({"id": "7212136519393280", "username": "ada", "display_name": "Ada", "dataset_consent": false, "dataset_consent_at": null}))]
pub struct Me {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    /// Whether the messages they send may enter the training dataset (README,
    /// "Training data"): pseudonymised and scrubbed of contact details, only while
    /// this is true. Until they choose, the operator's default applies.
    pub dataset_consent: bool,
    /// When they last chose; null while the operator's default applies.
    #[ts(type = "string | null")]
    pub dataset_consent_at: Option<DateTime<Utc>>,
}

/// `PATCH /me`: the caller's choices. Unknown fields are refused.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"dataset_consent": true}))]
pub struct UpdateMe {
    /// Allow (true) or stop (false) the use of the messages they send from now on
    /// in the training dataset; withdrawing also keeps the earlier ones out of every
    /// dataset built afterwards.
    pub dataset_consent: bool,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub body: String,
    /// The sender's idempotency key for this message.
    #[ts(type = "string")]
    pub client_msg_id: Uuid,
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
    /// The message this one replies to, in the same conversation.
    #[serde(default)]
    pub reply_to: Option<MessageId>,
    /// Members named as `@username` in the body.
    #[serde(default)]
    pub mentions: Vec<UserId>,
    /// When the body was last edited; `null` if never.
    #[serde(default)]
    #[ts(type = "string | null")]
    pub edited_at: Option<DateTime<Utc>>,
    /// A deleted message keeps its id, sender and time; its body is `""`.
    #[serde(default)]
    pub deleted: bool,
    /// The reactions, one entry per emoji, in the order each was first used.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
}

impl Message {
    /// A message as it was posted: never edited, no reactions.
    pub fn posted(event: &MessagePosted) -> Self {
        Self {
            id: event.id,
            conversation_id: event.conversation_id,
            sender_id: event.sender_id,
            body: event.body.clone(),
            client_msg_id: event.client_msg_id,
            created_at: event.created_at,
            reply_to: event.reply_to,
            mentions: event.mentions.clone(),
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
        }
    }
}

/// Everyone's reactions to a message with one emoji.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct Reaction {
    pub emoji: String,
    pub count: u32,
    /// Whether the reader is among them.
    pub me: bool,
    /// Who reacted, in the order they did: clients apply `reaction` events to this set,
    /// so a repeated event changes nothing.
    pub user_ids: Vec<UserId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    Direct,
    Group,
}

/// What a member may do in a group. Admins add and remove members, rename the group
/// and make or unmake admins; every member may leave. A group always has at least one
/// admin (its creator first); a direct conversation has members only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Admin,
    Member,
}

/// A member of a conversation, their role and how far they have read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct Member {
    pub user: User,
    pub role: MemberRole,
    /// The newest message this member has marked read, if any.
    pub last_read_id: Option<MessageId>,
}

/// A conversation as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct Conversation {
    pub id: ConversationId,
    pub kind: ConversationKind,
    /// The group's title; `null` for direct conversations.
    pub title: Option<String>,
    pub members: Vec<Member>,
    pub last_message: Option<Message>,
    /// Messages from others newer than the caller's read marker.
    pub unread_count: u32,
    /// Those of them that mention the caller.
    #[serde(default)]
    pub unread_mentions: u32,
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
#[schema(example = json!({"username": "ada", "password": "correct horse battery", "display_name": "Ada Lovelace"}))]
pub struct SignupRequest {
    /// 3 to 32 letters, digits or underscores; compared case-insensitively (stored
    /// lowercased).
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_]{3,32}$")]
    pub username: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// 1 to 64 characters; the username when absent. A name people see: no control
    /// characters (nor line or paragraph separators), no bidirectional overrides,
    /// embeddings, isolates or marks (U+202A to U+202E, U+2066 to U+2069, U+200E,
    /// U+200F, U+061C), and at least one visible character (not only whitespace,
    /// zero-width or other default-ignorable characters). `invalid_input` otherwise.
    #[serde(default)]
    #[ts(optional)]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\u00ad\\u034f\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f\\u2060-\\u206f\\u2800\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufff8][^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub display_name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
#[schema(example = json!({"username": "ada", "password": "correct horse battery"}))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The answer to signup and login; the refresh token travels in a cookie.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct AuthResponse {
    pub user: User,
    pub access_token: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct RefreshResponse {
    pub access_token: String,
    pub expires_in: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// A username or display-name prefix: 1 to 64 characters, not only spaces.
    #[param(min_length = 1, max_length = 64, pattern = "\\S")]
    pub q: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schema(example = json!({"kind": "group", "title": "Analytical engines", "member_ids": ["7212136519393280"]}))]
pub enum CreateConversation {
    /// The direct conversation with `user_id`; creating it twice returns the same one.
    Direct { user_id: UserId },
    /// A group of the caller and `member_ids`.
    Group {
        /// 1 to 100 characters, by the rule for every name people see (as a display
        /// name's): no control or bidirectional-control characters, something visible.
        #[schema(
            min_length = 1,
            max_length = 100,
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\u00ad\\u034f\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f\\u2060-\\u206f\\u2800\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufff8][^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )]
        title: String,
        /// The other members: at most 999 (a group has at most 1,000).
        #[schema(max_items = 999)]
        member_ids: Vec<UserId>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct AddMembers {
    /// 1 to 1,000 users; the group stays within 1,000 members.
    #[schema(min_items = 1, max_items = 1000)]
    pub user_ids: Vec<UserId>,
}

/// `PATCH /conversations/{id}` (admins of a group only): a new title, and members to
/// make or unmake admins. Name at least one change; a user may not be in both lists.
/// Unknown fields are refused, so a misspelt one is an error, not a silent no-op.
/// (The document's `minProperties: 1` is set by the server's OpenAPI modifier:
/// utoipa 5.5's `min_properties` attribute writes `maxProperties`.)
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Difference engines"}))]
pub struct UpdateConversation {
    /// The new title: 1 to 100 characters, by the rule for every name people see
    /// (as a display name's): no control or bidirectional-control characters,
    /// something visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\u00ad\\u034f\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f\\u2060-\\u206f\\u2800\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufff8][^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub title: Option<String>,
    /// Members to make admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(max_items = 1000)]
    pub add_admins: Option<Vec<UserId>>,
    /// Admins to make plain members; refused if no admin would remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(max_items = 1000)]
    pub remove_admins: Option<Vec<UserId>>,
}

/// Cursor parameters of `GET /conversations/{id}/messages`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only messages older than this id.
    pub before: Option<MessageId>,
    /// Only messages newer than this id. The page is still the newest of the range
    /// (newest first): to read forward from a message, page down from `before` with
    /// `after` as the floor.
    pub after: Option<MessageId>,
    /// At most this many (1 to 100, default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A page of history, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// Whether older messages of the range (newer than `after`, if given) remain past
    /// this page.
    pub has_more: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
#[schema(example = json!({"client_msg_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "body": "Hello, @ada!"}))]
pub struct SendMessage {
    /// The sender's idempotency key: a retry with the same key posts nothing new.
    #[ts(type = "string")]
    pub client_msg_id: Uuid,
    /// 1 to 4,000 characters (`MAX_BODY_CHARS`), not only whitespace, and no control
    /// character but newline, tab and carriage return (`invalid_input`).
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub body: String,
    /// A message of the same conversation this one answers.
    #[serde(default)]
    #[ts(optional)]
    pub reply_to: Option<MessageId>,
}

/// `PATCH /conversations/{id}/messages/{message_id}`: the author's new body.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
#[schema(example = json!({"client_msg_id": "0b9f3a52-8d0c-4a53-9d43-6f1c2f3a7e10", "body": "Hello, @ada! (edited)"}))]
pub struct EditMessage {
    #[ts(type = "string")]
    pub client_msg_id: Uuid,
    /// 1 to 4,000 characters (`MAX_BODY_CHARS`), not only whitespace, and no control
    /// character but newline, tab and carriage return (`invalid_input`).
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub body: String,
}

/// The idempotency key of a delete or a reaction over HTTP. Optional: both set a
/// state, so repeating one without a key changes nothing either.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangeKey {
    pub client_msg_id: Option<Uuid>,
}

/// Parameters of `GET /search`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words (each matches as a prefix, in any order) and `"quoted phrases"`; at most
    /// `MAX_SEARCH_CHARS` characters.
    #[param(min_length = 1, max_length = 200, pattern = "\\S")]
    pub q: String,
    /// Only this conversation.
    pub conversation_id: Option<ConversationId>,
    /// Only messages older than this id (the previous page's `next_before`).
    pub before: Option<MessageId>,
    /// At most this many (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A page of search results, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct SearchPage {
    pub results: Vec<SearchHit>,
    /// Pass as `before` for the next page; `null` when there is none.
    pub next_before: Option<MessageId>,
}

/// A message that matched, with its body cut into marked and unmarked pieces.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct SearchHit {
    pub message: Message,
    /// The body in order: concatenated, the pieces are the body.
    pub marked: Vec<Marked>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct Marked {
    pub text: String,
    /// Whether this piece is a matched term.
    pub matched: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct ErrorDetail {
    /// A stable snake_case code, such as `not_found` or `rate_limited`.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// `GET /readyz`: whether each dependency answers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, TS)]
pub struct Readiness {
    pub ready: bool,
    /// Dependency name → `"ok"` or what is wrong with it.
    pub checks: BTreeMap<String, String>,
}
