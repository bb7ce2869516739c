//! Conversations, their members and their messages.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::ErrorCode;
use chat_protocol::http::{
    AddMembers, Conversation, CreateConversation, HistoryPage, HistoryQuery, Message, SendMessage,
};
use chat_protocol::{ConversationId, MAX_HISTORY_LIMIT, UserId};

use super::{AuthUser, Json, Path, Query};
use crate::app::ApiContext;
use crate::conversations;
use crate::error::{AppError, AppResult};
use crate::persister::caught_up;
use crate::send::Sent;

const DEFAULT_HISTORY_LIMIT: u32 = 50;

#[utoipa::path(post, path = "/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = CreateConversation,
    responses((status = 201, body = Conversation, description = "created, or the existing direct conversation"),
              (status = 400, body = chat_protocol::http::ErrorBody), (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn create(
    State(ctx): State<ApiContext>,
    AuthUser(me): AuthUser,
    Json(request): Json<CreateConversation>,
) -> AppResult<(StatusCode, Json<Conversation>)> {
    let conversation = match request {
        CreateConversation::Direct { user_id } => {
            conversations::open_direct(&ctx, me, user_id).await?
        }
        CreateConversation::Group { title, member_ids } => {
            conversations::create_group(&ctx, me, &title, &member_ids).await?
        }
    };
    Ok((StatusCode::CREATED, Json(conversation)))
}

#[utoipa::path(get, path = "/conversations", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = Vec<Conversation>, description = "the caller's conversations, most recent first")))]
pub async fn list(
    State(ctx): State<ApiContext>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Vec<Conversation>>> {
    Ok(Json(conversations::list(&ctx, me).await?))
}

#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Conversation), (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn get_one(
    State(ctx): State<ApiContext>,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(conversations::view(&ctx, id, me).await?))
}

#[utoipa::path(post, path = "/conversations/{id}/members", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = AddMembers,
    responses((status = 200, body = Conversation), (status = 400, body = chat_protocol::http::ErrorBody),
              (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn add_members(
    State(ctx): State<ApiContext>,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Json(request): Json<AddMembers>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(
        conversations::add_members(&ctx, me, id, &request.user_ids).await?,
    ))
}

#[utoipa::path(delete, path = "/conversations/{id}/members/{user_id}", tag = "conversations",
    security(("bearer" = [])), params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn remove_member(
    State(ctx): State<ApiContext>,
    AuthUser(me): AuthUser,
    Path((id, user)): Path<(ConversationId, UserId)>,
) -> AppResult<StatusCode> {
    conversations::remove_member(&ctx, me, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage, description = "newest first"),
              (status = 404, body = chat_protocol::http::ErrorBody)))]
pub async fn history(
    State(ctx): State<ApiContext>,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Query(query): Query<HistoryQuery>,
) -> AppResult<Json<HistoryPage>> {
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            format!("limit must be 1 to {MAX_HISTORY_LIMIT}"),
        ));
    }
    if !ctx.directory.is_member(id, me).await? {
        return Err(AppError::NotFound("conversation"));
    }
    let mut messages = ctx
        .history
        .history(id, query.before, query.after, limit + 1)
        .await?;
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    Ok(Json(HistoryPage { messages, has_more }))
}

#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SendMessage,
    responses((status = 201, body = Message, description = "durably accepted"),
              (status = 200, body = Message, description = "a retry of an accepted send: the same message"),
              (status = 400, body = chat_protocol::http::ErrorBody), (status = 404, body = chat_protocol::http::ErrorBody),
              (status = 429, body = chat_protocol::http::ErrorBody), (status = 503, body = chat_protocol::http::ErrorBody)))]
pub async fn send(
    State(ctx): State<ApiContext>,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Json(request): Json<SendMessage>,
) -> AppResult<(StatusCode, Json<Message>)> {
    match ctx
        .sender
        .send(me, id, request.client_msg_id, request.body)
        .await?
    {
        Sent::New(message) => Ok((StatusCode::CREATED, Json(message))),
        Sent::Replayed(sent) => {
            // The original is in the log; wait until history has it to answer with it.
            caught_up(ctx.log.as_ref(), Duration::from_secs(5)).await;
            let message = ctx
                .history
                .message(sent.message_id)
                .await?
                .ok_or(AppError::Unavailable("message history"))?;
            Ok((StatusCode::OK, Json(message)))
        }
    }
}
