//! Conversations as their members see them, and changes to groups with the events
//! they cause: a user added to a conversation is told at once on every connection
//! (`conversation` frame), the remaining members see the new member list, and a
//! removed member gets `removed`. A rename or a role change sends every member the
//! updated conversation.
//!
//! Group roles: the creator is an admin; admins add and remove members, rename the
//! group and make or unmake admins; anyone may leave; the last admin leaving makes
//! the longest-standing member admin. The rules themselves live in
//! [`crate::store::roster`], checked inside each change's transaction; this service
//! checks the caller's role first too, so a refusal comes before any other
//! validation and costs no write.
//!
//! Views are built in batches: listing 50 conversations, or announcing a group to
//! its 1,000 members, costs the same three store round trips (the conversations,
//! their members, and everyone's activity) as showing one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chat_protocol::http::{Conversation, ConversationKind, Member, UpdateConversation};
use chat_protocol::ws::ServerFrame;
use chat_protocol::{ConversationId, ErrorCode, UserId};

use crate::cache::Presence;
use crate::error::{AppError, AppResult};
use crate::events::Events;
use crate::hub::encode;
use crate::membership::Members;
use crate::store::{
    ActivityQuery, ConversationRecord, Conversations, GroupChangeError, GroupUpdate, MemberRecord,
    MessageStore, Users,
};
use crate::text;

pub const MAX_GROUP_MEMBERS: usize = 1_000;
pub const MAX_TITLE_CHARS: usize = 100;

/// Groups up to this size also exchange presence when they form or grow, so new
/// contacts see each other online at once; larger ones learn it on reconnect.
const PRESENCE_ON_JOIN_MAX: usize = 100;

pub struct ConversationService {
    pub conversations: Arc<dyn Conversations>,
    /// To check that invited users exist.
    pub users: Arc<dyn Users>,
    /// For each view's last message and unread count.
    pub history: Arc<dyn MessageStore>,
    pub members: Arc<Members>,
    pub presence: Arc<dyn Presence>,
    /// Tells members' connections, on every node, what changed.
    pub events: Arc<dyn Events>,
}

impl ConversationService {
    /// The conversation as `viewer` sees it; outsiders get the same 404 as for a
    /// conversation that does not exist.
    #[tracing::instrument(skip(self))]
    pub async fn view(&self, id: ConversationId, viewer: UserId) -> AppResult<Conversation> {
        self.members.authorize_member(id, viewer).await?;
        self.views(&[id], viewer)
            .await?
            .pop()
            .ok_or(AppError::NotFound("conversation"))
    }

    /// Every conversation of `user`, most recent activity first.
    #[tracing::instrument(skip(self))]
    pub async fn list(&self, user: UserId) -> AppResult<Vec<Conversation>> {
        let ids = self.conversations.conversations_of(user).await?;
        let mut out = self.views(&ids, user).await?;
        out.sort_by_key(|c| {
            std::cmp::Reverse(
                c.last_message
                    .as_ref()
                    .map_or(c.created_at, |m| m.created_at),
            )
        });
        Ok(out)
    }

    #[tracing::instrument(skip(self))]
    pub async fn open_direct(&self, me: UserId, other: UserId) -> AppResult<Conversation> {
        if me == other {
            return Err(AppError::invalid(
                ErrorCode::InvalidInput,
                "a direct conversation needs another user",
            ));
        }
        if self.users.user(other).await?.is_none() {
            return Err(AppError::NotFound("user"));
        }
        let (id, created) = self.conversations.direct_conversation(me, other).await?;
        if created {
            self.announce(id, &[me, other]).await;
        }
        self.view(id, me).await
    }

    #[tracing::instrument(skip(self, member_ids), fields(invited = member_ids.len()))]
    pub async fn create_group(
        &self,
        me: UserId,
        title: &str,
        member_ids: &[UserId],
    ) -> AppResult<Conversation> {
        let title = check_title(title)?;
        let mut wanted: Vec<UserId> = vec![me];
        let mut seen = HashSet::from([me]);
        wanted.extend(member_ids.iter().filter(|id| seen.insert(**id)));
        if wanted.len() > MAX_GROUP_MEMBERS {
            return Err(too_many_members());
        }
        if self.users.users(&wanted).await?.len() != wanted.len() {
            return Err(AppError::NotFound("user"));
        }
        let id = self.conversations.create_group(&title, &wanted).await?;
        self.announce(id, &wanted).await;
        self.view(id, me).await
    }

