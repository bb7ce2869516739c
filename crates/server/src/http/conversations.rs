//! Conversations, their members and their messages.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::http::{
    AddMembers, Conversation, CreateConversation, HistoryPage, HistoryQuery, Message, SendMessage,
    UpdateConversation,
};
use chat_protocol::{ConversationId, UserId};

use super::{AuthUser, Json, Path, Query};
use crate::conversations::ConversationService;
use crate::error::AppResult;
use crate::history::HistoryService;
use crate::send::{SendService, Sent};

/// What the message endpoints use.
#[derive(Clone)]
pub struct MessagesState {
    pub history: Arc<HistoryService>,
    pub sender: Arc<SendService>,
}

type Service = State<Arc<ConversationService>>;

#[utoipa::path(post, path = "/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = CreateConversation,
    responses((status = 201, body = Conversation, description = "created, or the existing direct conversation"),
              (status = 400, body = chat_protocol::http::ErrorBody), (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn create(
    State(service): Service,
    AuthUser(me): AuthUser,
    Json(request): Json<CreateConversation>,
) -> AppResult<(StatusCode, Json<Conversation>)> {
    let conversation = match request {
        CreateConversation::Direct { user_id } => service.open_direct(me, user_id).await?,
        CreateConversation::Group { title, member_ids } => {
            service.create_group(me, &title, &member_ids).await?
        }
    };
    Ok((StatusCode::CREATED, Json(conversation)))
}

#[utoipa::path(get, path = "/conversations", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = Vec<Conversation>, description = "the caller's conversations, most recent first")))]
pub async fn list(
    State(service): Service,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Vec<Conversation>>> {
    Ok(Json(service.list(me).await?))
}

#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Conversation), (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn get_one(
    State(service): Service,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(service.view(id, me).await?))
}

#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateConversation,
    responses((status = 200, body = Conversation, description = "renamed and roles changed; every member is sent the new conversation"),
              (status = 400, body = chat_protocol::http::ErrorBody, description = "nothing to change, a bad title, a direct conversation (`not_a_group`) or a user who is no member (`not_a_member`)"),
              (status = 403, body = chat_protocol::http::ErrorBody, description = "the caller is not an admin (`not_admin`)"),
              (status = 404, body = chat_protocol::http::ErrorBody),
              (status = 409, body = chat_protocol::http::ErrorBody, description = "no admin would remain (`last_admin`)")))]
pub async fn update(
    State(service): Service,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Json(request): Json<UpdateConversation>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(service.update(me, id, &request).await?))
}

#[utoipa::path(post, path = "/conversations/{id}/members", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = AddMembers,
    responses((status = 200, body = Conversation), (status = 400, body = chat_protocol::http::ErrorBody),
              (status = 403, body = chat_protocol::http::ErrorBody, description = "the caller is not an admin (`not_admin`)"),
              (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn add_members(
    State(service): Service,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Json(request): Json<AddMembers>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(service.add_members(me, id, &request.user_ids).await?))
}

/// Removes a member (admins), or leaves (anyone, with their own id).
#[utoipa::path(delete, path = "/conversations/{id}/members/{user_id}", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "removed; the last admin leaving makes the longest-standing member admin"),
              (status = 400, body = chat_protocol::http::ErrorBody, description = "a direct conversation (`not_a_group`)"),
              (status = 403, body = chat_protocol::http::ErrorBody, description = "removing someone else without being an admin (`not_admin`)"),
              (status = 404, body = chat_protocol::http::ErrorBody),
              (status = 409, body = chat_protocol::http::ErrorBody, description = "the last member leaving (`last_member`)")))]
pub async fn remove_member(
    State(service): Service,
    AuthUser(me): AuthUser,
    Path((id, user)): Path<(ConversationId, UserId)>,
) -> AppResult<StatusCode> {
    service.remove_member(me, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage, description = "newest first"),
              (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn history(
    State(messages): State<MessagesState>,
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

#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SendMessage,
    responses((status = 201, body = Message, description = "durably accepted"),
              (status = 200, body = Message, description = "a retry of an accepted send: the same message"),
              (status = 400, body = chat_protocol::http::ErrorBody), (status = 404, body = chat_protocol::http::ErrorBody),
              (status = 429, body = chat_protocol::http::ErrorBody), (status = 503, body = chat_protocol::http::ErrorBody)))]
pub async fn send(
    State(messages): State<MessagesState>,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Json(request): Json<SendMessage>,
) -> AppResult<(StatusCode, Json<Arc<Message>>)> {
    match messages
        .sender
        .send(me, id, request.client_msg_id, request.body)
        .await?
    {
        Sent::New(message) => Ok((StatusCode::CREATED, Json(message))),
        Sent::Replayed(sent) => {
            // The original is in the log; answer with it once history has it.
            let message = messages.history.acknowledged(sent.message_id).await?;
            Ok((StatusCode::OK, Json(Arc::new(message))))
        }
    }
}
