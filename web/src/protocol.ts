// Generated from crates/protocol by `UPDATE_BINDINGS=1 cargo test -p chat-protocol`.
// Do not edit by hand.

export type UserId = string & { readonly __brand: "UserId" };

export type ConversationId = string & { readonly __brand: "ConversationId" };

export type MessageId = string & { readonly __brand: "MessageId" };

export type User = { id: UserId, username: string, display_name: string, };

export type Message = { id: MessageId, conversation_id: ConversationId, sender_id: UserId, body: string, 
/**
 * The sender's idempotency key for this message.
 */
client_msg_id: string, created_at: string, };

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
unread_count: number, created_at: string, };

export type SignupRequest = { username: string, password: string, display_name?: string, };

export type LoginRequest = { username: string, password: string, };

export type AuthResponse = { user: User, access_token: string, 
/**
 * Seconds until `access_token` expires.
 */
expires_in: number, };

export type RefreshResponse = { access_token: string, expires_in: number, };

export type CreateConversation = { "kind": "direct", user_id: UserId, } | { "kind": "group", title: string, member_ids: Array<UserId>, };

export type AddMembers = { user_ids: Array<UserId>, };

export type UpdateConversation = { title?: string, 
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
 * Whether older (or, with `after`, newer) messages remain past this page.
 */
has_more: boolean, };

export type SendMessage = { client_msg_id: string, body: string, };

export type ErrorCode = "invalid_input" | "invalid_username" | "invalid_password" | "empty_body" | "body_too_long" | "not_a_member" | "not_a_group" | "invalid_frame" | "malformed_json" | "already_authenticated" | "unauthenticated" | "invalid_credentials" | "invalid_refresh_token" | "csrf_header_missing" | "not_admin" | "not_found" | "username_taken" | "last_admin" | "last_member" | "send_in_progress" | "sync_in_progress" | "too_large" | "rate_limited" | "too_many_attempts" | "unavailable" | "internal" | "unknown";

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

export type ClientFrame = { "type": "auth", token: string, } | { "type": "send", conversation_id: ConversationId, client_msg_id: string, body: string, } | { "type": "typing", conversation_id: ConversationId, } | { "type": "read", conversation_id: ConversationId, message_id: MessageId, } | { "type": "sync", since?: MessageId, } | { "type": "ping" };

export type ServerFrame = { "type": "ready", user: User, heartbeat_ms: number, } | { "type": "ack", client_msg_id: string, message_id: MessageId, conversation_id: ConversationId, } | { "type": "message", message: Message, } | { "type": "typing", conversation_id: ConversationId, user_id: UserId, } | { "type": "read", conversation_id: ConversationId, user_id: UserId, message_id: MessageId, } | { "type": "presence", user_id: UserId, online: boolean, } | { "type": "conversation", conversation: Conversation, } | { "type": "removed", conversation_id: ConversationId, } | { "type": "synced", until: MessageId | null, } | { "type": "error", code: ErrorCode, message: string, client_msg_id?: string, } | { "type": "pong" };

export const MAX_BODY_CHARS = 4000;
export const MAX_FRAME_BYTES = 65536;
export const MAX_HISTORY_LIMIT = 100;
export const CSRF_HEADER = "x-chat-csrf";
