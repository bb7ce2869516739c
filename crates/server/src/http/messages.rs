//! Messages: history, search, and the same changes as the WebSocket frames (post,
//! edit, delete, react) for bots and scripts, through the same [`SendService`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::http::{
    ChangeKey, EditMessage, ErrorBody, HistoryPage, HistoryQuery, Message, SearchPage, SearchQuery,
    SendMessage,
};
use chat_protocol::{ConversationId, MessageId, UserId};
use uuid::Uuid;

use super::{AuthUser, Json, Path, Query};
use crate::error::AppResult;
use crate::history::HistoryService;
use crate::send::{SendService, Sent};

/// What the message endpoints use.
#[derive(Clone)]
pub struct MessagesState {
    pub history: Arc<HistoryService>,
    pub sender: Arc<SendService>,
}

type Messages = State<MessagesState>;

impl MessagesState {
    /// The message a change produced, as the caller sees it once history has it.
    async fn after(&self, sent: &Sent, reader: UserId) -> AppResult<Message> {
        self.history.acknowledged(sent.message_id(), reader).await
    }

    /// Turns the caller's reaction on or off (PUT and DELETE of one path).
    async fn set_reaction(
        &self,
        me: UserId,
        (id, message_id, emoji): (ConversationId, MessageId, String),
        key: ChangeKey,
        on: bool,
    ) -> AppResult<StatusCode> {
        self.sender
            .react(me, id, message_id, key_of(key), emoji, on)
            .await?;
        Ok(StatusCode::NO_CONTENT)
    }
}

/// The caller's key, or a fresh one: a delete or a reaction sets a state, so a
/// repeat without a key changes nothing either.
fn key_of(key: ChangeKey) -> Uuid {
    key.client_msg_id.unwrap_or_else(Uuid::new_v4)
}

#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "messages", operation_id = "history",
    security(("bearer" = [])), params(("id" = ConversationId, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage, description = "newest first")))]
pub async fn history(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Query(query): Query<HistoryQuery>,
) -> AppResult<Json<HistoryPage>> {
    let page = messages
        .history
        .page(me, id, query.before, query.after, query.limit)
        .await?;
    Ok(Json(page))
}

#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "messages", operation_id = "send_message",
    security(("bearer" = [])), params(("id" = ConversationId, Path)), request_body = SendMessage,
    responses((status = 201, body = Message, description = "durably accepted"),
              (status = 200, body = Message, description = "a retry of an accepted send (same `client_msg_id`): the same message"),
              (status = 400, body = ErrorBody, description = "- `empty_body`: nothing but whitespace\n- `body_too_long`: more than 4,000 characters\n- `invalid_input`: a control character other than newline, tab or carriage return\n- `invalid_reply`: `reply_to` is not a message of this conversation"),
              (status = 409, body = ErrorBody, description = "- `message_deleted`: replying to a deleted message\n- `send_in_progress`: the same `client_msg_id` is still being appended"),
              (status = 429, body = ErrorBody, description = "- `rate_limited`: too many messages; wait `Retry-After` seconds")))]
pub async fn send(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Json(request): Json<SendMessage>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let sent = messages
        .sender
        .send(
            me,
            id,
            request.client_msg_id,
            request.body,
            request.reply_to,
        )
        .await?;
    match sent {
        Sent::New(ref event) => match event.as_ref() {
            chat_protocol::events::Event::Message(posted) => {
                Ok((StatusCode::CREATED, Json(Message::posted(posted))))
            }
            _ => Ok((StatusCode::CREATED, Json(messages.after(&sent, me).await?))),
        },
        // The original is in the log; answer with it once history has it.
        Sent::Replayed(_) => Ok((StatusCode::OK, Json(messages.after(&sent, me).await?))),
    }
}

#[utoipa::path(get, path = "/conversations/{id}/messages/{message_id}", tag = "messages", operation_id = "get_message",
    security(("bearer" = [])), params(("id" = ConversationId, Path), ("message_id" = MessageId, Path)),
    responses((status = 200, body = Message, description = "the message as it is now")))]
pub async fn get_one(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
) -> AppResult<Json<Message>> {
    Ok(Json(messages.history.one(me, id, message_id).await?))
}