    /// An admin adds members to a group.
    #[tracing::instrument(skip(self, user_ids), fields(invited = user_ids.len()))]
    pub async fn add_members(
        &self,
        me: UserId,
        id: ConversationId,
        user_ids: &[UserId],
    ) -> AppResult<Conversation> {
        let current = self.authorize_group_change(me, id).await?;
        self.authorize_admin(me, id).await?;
        if user_ids.is_empty() || user_ids.len() > MAX_GROUP_MEMBERS {
            return Err(AppError::invalid(
                ErrorCode::InvalidInput,
                format!("user_ids must list 1 to {MAX_GROUP_MEMBERS} users"),
            ));
        }
        let distinct = user_ids.iter().collect::<HashSet<_>>().len();
        if self.users.users(user_ids).await?.len() != distinct {
            // Not a 404: on `/conversations/{id}/members` that would say the group
            // is missing, when it is a user of the body that is.
            return Err(AppError::invalid(
                ErrorCode::InvalidInput,
                "a user to add does not exist",
            ));
        }
        if current.len() + user_ids.len() > MAX_GROUP_MEMBERS {
            return Err(too_many_members());
        }
        let added = self.conversations.add_members(id, me, user_ids).await?;
        self.members_changed(id).await;
        if !added.is_empty() {
            let everyone = self.conversations.member_ids(id).await?;
            self.announce(id, &everyone).await;
        }
        self.view(id, me).await
    }

    /// Removes `user` from a group: admins may remove anyone, and anyone may leave.
    /// When the last admin leaves, the longest-standing member becomes admin, and
    /// the remaining members' `conversation` frames say so.
    #[tracing::instrument(skip(self))]
    pub async fn remove_member(
        &self,
        me: UserId,
        id: ConversationId,
        user: UserId,
    ) -> AppResult<()> {
        self.authorize_group_change(me, id).await?;
        if user != me {
            self.authorize_admin(me, id).await?;
        }
        let removal = match self.conversations.remove_member(id, me, user).await {
            Err(GroupChangeError::NotMember(_)) => return Err(AppError::NotFound("member")),
            other => other?,
        };
        if let Some(promoted) = removal.promoted {
            tracing::info!(%id, %promoted, "the last admin left; the longest-standing member is admin");
        }
        self.members_changed(id).await;
        let removed = ServerFrame::Removed {
            conversation_id: id,
        };
        self.events.publish(&[user], encode(&removed)).await;
        let remaining = self.conversations.member_ids(id).await?;
        self.announce(id, &remaining).await;
        Ok(())
    }

    /// An admin renames a group and makes or unmakes admins, all or nothing; every
    /// member is sent the updated conversation.
    #[tracing::instrument(skip(self, change))]
    pub async fn update(
        &self,
        me: UserId,
        id: ConversationId,
        change: &UpdateConversation,
    ) -> AppResult<Conversation> {
        let members = self.authorize_group_change(me, id).await?;
        self.authorize_admin(me, id).await?;
        let title = change.title.as_deref().map(check_title).transpose()?;
        let add_admins = distinct_users(change.add_admins.as_deref(), "add_admins")?;
        let remove_admins = distinct_users(change.remove_admins.as_deref(), "remove_admins")?;
        if title.is_none() && add_admins.is_empty() && remove_admins.is_empty() {
            return Err(AppError::invalid(
                ErrorCode::InvalidInput,
                "nothing to change: give a title, add_admins or remove_admins",
            ));
        }
        if let Some(both) = add_admins.iter().find(|u| remove_admins.contains(u)) {
            return Err(AppError::invalid(
                ErrorCode::InvalidInput,
                format!("user {both} is in both add_admins and remove_admins"),
            ));
        }
        let update = GroupUpdate {
            title: title.as_deref(),
            add_admins: &add_admins,
            remove_admins: &remove_admins,
        };
        self.conversations.update_group(id, me, update).await?;
        self.publish_views(id, &members).await;
        self.view(id, me).await
    }

    /// Membership changes: only in groups, and only by members (outsiders get the
    /// same 404 as for a conversation that does not exist). Returns the members.
    async fn authorize_group_change(
        &self,
        me: UserId,
        id: ConversationId,
    ) -> AppResult<Arc<[UserId]>> {
        let members = self.members.authorize_member(id, me).await?;
        let record = self.record(id).await?;
        if record.kind != ConversationKind::Group {
            return Err(GroupChangeError::NotAGroup.into());
        }
        Ok(members)
    }

    /// Changes other than leaving need an admin. The store checks again inside the
    /// change's transaction; this early check refuses before any other validation.
    async fn authorize_admin(&self, me: UserId, id: ConversationId) -> AppResult<()> {
        if self.conversations.is_admin(id, me).await? {
            Ok(())
        } else {
            Err(GroupChangeError::NotAdmin.into())
        }
    }

    /// The conversation's own row; 404 when it does not exist.
    async fn record(&self, id: ConversationId) -> AppResult<ConversationRecord> {
        self.conversations
            .conversations(&[id])
            .await?
            .pop()
            .ok_or(AppError::NotFound("conversation"))
    }

    async fn members_changed(&self, id: ConversationId) {
        // This node at once (the next membership check must see the change), then
        // every node.
        self.members.invalidate(id);
        self.events.members_changed(id).await;
    }

