// Generated from crates/protocol by `UPDATE_BINDINGS=1 cargo test -p chat-protocol`.
// Do not edit by hand.

export type UserId = string & { readonly __brand: "UserId" };

export type ConversationId = string & { readonly __brand: "ConversationId" };

export type MessageId = string & { readonly __brand: "MessageId" };

export type User = { id: UserId, username: string, display_name: string, };

export type Me = { id: UserId, username: string, display_name: string, 
/**
 * Whether the messages they send may enter the training dataset (README,
 * "Training data"): pseudonymised and scrubbed of contact details, only while
 * this is true. Until they choose, the operator's default applies.
 */
dataset_consent: boolean, 
/**
 * When they last chose; null while the operator's default applies.
 */
dataset_consent_at: string | null, };

export type UpdateMe = { 
/**
 * Allow (true) or stop (false) the use of the messages they send from now on
 * in the training dataset; withdrawing also keeps the earlier ones out of every
 * dataset built afterwards.
 */
dataset_consent: boolean, };

export type Message = { id: MessageId, conversation_id: ConversationId, sender_id: UserId, body: string, 
/**
 * The sender's idempotency key for this message.
 */
client_msg_id: string, created_at: string, 
/**
 * The message this one replies to, in the same conversation.
 */
reply_to: MessageId | null, 
/**
 * Members named as `@username` in the body.
 */
mentions: Array<UserId>, 
/**
 * When the body was last edited; `null` if never.
 */
edited_at: string | null, 
/**
 * A deleted message keeps its id, sender and time; its body is `""`.
 */
deleted: boolean, 
/**
 * The reactions, one entry per emoji, in the order each was first used.
 */
reactions: Array<Reaction>, };

export type Reaction = { emoji: string, count: number, 
/**
 * Whether the reader is among them.
 */
me: boolean, 
/**
 * Who reacted, in the order they did: clients apply `reaction` events to this set,
 * so a repeated event changes nothing.
 */
user_ids: Array<UserId>, };

export type MessageEdited = { 
/**
 * The event's own id.
 */
id: MessageId, conversation_id: ConversationId, 
/**
 * The message it changes.
 */
message_id: MessageId, 
/**
 * Who edited (always the author).
 */
user_id: UserId, client_msg_id: string, body: string, mentions: Array<UserId>, 
/**
 * When it was edited: the message's new `edited_at`.
 */
at: string, };

export type MessageDeleted = { id: MessageId, conversation_id: ConversationId, message_id: MessageId, 
/**
 * Who deleted it: the author, or an admin of the group.
 */
user_id: UserId, client_msg_id: string, at: string, };

export type ReactionChanged = { id: MessageId, conversation_id: ConversationId, message_id: MessageId, user_id: UserId, client_msg_id: string, 
/**
 * One emoji (a single grapheme).
 */
emoji: string, on: boolean, at: string, };

export type ConversationKind = "direct" | "group";

export type MemberRole = "admin" | "member";

export type Member = { user: User, role: MemberRole, 
/**
 * The newest message this member has marked read, if any.
 */
last_read_id: MessageId | null, };

export type Conversation = { id: ConversationId, kind: ConversationKind, 
/**
 * The group's title; `null` for direct conversations.
 */
title: string | null, members: Array<Member>, last_message: Message | null, 
/**
 * Messages from others newer than the caller's read marker.
 */
unread_count: number, 
/**
 * Those of them that mention the caller.
 */
unread_mentions: number, created_at: string, };

export type SignupRequest = { 
/**
 * 3 to 32 letters, digits or underscores; compared case-insensitively (stored
 * lowercased).
 */
username: string, 
/**
 * 8 to 128 characters.
 */
password: string, 
/**
 * 1 to 64 characters; the username when absent. A name people see: no control
 * characters (nor line or paragraph separators), no bidirectional overrides,
 * embeddings, isolates or marks (U+202A to U+202E, U+2066 to U+2069, U+200E,
 * U+200F, U+061C), and at least one visible character (not only whitespace,
 * zero-width or other default-ignorable characters). `invalid_input` otherwise.
 */
display_name?: string, };

export type LoginRequest = { username: string, password: string, };

export type AuthResponse = { user: User, access_token: string, 
/**
 * Seconds until `access_token` expires.
 */
expires_in: number, };

export type RefreshResponse = { access_token: string, expires_in: number, };

export type CreateConversation = { "kind": "direct", user_id: UserId, } | { "kind": "group", 
/**
 * 1 to 100 characters, by the rule for every name people see (as a display
 * name's): no control or bidirectional-control characters, something visible.
 */
title: string, 
/**
 * The other members: at most 999 (a group has at most 1,000).
 */
member_ids: Array<UserId>, };

export type AddMembers = { 
/**
 * 1 to 1,000 users; the group stays within 1,000 members.
 */
user_ids: Array<UserId>, };

