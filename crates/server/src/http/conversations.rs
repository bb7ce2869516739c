//! Conversations and their members.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::http::{AddMembers, Conversation, CreateConversation, UpdateConversation};
use chat_protocol::{ConversationId, UserId};

use super::{AuthUser, Json, Path};
use crate::conversations::ConversationService;
use crate::error::AppResult;

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