    /// `ids` as `viewer` sees them, skipping any the viewer is not a member of.
    async fn views(&self, ids: &[ConversationId], viewer: UserId) -> AppResult<Vec<Conversation>> {
        let records = self.conversations.conversations(ids).await?;
        let mut members = self.conversations.members(ids).await?;
        let mut seen: Vec<(ConversationRecord, Vec<MemberRecord>, ActivityQuery)> = Vec::new();
        for record in records {
            let Some(list) = members.remove(&record.id) else {
                continue;
            };
            let Some(me) = list.iter().find(|m| m.user.id == viewer) else {
                continue;
            };
            let query = ActivityQuery {
                conversation: record.id,
                reader: viewer,
                last_read: me.last_read_id,
            };
            seen.push((record, list, query));
        }
        let queries: Vec<ActivityQuery> = seen.iter().map(|(_, _, q)| *q).collect();
        let activity = self.history.activity(&queries).await?;
        Ok(seen
            .into_iter()
            .zip(activity)
            .map(|((record, list, _), activity)| assemble(record, list, activity))
            .collect())
    }

    /// The one conversation `id` as each of `viewers` (members) sees it.
    async fn views_by_member(
        &self,
        id: ConversationId,
        viewers: &[UserId],
    ) -> AppResult<Vec<(UserId, Conversation)>> {
        let record = self.record(id).await?;
        let list = self
            .conversations
            .members(&[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        let markers: HashMap<UserId, _> =
            list.iter().map(|m| (m.user.id, m.last_read_id)).collect();
        let queries: Vec<ActivityQuery> = viewers
            .iter()
            .filter_map(|viewer| {
                markers.get(viewer).map(|last_read| ActivityQuery {
                    conversation: id,
                    reader: *viewer,
                    last_read: *last_read,
                })
            })
            .collect();
        let activity = self.history.activity(&queries).await?;
        Ok(queries
            .iter()
            .zip(activity)
            .map(|(query, activity)| {
                (
                    query.reader,
                    assemble(record.clone(), list.clone(), activity),
                )
            })
            .collect())
    }

    /// Tells each of `users` (on all their connections) about the conversation as
    /// they see it, and which of the others are online.
    async fn announce(&self, id: ConversationId, users: &[UserId]) {
        if users.len() <= PRESENCE_ON_JOIN_MAX {
            self.exchange_presence(users).await;
        }
        self.publish_views(id, users).await;
    }

    /// Sends each of `users` the conversation as they see it (`conversation` frame).
    async fn publish_views(&self, id: ConversationId, users: &[UserId]) {
        match self.views_by_member(id, users).await {
            Ok(views) => {
                for (user, conversation) in views {
                    let frame = ServerFrame::Conversation { conversation };
                    self.events.publish(&[user], encode(&frame)).await;
                }
            }
            Err(error) => tracing::warn!(%error, %id, "could not announce a conversation"),
        }
    }

    /// Tells everyone in `users` which of the others are online.
    async fn exchange_presence(&self, users: &[UserId]) {
        let online = match self.presence.online(users).await {
            Ok(online) => online,
            Err(error) => {
                tracing::warn!(%error, "presence unavailable; new contacts learn it on reconnect");
                return;
            }
        };
        for user_id in &online {
            let others: Vec<UserId> = users.iter().copied().filter(|u| u != user_id).collect();
            let frame = ServerFrame::Presence {
                user_id: *user_id,
                online: true,
            };
            self.events.publish(&others, encode(&frame)).await;
        }
    }
}

fn assemble(
    record: ConversationRecord,
    members: Vec<MemberRecord>,
    activity: crate::store::ConversationActivity,
) -> Conversation {
    Conversation {
        id: record.id,
        kind: record.kind,
        title: record.title,
        members: members
            .into_iter()
            .map(|m| Member {
                user: m.user,
                role: m.role,
                last_read_id: m.last_read_id,
            })
            .collect(),
        last_message: activity.last_message,
        unread_count: activity.unread_count,
        unread_mentions: activity.unread_mentions,
        created_at: record.created_at,
    }
}

fn too_many_members() -> AppError {
    AppError::invalid(
        ErrorCode::InvalidInput,
        format!("a group has at most {MAX_GROUP_MEMBERS} members"),
    )
}

/// The users of a role-change list, each once; at most a group's worth.
fn distinct_users(list: Option<&[UserId]>, field: &str) -> AppResult<Vec<UserId>> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_GROUP_MEMBERS {
        return Err(AppError::invalid(
            ErrorCode::InvalidInput,
            format!("{field} lists at most {MAX_GROUP_MEMBERS} users"),
        ));
    }
    let mut seen = HashSet::new();
    Ok(list.iter().copied().filter(|u| seen.insert(*u)).collect())
}

/// 1 to [`MAX_TITLE_CHARS`] characters, by the rule for every name people see
/// ([`text::check_name`]).
fn check_title(title: &str) -> AppResult<String> {
    text::check_name("a group title", title, MAX_TITLE_CHARS)
}
