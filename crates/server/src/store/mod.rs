//! The durable stores behind small traits named for what they hold, so the send path
//! and the HTTP handlers never name an adapter:
//!
//! - [`Users`]: accounts and their password hashes.
//! - [`Conversations`]: conversations, their members and the members' roles.
//! - [`ReadMarkers`]: how far each member has read.
//! - [`MessageStore`]: the queryable history the persister materializes from the log.
//! - [`SearchIndex`]: the full-text index of live bodies, kept by its own consumer.
//!
//! The embedded mode implements them on one SQLite file ([`sqlite`]); the distributed
//! mode on PostgreSQL ([`postgres`]), shared by every node. Every method fails with
//! a [`StoreError`], whatever the driver; `tests/contracts` holds each trait to the
//! same behaviour on both.

pub mod postgres;
pub mod roster;
mod sql;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::events::Event;
use chat_protocol::http::{ConversationKind, MemberRole, Message, Reaction, User};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};

use crate::search::SearchTerms;

/// Why a store could not do what it was asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (down, pool exhausted, connection lost): the
    /// caller may retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A stored row does not decode into what it should be.
    #[error("a stored row is corrupt: {0}")]
    Corrupt(String),
    /// The database refuses this data for good: a data exception or a constraint
    /// violation (e.g. PostgreSQL refusing a NUL in text). The same data will be
    /// refused again, so a consumer of the log skips the event rather than retry it.
    #[error("the database refuses the data: {0}")]
    Refused(String),
    /// The database refused the statement for another reason (a missing table, a
    /// permission): not the data's fault, so nothing is given up on.
    #[error("the database refused the operation: {0}")]
    Failed(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub use roster::Removal;

/// Why a change to a group's members or roles was refused; a refused change
/// changes nothing.
#[derive(Clone, Debug, thiserror::Error)]
pub enum GroupChangeError {
    /// The one asking is not a member (or the conversation does not exist).
    #[error("not a member of the conversation")]
    Outsider,
    /// A direct conversation: it has no admins and its members never change.
    #[error("only a group's members and roles can change")]
    NotAGroup,
    /// The one asking is a member, not an admin.
    #[error("only an admin of the group can do that")]
    NotAdmin,
    /// A user the change names is not a member.
    #[error("user {0} is not a member of the group")]
    NotMember(UserId),
    /// The change would leave the group without an admin.
    #[error("the group would have no admin left")]
    LastAdmin,
    /// The change would leave the group without members.
    #[error("the group would have no member left")]
    LastMember,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `PATCH /conversations/{id}` changes, already validated (a trimmed title,
/// distinct users, nobody in both lists).
#[derive(Clone, Copy, Debug, Default)]
pub struct GroupUpdate<'a> {
    pub title: Option<&'a str>,
    pub add_admins: &'a [UserId],
    pub remove_admins: &'a [UserId],
}

/// A user row with its password hash, for login.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// A user's choice about the training dataset (DESIGN.md §10), at the time they made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsentChange {
    pub user_id: UserId,
    pub allowed: bool,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct ConversationRecord {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct MemberRecord {
    pub user: User,
    pub role: MemberRole,
    pub last_read_id: Option<MessageId>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username taken")]
    Taken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait Users: Send + Sync {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User, CreateUserError>;
    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>>;
    async fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// The users among `ids` that exist, by id.
    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<User>>;
    /// Users whose username or display name starts with `prefix` (literally,
    /// case-insensitively), by username.
    async fn search_users(&self, prefix: &str, limit: u32) -> StoreResult<Vec<User>>;
    /// Records `user`'s choice about the training dataset, made at `at` (a second
    /// choice in the same millisecond replaces the first). Earlier choices are kept:
    /// the pipeline asks which held when a message was sent.
    async fn set_dataset_consent(
        &self,
        user: UserId,
        allowed: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Every recorded choice of each of `users`, by user, oldest first.
    async fn dataset_consents(&self, users: &[UserId]) -> StoreResult<Vec<ConsentChange>>;
}

#[async_trait]
pub trait Conversations: Send + Sync {
    /// The direct conversation of `a` and `b`, created if missing. The flag says
    /// whether this call created it.
    async fn direct_conversation(
        &self,
        a: UserId,
        b: UserId,
    ) -> StoreResult<(ConversationId, bool)>;
    /// A group of `members`; the first of them, its creator, is its admin.
    async fn create_group(&self, title: &str, members: &[UserId]) -> StoreResult<ConversationId>;
    /// The conversations among `ids` that exist (any order).
    async fn conversations(&self, ids: &[ConversationId]) -> StoreResult<Vec<ConversationRecord>>;
    /// The members of each of `ids` (with their read markers), in joining order.
    async fn members(
        &self,
        ids: &[ConversationId],
    ) -> StoreResult<HashMap<ConversationId, Vec<MemberRecord>>>;
    /// Only the members' ids, for the membership cache.
    async fn member_ids(&self, id: ConversationId) -> StoreResult<Vec<UserId>>;
    /// The conversations `user` belongs to.
    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationId>>;
    /// Whether `user` administers the group `id` (false for outsiders).
    async fn is_admin(&self, id: ConversationId, user: UserId) -> StoreResult<bool>;
    /// `by`, an admin, adds members (as plain members); returns the ones that were not
    /// members before, in the order given.
    async fn add_members(
        &self,
        id: ConversationId,
        by: UserId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, GroupChangeError>;
    /// `by` removes `user`: themselves (leaving), or anyone as an admin. In the same
    /// transaction, the last admin leaving makes the longest-standing remaining
    /// member admin; the last member cannot leave (see [`roster::Roster`]).
    async fn remove_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> Result<Removal, GroupChangeError>;
    /// `by`, an admin, renames the group and makes or unmakes admins, all or nothing.
    async fn update_group(
        &self,
        id: ConversationId,
        by: UserId,
        update: GroupUpdate<'_>,
    ) -> Result<(), GroupChangeError>;
    /// Everyone who shares a conversation with `user`, `user` excluded.
    async fn contacts(&self, user: UserId) -> StoreResult<Vec<UserId>>;
}

#[async_trait]
pub trait ReadMarkers: Send + Sync {
    /// Moves the member's read marker forward (never back); true if it moved.
    async fn mark_read(
        &self,
        id: ConversationId,
        user: UserId,
        upto: MessageId,
    ) -> StoreResult<bool>;
}

/// What one reader sees of one conversation's activity: asked for many readers or
/// many conversations in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityQuery {
    pub conversation: ConversationId,
    pub reader: UserId,
    pub last_read: Option<MessageId>,
}

/// The last message of a conversation and the reader's unread counts there.
#[derive(Clone, Debug, Default)]
pub struct ConversationActivity {
    pub last_message: Option<Message>,
    pub unread_count: u32,
    /// Unread messages that mention the reader.
    pub unread_mentions: u32,
}

/// One step of a `sync` replay.
#[derive(Clone, Debug, PartialEq)]
pub enum Replay {
    /// A message posted after the cursor, as it is now.
    Message(Message),
    /// An edit, deletion or reaction of a message posted before the cursor.
    Change(Event),
}

impl Replay {
    pub fn id(&self) -> MessageId {
        match self {
            Replay::Message(m) => m.id,
            Replay::Change(e) => e.id(),
        }
    }
}

/// Messages as history holds them: each message's current state, the events `sync`
/// replays, reactions, mentions and the search index. The persister is the only
/// writer ([`MessageStore::apply`]).
///
/// Reactions come with `me` false: who is reading is the caller's business.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Applies events in log order, each once: an event whose id was applied before
    /// changes nothing, so a batch replayed after a crash is harmless. An edit
    /// applies only over an older edit, a reaction only over an older change of the
    /// same reaction, and nothing applies to a deleted message; a deletion drops the
    /// body, the mentions, the reactions and the message's edits.
    async fn apply(&self, events: &[Arc<Event>]) -> StoreResult<()>;
    /// Newest first: at most `limit` messages with `after < id < before`.
    async fn history(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Oldest first, at most `limit` steps with id > `after` of these conversations:
    /// messages posted after `since` (as they are now), and changes after `after` of
    /// messages posted at or before `since`. `after` ≥ `since` pages the replay.
    async fn since(
        &self,
        conversations: &[ConversationId],
        since: MessageId,
        after: MessageId,
        limit: u32,
    ) -> StoreResult<Vec<Replay>>;
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>>;
    /// For each query, in the same order: the conversation's last message, how many
    /// messages from others are newer than the reader's marker and how many of those
    /// mention the reader. One round trip however many queries.
    async fn activity(&self, queries: &[ActivityQuery]) -> StoreResult<Vec<ConversationActivity>>;
    /// Newest first: at most `limit` live messages of `conversations` older than
    /// `before` that contain every term, as far as the [`SearchIndex`] has come.
    async fn search(
        &self,
        conversations: &[ConversationId],
        terms: &SearchTerms,
        before: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
}

/// The full-text index of live message bodies that [`MessageStore::search`] reads.
/// Its own consumer of the log (group `search`) keeps it, apart from the persister,
/// so indexing, cheapest in large batches, never holds up storing history.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Brings the index up to date with events in log order: a post indexes its body,
    /// an edit replaces it, a deletion takes it out for good. Each message remembers
    /// the event that gave its indexed body, so like [`MessageStore::apply`] a replayed
    /// batch or an older edit changes nothing, and nothing revives a deleted message.
    async fn index(&self, events: &[Arc<Event>]) -> StoreResult<()>;
}

/// What a batch asks of the index for one message: its events folded, the last one
/// winning and a deletion winning over everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexChange<'a> {
    /// Index `body`, given by event `by`, unless the index holds a newer body or the
    /// message is deleted.
    Set {
        message: MessageId,
        conversation: ConversationId,
        body: &'a str,
        by: MessageId,
    },
    /// The message is deleted: out of the index, and never back in.
    Remove {
        message: MessageId,
        conversation: ConversationId,
    },
}

/// A batch's index changes, one per message, in the order of their first event.
pub fn index_changes(events: &[Arc<Event>]) -> Vec<IndexChange<'_>> {
    let mut changes: Vec<IndexChange<'_>> = Vec::new();
    let mut slot: HashMap<MessageId, usize> = HashMap::new();
    for event in events {
        let change = match event.as_ref() {
            Event::Message(m) => IndexChange::Set {
                message: m.id,
                conversation: m.conversation_id,
                body: &m.body,
                by: m.id,
            },
            Event::Edit(e) => IndexChange::Set {
                message: e.message_id,
                conversation: e.conversation_id,
                body: &e.body,
                by: e.id,
            },
            Event::Delete(d) => IndexChange::Remove {
                message: d.message_id,
                conversation: d.conversation_id,
            },
            Event::Reaction(_) => continue,
        };
        match slot.get(&event.message_id()) {
            None => {
                slot.insert(event.message_id(), changes.len());
                changes.push(change);
            }
            Some(&at) => {
                if !matches!(changes[at], IndexChange::Remove { .. }) {
                    changes[at] = change;
                }
            }
        }
    }
    changes
}

/// The posts of a batch of events. `apply` stores them first, together: a change
/// always follows its message in the log, so the batch's changes then find theirs.
pub fn posts_of(events: &[Arc<Event>]) -> Vec<&chat_protocol::events::MessagePosted> {
    events
        .iter()
        .filter_map(|e| match e.as_ref() {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// The `(user, conversation, message)` rows of the mentions of `users` in a message,
/// the sender's own left out (nobody has an unread mention of themselves).
pub fn mention_rows(
    users: &[UserId],
    sender: UserId,
    conversation: ConversationId,
    message: MessageId,
) -> Vec<(i64, i64, i64)> {
    users
        .iter()
        .filter(|u| **u != sender)
        .map(|u| (u.0, conversation.0, message.0))
        .collect()
}

/// An event as the history tables keep it (`message_events.record`), and back.
pub fn record_of(event: &Event) -> StoreResult<String> {
    serde_json::to_string(event).map_err(|e| StoreError::Refused(e.to_string()))
}

pub fn event_of(record: &str) -> StoreResult<Event> {
    Event::decode(record.as_bytes()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Groups `(message, emoji, user)` rows, in the order the reactions were made, into
/// each message's summary: one entry per emoji, in the order each was first used.
pub fn summarize_reactions(
    rows: impl IntoIterator<Item = (MessageId, String, UserId)>,
) -> HashMap<MessageId, Vec<Reaction>> {
    let mut out: HashMap<MessageId, Vec<Reaction>> = HashMap::new();
    for (message, emoji, user) in rows {
        let reactions = out.entry(message).or_default();
        match reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(reaction) => {
                reaction.user_ids.push(user);
                reaction.count += 1;
            }
            None => reactions.push(Reaction {
                emoji,
                count: 1,
                me: false,
                user_ids: vec![user],
            }),
        }
    }
    out
}

/// Fills in each message's reactions from a summary.
pub fn attach_reactions(
    messages: &mut [Message],
    mut reactions: HashMap<MessageId, Vec<Reaction>>,
) {
    for message in messages {
        if let Some(summary) = reactions.remove(&message.id) {
            message.reactions = summary;
        }
    }
}

/// Merges two id-ordered lists into one, keeping the first `limit`.
pub fn merge_replay(messages: Vec<Message>, changes: Vec<Event>, limit: usize) -> Vec<Replay> {
    let mut out = Vec::with_capacity(limit.min(messages.len() + changes.len()));
    let mut messages = messages.into_iter().peekable();
    let mut changes = changes.into_iter().peekable();
    while out.len() < limit {
        let take_message = match (messages.peek(), changes.peek()) {
            (Some(m), Some(c)) => m.id < c.id(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_message {
            messages.next().map(Replay::Message)
        } else {
            changes.next().map(Replay::Change)
        };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use chat_protocol::events::{MessageDeleted, MessageEdited, MessagePosted, ReactionChanged};
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;

    const ROOM: ConversationId = ConversationId(7);
    const ANN: UserId = UserId(1);

    fn at() -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_000).single().unwrap_or_default()
    }

    fn post(id: i64, body: &str) -> Arc<Event> {
        Arc::new(Event::Message(MessagePosted {
            id: MessageId(id),
            conversation_id: ROOM,
            sender_id: ANN,
            client_msg_id: Uuid::nil(),
            body: body.into(),
            created_at: at(),
            reply_to: None,
            mentions: Vec::new(),
        }))
    }

    fn edit(id: i64, message: i64, body: &str) -> Arc<Event> {
        Arc::new(Event::Edit(MessageEdited {
            id: MessageId(id),
            conversation_id: ROOM,
            message_id: MessageId(message),
            user_id: ANN,
            client_msg_id: Uuid::nil(),
            body: body.into(),
            mentions: Vec::new(),
            at: at(),
        }))
    }

    fn delete(id: i64, message: i64) -> Arc<Event> {
        Arc::new(Event::Delete(MessageDeleted {
            id: MessageId(id),
            conversation_id: ROOM,
            message_id: MessageId(message),
            user_id: ANN,
            client_msg_id: Uuid::nil(),
            at: at(),
        }))
    }

    fn react(id: i64, message: i64) -> Arc<Event> {
        Arc::new(Event::Reaction(ReactionChanged {
            id: MessageId(id),
            conversation_id: ROOM,
            message_id: MessageId(message),
            user_id: ANN,
            client_msg_id: Uuid::nil(),
            emoji: "👍".into(),
            on: true,
            at: at(),
        }))
    }

    fn set(message: i64, body: &str, by: i64) -> IndexChange<'_> {
        IndexChange::Set {
            message: MessageId(message),
            conversation: ROOM,
            body,
            by: MessageId(by),
        }
    }

    fn remove(message: i64) -> IndexChange<'static> {
        IndexChange::Remove {
            message: MessageId(message),
            conversation: ROOM,
        }
    }

    #[test]
    fn a_batch_folds_to_one_change_per_message_the_last_winning() {
        let events = [
            post(1, "one"),
            post(2, "two"),
            edit(3, 1, "one, edited"),
            react(4, 2),
            edit(5, 1, "one, edited again"),
            edit(6, 9, "an older message"),
        ];
        assert_eq!(
            index_changes(&events),
            [
                set(1, "one, edited again", 5),
                set(2, "two", 2),
                set(9, "an older message", 6)
            ]
        );
    }

    #[test]
    fn a_deletion_wins_over_everything_around_it() {
        let events = [
            post(1, "secret"),
            delete(2, 1),
            edit(3, 1, "resurrected"),
            delete(4, 8),
        ];
        assert_eq!(index_changes(&events), [remove(1), remove(8)]);
        assert!(index_changes(&[react(1, 1)]).is_empty());
        assert!(index_changes(&[]).is_empty());
    }
}
