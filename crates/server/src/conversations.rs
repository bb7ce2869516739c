//! Conversations as their members see them, and membership changes with the events
//! they cause: a user added to a conversation is told at once on every connection
//! (`conversation` frame), the remaining members see the new member list, and a
//! removed member gets `removed`.

use std::collections::HashSet;

use chat_protocol::ErrorCode;
use chat_protocol::http::{Conversation, ConversationKind, Member};
use chat_protocol::ws::ServerFrame;
use chat_protocol::{ConversationId, UserId};

use crate::app::ApiContext;
use crate::error::{AppError, AppResult};
use crate::events::encode;

pub const MAX_GROUP_MEMBERS: usize = 1_000;
pub const MAX_TITLE_CHARS: usize = 100;

/// The conversation as `viewer` sees it; outsiders get the same 404 as for a
/// conversation that does not exist.
pub async fn view(ctx: &ApiContext, id: ConversationId, viewer: UserId) -> AppResult<Conversation> {
    let record = ctx
        .directory
        .conversation(id)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    let members = ctx.directory.members(id).await?;
    let Some(me) = members.iter().find(|m| m.user.id == viewer) else {
        return Err(AppError::NotFound("conversation"));
    };
    let activity = ctx
        .history
        .activity(viewer, &[(id, me.last_read_id)])
        .await?;
    let activity = activity.get(&id).cloned().unwrap_or_default();
    Ok(Conversation {
        id,
        kind: record.kind,
        title: record.title,
        members: members
            .into_iter()
            .map(|m| Member {
                user: m.user,
                last_read_id: m.last_read_id,
            })
            .collect(),
        last_message: activity.last_message,
        unread_count: activity.unread_count,
        created_at: record.created_at,
    })
}

/// Every conversation of `user`, most recent activity first.
pub async fn list(ctx: &ApiContext, user: UserId) -> AppResult<Vec<Conversation>> {
    let ids = ctx.directory.conversations_of(user).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match view(ctx, id, user).await {
            Ok(conversation) => out.push(conversation),
            // Removed between the two reads: skip it.
            Err(AppError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|c| {
        std::cmp::Reverse(
            c.last_message
                .as_ref()
                .map_or(c.created_at, |m| m.created_at),
        )
    });
    Ok(out)
}

pub async fn open_direct(ctx: &ApiContext, me: UserId, other: UserId) -> AppResult<Conversation> {
    if me == other {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            "a direct conversation needs another user",
        ));
    }
    if ctx.directory.user(other).await?.is_none() {
        return Err(AppError::NotFound("user"));
    }
    let (id, created) = ctx.directory.direct_conversation(me, other).await?;
    if created {
        announce(ctx, id, &[me, other]).await;
    }
    view(ctx, id, me).await
}

pub async fn create_group(
    ctx: &ApiContext,
    me: UserId,
    title: &str,
    member_ids: &[UserId],
) -> AppResult<Conversation> {
    let title = check_title(title)?;
    let mut wanted: Vec<UserId> = vec![me];
    let mut seen = HashSet::from([me]);
    wanted.extend(member_ids.iter().filter(|id| seen.insert(**id)));
    if wanted.len() > MAX_GROUP_MEMBERS {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            format!("a group has at most {MAX_GROUP_MEMBERS} members"),
        ));
    }
    let existing = ctx.directory.users(&wanted).await?;
    if existing.len() != wanted.len() {
        return Err(AppError::NotFound("user"));
    }
    let id = ctx.directory.create_group(&title, &wanted).await?;
    announce(ctx, id, &wanted).await;
    view(ctx, id, me).await
}

pub async fn add_members(
    ctx: &ApiContext,
    me: UserId,
    id: ConversationId,
    user_ids: &[UserId],
) -> AppResult<Conversation> {
    check_group_member(ctx, me, id).await?;
    if user_ids.is_empty() || user_ids.len() > MAX_GROUP_MEMBERS {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            "user_ids must list 1 to 1000 users",
        ));
    }
    if ctx.directory.users(user_ids).await?.len() != user_ids.iter().collect::<HashSet<_>>().len() {
        return Err(AppError::NotFound("user"));
    }
    let current = ctx.directory.member_ids(id).await?.len();
    if current + user_ids.len() > MAX_GROUP_MEMBERS {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            format!("a group has at most {MAX_GROUP_MEMBERS} members"),
        ));
    }
    let added = ctx.directory.add_members(id, user_ids).await?;
    ctx.events.members_changed(id).await;
    if !added.is_empty() {
        let everyone = ctx.directory.member_ids(id).await?;
        announce(ctx, id, &everyone).await;
    }
    view(ctx, id, me).await
}

/// Removes `user` from a group: members may remove others, and anyone may leave.
pub async fn remove_member(
    ctx: &ApiContext,
    me: UserId,
    id: ConversationId,
    user: UserId,
) -> AppResult<()> {
    check_group_member(ctx, me, id).await?;
    if !ctx.directory.remove_member(id, user).await? {
        return Err(AppError::NotFound("member"));
    }
    ctx.events.members_changed(id).await;
    ctx.events
        .publish(
            &[user],
            encode(&ServerFrame::Removed {
                conversation_id: id,
            }),
        )
        .await;
    let remaining = ctx.directory.member_ids(id).await?;
    announce(ctx, id, &remaining).await;
    Ok(())
}

/// Membership changes: only in groups, and only by members (outsiders get the same
/// 404 as for a conversation that does not exist).
async fn check_group_member(ctx: &ApiContext, me: UserId, id: ConversationId) -> AppResult<()> {
    let record = ctx
        .directory
        .conversation(id)
        .await?
        .ok_or(AppError::NotFound("conversation"))?;
    if !ctx.directory.is_member(id, me).await? {
        return Err(AppError::NotFound("conversation"));
    }
    if record.kind != ConversationKind::Group {
        return Err(AppError::invalid(
            ErrorCode::NotAGroup,
            "only a group's members can change",
        ));
    }
    Ok(())
}

/// Groups up to this size also exchange presence when they form or grow, so new
/// contacts see each other online at once; larger ones learn it on reconnect.
const PRESENCE_ON_JOIN_MAX: usize = 100;

/// Tells each of `users` (on all their connections) about the conversation as they
/// see it, and which of the others are online.
async fn announce(ctx: &ApiContext, id: ConversationId, users: &[UserId]) {
    if users.len() <= PRESENCE_ON_JOIN_MAX
        && let Ok(online) = ctx.presence.online(users).await
    {
        for user_id in &online {
            let others: Vec<UserId> = users.iter().copied().filter(|u| u != user_id).collect();
            let frame = ServerFrame::Presence {
                user_id: *user_id,
                online: true,
            };
            ctx.events.publish(&others, encode(&frame)).await;
        }
    }
    for user in users {
        match view(ctx, id, *user).await {
            Ok(conversation) => {
                ctx.events
                    .publish(
                        &[*user],
                        encode(&ServerFrame::Conversation { conversation }),
                    )
                    .await
            }
            Err(error) => tracing::warn!(%error, %id, "could not announce a conversation"),
        }
    }
}

fn check_title(title: &str) -> AppResult<String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            format!("a group title has 1 to {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(title.to_owned())
}
