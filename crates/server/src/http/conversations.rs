//! Conversations and their members.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chat_protocol::http::{
    AddMembers, Conversation, CreateConversation, ErrorBody, UpdateConversation,
};
use chat_protocol::{ConversationId, UserId};

use super::{AuthUser, Json, Path};
use crate::conversations::ConversationService;
use crate::error::AppResult;

type Service = State<Arc<ConversationService>>;

#[utoipa::path(post, path = "/conversations", tag = "conversations", operation_id = "create_conversation",
    security(("bearer" = [])), request_body = CreateConversation,
    responses((status = 201, body = Conversation, description = "created, or the existing direct conversation"),
              (status = 400, body = ErrorBody, description = "- `invalid_input`: a long title, one with control or bidirectional-control characters or nothing visible, too many members"),
              (status = 404, body = ErrorBody, description = "- `not_found`: a user to add does not exist")))]
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

#[utoipa::path(get, path = "/conversations", tag = "conversations", operation_id = "list_conversations",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<Conversation>, description = "the caller's conversations, most recent first")))]
pub async fn list(
    State(service): Service,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Vec<Conversation>>> {
    Ok(Json(service.list(me).await?))
}

#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", operation_id = "get_conversation",
    security(("bearer" = [])), params(("id" = ConversationId, Path)),
    responses((status = 200, body = Conversation, description = "the conversation with its members")))]
pub async fn get_one(
    State(service): Service,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(service.view(id, me).await?))
}

#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations", operation_id = "update_conversation",
    security(("bearer" = [])), params(("id" = ConversationId, Path)), request_body = UpdateConversation,
    responses((status = 200, body = Conversation, description = "renamed and roles changed; every member is sent the new conversation"),
              (status = 400, body = ErrorBody, description = "- `invalid_input`: nothing to change, a bad title (long, control or bidirectional-control characters, nothing visible), a user in both lists\n- `not_a_group`: a direct conversation\n- `not_a_member`: a user who is no member"),
              (status = 403, body = ErrorBody, description = "- `not_admin`: the caller is not an admin"),
              (status = 409, body = ErrorBody, description = "- `last_admin`: no admin would remain")))]
pub async fn update(
    State(service): Service,
    AuthUser(me): AuthUser,
    Path(id): Path<ConversationId>,
    Json(request): Json<UpdateConversation>,
) -> AppResult<Json<Conversation>> {
    Ok(Json(service.update(me, id, &request).await?))
}

#[utoipa::path(post, path = "/conversations/{id}/members", tag = "conversations", operation_id = "add_members",
    security(("bearer" = [])), params(("id" = ConversationId, Path)), request_body = AddMembers,
    responses((status = 200, body = Conversation, description = "the group with its new members"),
              (status = 400, body = ErrorBody, description = "- `invalid_input`: no users, a user who does not exist, or the group would be too large\n- `not_a_group`: a direct conversation"),
              (status = 403, body = ErrorBody, description = "- `not_admin`: the caller is not an admin")))]
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
    operation_id = "remove_member", security(("bearer" = [])),
    params(("id" = ConversationId, Path), ("user_id" = UserId, Path, description = "the member to remove; the caller's own id leaves")),
    responses((status = 204, description = "removed; the last admin leaving makes the longest-standing member admin"),
              (status = 400, body = ErrorBody, description = "- `not_a_group`: a direct conversation"),
              (status = 403, body = ErrorBody, description = "- `not_admin`: removing someone else without being an admin"),
              (status = 409, body = ErrorBody, description = "- `last_member`: the last member cannot leave")))]
pub async fn remove_member(
    State(service): Service,
    AuthUser(me): AuthUser,
    Path((id, user)): Path<(ConversationId, UserId)>,
) -> AppResult<StatusCode> {
    service.remove_member(me, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}
