//! `GET` and `PATCH /me`, and user search.

use axum::extract::State;
use chat_protocol::http::{Me, UpdateMe, User, UserSearch};
use chat_protocol::{ErrorCode, UserId};
use chrono::Utc;

use super::auth::AuthState;
use super::{AuthUser, Json, Query};
use crate::error::{AppError, AppResult};

const SEARCH_LIMIT: u32 = 20;

#[utoipa::path(get, path = "/me", tag = "users", operation_id = "me", security(("bearer" = [])),
    responses((status = 200, body = Me, description = "the caller, with their choices")))]
pub async fn me(State(auth): State<AuthState>, AuthUser(me): AuthUser) -> AppResult<Json<Me>> {
    Ok(Json(me_of(&auth, me).await?))
}

#[utoipa::path(patch, path = "/me", tag = "users", operation_id = "update_me", security(("bearer" = [])),
    request_body = UpdateMe,
    responses((status = 200, body = Me, description = "the caller, with the choice recorded")))]
pub async fn update(
    State(auth): State<AuthState>,
    AuthUser(me): AuthUser,
    Json(update): Json<UpdateMe>,
) -> AppResult<Json<Me>> {
    auth.users
        .set_dataset_consent(me, update.dataset_consent, Utc::now())
        .await?;
    Ok(Json(me_of(&auth, me).await?))
}

async fn me_of(auth: &AuthState, me: UserId) -> AppResult<Me> {
    let user = auth
        .users
        .user(me)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let latest = auth.users.dataset_consents(&[me]).await?.pop();
    Ok(Me {
        id: user.id,
        username: user.username,
        display_name: user.display_name,
        dataset_consent: latest.map_or(auth.settings.dataset_consent_by_default, |c| c.allowed),
        dataset_consent_at: latest.map(|c| c.at),
    })
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
