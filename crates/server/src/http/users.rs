//! `GET /me` and user search.

use axum::extract::State;
use chat_protocol::ErrorCode;
use chat_protocol::http::{User, UserSearch};

use super::auth::AuthState;
use super::{AuthUser, Json, Query};
use crate::error::{AppError, AppResult};

const SEARCH_LIMIT: u32 = 20;

#[utoipa::path(get, path = "/me", tag = "users", operation_id = "me", security(("bearer" = [])),
    responses((status = 200, body = User, description = "the caller")))]
pub async fn me(State(auth): State<AuthState>, AuthUser(me): AuthUser) -> AppResult<Json<User>> {
    let user = auth
        .users
        .user(me)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    Ok(Json(user))
}

#[utoipa::path(get, path = "/users", tag = "users", operation_id = "search_users", security(("bearer" = [])), params(UserSearch),
    responses((status = 200, body = Vec<User>, description = "up to 20 users by username or display-name prefix, the caller excluded")))]
pub async fn search(
    State(auth): State<AuthState>,
    AuthUser(me): AuthUser,
    Query(search): Query<UserSearch>,
) -> AppResult<Json<Vec<User>>> {
    let prefix = search.q.trim();
    if prefix.is_empty() || prefix.chars().count() > 64 {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            "q must be 1 to 64 characters",
        ));
    }
    let mut users = auth.users.search_users(prefix, SEARCH_LIMIT + 1).await?;
    users.retain(|u| u.id != me);
    users.truncate(SEARCH_LIMIT as usize);
    Ok(Json(users))
}