#[utoipa::path(patch, path = "/conversations/{id}/messages/{message_id}", tag = "messages", operation_id = "edit_message",
    security(("bearer" = [])), params(("id" = ConversationId, Path), ("message_id" = MessageId, Path)),
    request_body = EditMessage,
    responses((status = 200, body = Message, description = "edited (or a retry of the same edit): the message as it is now"),
              (status = 400, body = ErrorBody, description = "- `empty_body`: nothing but whitespace\n- `body_too_long`: more than 4,000 characters\n- `invalid_input`: a control character other than newline, tab or carriage return"),
              (status = 403, body = ErrorBody, description = "- `not_author`: only the author edits a message"),
              (status = 409, body = ErrorBody, description = "- `message_deleted`: the message was deleted\n- `send_in_progress`: the same `client_msg_id` is still being appended"),
              (status = 429, body = ErrorBody, description = "- `rate_limited`: too many changes; wait `Retry-After` seconds")))]
pub async fn edit(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    Json(request): Json<EditMessage>,
) -> AppResult<Json<Message>> {
    let sent = messages
        .sender
        .edit(me, id, message_id, request.client_msg_id, request.body)
        .await?;
    Ok(Json(messages.after(&sent, me).await?))
}

#[utoipa::path(delete, path = "/conversations/{id}/messages/{message_id}", tag = "messages", operation_id = "delete_message",
    security(("bearer" = [])), params(("id" = ConversationId, Path), ("message_id" = MessageId, Path), ChangeKey),
    responses((status = 204, description = "deleted (or a retry of the same deletion)"),
              (status = 403, body = ErrorBody, description = "- `not_author`: neither the author nor an admin of the group"),
              (status = 409, body = ErrorBody, description = "- `message_deleted`: already deleted\n- `send_in_progress`: the same `client_msg_id` is still being appended"),
              (status = 429, body = ErrorBody, description = "- `rate_limited`: too many changes; wait `Retry-After` seconds")))]
pub async fn delete(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    Query(key): Query<ChangeKey>,
) -> AppResult<StatusCode> {
    messages
        .sender
        .delete(me, id, message_id, key_of(key))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/conversations/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages",
    operation_id = "react", security(("bearer" = [])),
    params(("id" = ConversationId, Path), ("message_id" = MessageId, Path), ("emoji" = String, Path, description = "one emoji, percent-encoded", example = "👍"), ChangeKey),
    responses((status = 204, description = "the caller reacts with this emoji"),
              (status = 400, body = ErrorBody, description = "- `invalid_emoji`: not a single emoji"),
              (status = 409, body = ErrorBody, description = "- `message_deleted`: the message was deleted\n- `too_many_reactions`: the message already has 20 different emoji\n- `send_in_progress`: the same `client_msg_id` is still being appended"),
              (status = 429, body = ErrorBody, description = "- `rate_limited`: too many changes; wait `Retry-After` seconds")))]
pub async fn react(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Path(target): Path<(ConversationId, MessageId, String)>,
    Query(key): Query<ChangeKey>,
) -> AppResult<StatusCode> {
    messages.set_reaction(me, target, key, true).await
}

#[utoipa::path(delete, path = "/conversations/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages",
    operation_id = "unreact", security(("bearer" = [])),
    params(("id" = ConversationId, Path), ("message_id" = MessageId, Path), ("emoji" = String, Path, description = "one emoji, percent-encoded", example = "👍"), ChangeKey),
    responses((status = 204, description = "the caller no longer reacts with this emoji"),
              (status = 400, body = ErrorBody, description = "- `invalid_emoji`: not a single emoji"),
              (status = 409, body = ErrorBody, description = "- `message_deleted`: the message was deleted\n- `send_in_progress`: the same `client_msg_id` is still being appended"),
              (status = 429, body = ErrorBody, description = "- `rate_limited`: too many changes; wait `Retry-After` seconds")))]
pub async fn unreact(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Path(target): Path<(ConversationId, MessageId, String)>,
    Query(key): Query<ChangeKey>,
) -> AppResult<StatusCode> {
    messages.set_reaction(me, target, key, false).await
}

#[utoipa::path(get, path = "/search", tag = "messages", operation_id = "search", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = SearchPage, description = "newest first, matched words marked"),
              (status = 400, body = ErrorBody, description = "- `invalid_query`: empty, too long, a NUL, an unclosed quote"),
              (status = 404, body = ErrorBody, description = "- `not_found`: `conversation_id` is not one of the caller's")))]
pub async fn search(
    State(messages): Messages,
    AuthUser(me): AuthUser,
    Query(query): Query<SearchQuery>,
) -> AppResult<Json<SearchPage>> {
    let page = messages
        .history
        .search(
            me,
            &query.q,
            query.conversation_id,
            query.before,
            query.limit,
        )
        .await?;
    Ok(Json(page))
}