export type UpdateConversation = { 
/**
 * The new title: 1 to 100 characters, by the rule for every name people see
 * (as a display name's): no control or bidirectional-control characters,
 * something visible.
 */
title?: string, 
/**
 * Members to make admins.
 */
add_admins?: Array<UserId>, 
/**
 * Admins to make plain members; refused if no admin would remain.
 */
remove_admins?: Array<UserId>, };

export type HistoryPage = { messages: Array<Message>, 
/**
 * Whether older messages of the range (newer than `after`, if given) remain past
 * this page.
 */
has_more: boolean, };

export type SendMessage = { 
/**
 * The sender's idempotency key: a retry with the same key posts nothing new.
 */
client_msg_id: string, 
/**
 * 1 to 4,000 characters (`MAX_BODY_CHARS`), not only whitespace, and no control
 * character but newline, tab and carriage return (`invalid_input`).
 */
body: string, 
/**
 * A message of the same conversation this one answers.
 */
reply_to?: MessageId, };

export type EditMessage = { client_msg_id: string, 
/**
 * 1 to 4,000 characters (`MAX_BODY_CHARS`), not only whitespace, and no control
 * character but newline, tab and carriage return (`invalid_input`).
 */
body: string, };

export type SearchPage = { results: Array<SearchHit>, 
/**
 * Pass as `before` for the next page; `null` when there is none.
 */
next_before: MessageId | null, };

export type SearchHit = { message: Message, 
/**
 * The body in order: concatenated, the pieces are the body.
 */
marked: Array<Marked>, };

export type Marked = { text: string, 
/**
 * Whether this piece is a matched term.
 */
matched: boolean, };

export type ErrorCode = "invalid_input" | "invalid_username" | "invalid_password" | "empty_body" | "body_too_long" | "not_a_member" | "not_a_group" | "not_author" | "message_deleted" | "invalid_reply" | "invalid_emoji" | "too_many_reactions" | "invalid_query" | "invalid_frame" | "malformed_json" | "already_authenticated" | "unauthenticated" | "invalid_credentials" | "invalid_refresh_token" | "csrf_header_missing" | "not_admin" | "not_found" | "method_not_allowed" | "username_taken" | "last_admin" | "last_member" | "send_in_progress" | "sync_in_progress" | "too_large" | "request_timeout" | "rate_limited" | "too_many_attempts" | "unavailable" | "overloaded" | "internal" | "unknown";

export type ErrorBody = { error: ErrorDetail, };

export type ErrorDetail = { 
/**
 * A stable snake_case code, such as `not_found` or `rate_limited`.
 */
code: ErrorCode, 
/**
 * What went wrong, for people.
 */
message: string, };

export type Readiness = { ready: boolean, 
/**
 * Dependency name → `"ok"` or what is wrong with it.
 */
checks: { [key in string]?: string }, };

export type ClientFrame = { "type": "auth", token: string, } | { "type": "send", conversation_id: ConversationId, client_msg_id: string, body: string, 
/**
 * A message of the same conversation this one answers.
 */
reply_to?: MessageId, } | { "type": "edit", conversation_id: ConversationId, message_id: MessageId, client_msg_id: string, body: string, } | { "type": "delete", conversation_id: ConversationId, message_id: MessageId, client_msg_id: string, } | { "type": "react", conversation_id: ConversationId, message_id: MessageId, client_msg_id: string, emoji: string, on: boolean, } | { "type": "typing", conversation_id: ConversationId, } | { "type": "read", conversation_id: ConversationId, message_id: MessageId, } | { "type": "sync", since?: MessageId, } | { "type": "ping" };

export type ServerFrame = { "type": "ready", user: User, heartbeat_ms: number, } | { "type": "ack", client_msg_id: string, 
/**
 * The message posted or changed.
 */
message_id: MessageId, conversation_id: ConversationId, 
/**
 * The event's id (a send's is the message's).
 */
event_id: MessageId, } | { "type": "message", message: Message, } | { "type": "edited" } & MessageEdited | { "type": "deleted" } & MessageDeleted | { "type": "reaction" } & ReactionChanged | { "type": "typing", conversation_id: ConversationId, user_id: UserId, } | { "type": "read", conversation_id: ConversationId, user_id: UserId, message_id: MessageId, } | { "type": "presence", user_id: UserId, online: boolean, } | { "type": "conversation", conversation: Conversation, } | { "type": "removed", conversation_id: ConversationId, } | { "type": "synced", until: MessageId | null, } | { "type": "error", code: ErrorCode, message: string, client_msg_id?: string, 
/**
 * A temporary refusal (`unavailable`, `rate_limited`): how long to wait before
 * sending the frame again. A client retries a refused `sync` after at least
 * this long, backing off further on each refusal.
 */
retry_after_ms?: number, } | { "type": "pong" };

export const MAX_BODY_CHARS = 4000;
export const MAX_FRAME_BYTES = 65536;
export const MAX_HISTORY_LIMIT = 100;
export const MAX_SEARCH_CHARS = 200;
export const MAX_REACTIONS_PER_MESSAGE = 20;
export const CSRF_HEADER = "x-chat-csrf";
