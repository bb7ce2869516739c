//! Reading what the log has delivered: history pages, single messages right after
//! they were acknowledged, search, and the `sync` replay a reconnecting client asks
//! for.
//! History is the persister's materialized view of the log, so it may lag it by a
//! moment; every read that must include the caller's acknowledged messages waits for
//! the persister first ([`caught_up`]).

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::http::{HistoryPage, Message, SearchHit, SearchPage};
use chat_protocol::{ConversationId, ErrorCode, MAX_HISTORY_LIMIT, MessageId, UserId};

use crate::error::{AppError, AppResult};
use crate::fanout::LateMessages;
use crate::log::MessageLog;
use crate::membership::Members;
use crate::persister::caught_up;
use crate::search::SearchTerms;
use crate::snowflake::{first_id_at, unix_ms_of};
use crate::store::{Conversations, MessageStore, Replay};

pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
pub const DEFAULT_SEARCH_LIMIT: u32 = 20;
/// Messages read from the store per round of a `sync` replay.
const SYNC_PAGE: u32 = 500;
/// How long a read of an acknowledged message waits for the persister.
const ACKNOWLEDGED_WAIT: Duration = Duration::from_secs(5);
/// How long a read receipt waits for its message to reach history.
const RECEIPT_WAIT: Duration = Duration::from_secs(2);

pub struct HistoryService {
    pub store: Arc<dyn MessageStore>,
    pub log: Arc<dyn MessageLog>,
    pub members: Arc<Members>,
    /// Which conversations a user's `sync` covers.
    pub conversations: Arc<dyn Conversations>,
    /// Messages the log delivered out of id order, which `sync` replays too.
    pub late: Arc<LateMessages>,
}

/// Where a replay sends its frames; false when the receiver is gone.
#[async_trait::async_trait]
pub trait ReplaySink: Send {
    async fn deliver(&mut self, step: &Replay) -> bool;
}

/// Marks the reader's own reactions.
fn for_reader(mut message: Message, reader: UserId) -> Message {
    for reaction in &mut message.reactions {
        reaction.me = reaction.user_ids.contains(&reader);
    }
    message
}

fn check_limit(limit: u32) -> AppResult<u32> {
    if (1..=MAX_HISTORY_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(AppError::invalid(
            ErrorCode::InvalidInput,
            format!("limit must be 1 to {MAX_HISTORY_LIMIT}"),
        ))
    }
}

/// How a replay ended.
#[derive(Debug)]
pub enum Replayed {
    /// Everything up to this id was sent.
    Until(MessageId),
    /// The receiver went away.
    Abandoned,
}

impl HistoryService {
    /// A page of `conversation`, newest first, for a member.
    #[tracing::instrument(skip(self))]
    pub async fn page(
        &self,
        user: UserId,
        conversation: ConversationId,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: Option<u32>,
    ) -> AppResult<HistoryPage> {
        let limit = check_limit(limit.unwrap_or(DEFAULT_HISTORY_LIMIT))?;
        self.members.authorize_member(conversation, user).await?;
        let mut messages = self
            .store
            .history(conversation, before, after, limit + 1)
            .await?;
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        let messages = messages.into_iter().map(|m| for_reader(m, user)).collect();
        Ok(HistoryPage { messages, has_more })
    }

    /// One message, for a member of its conversation.
    pub async fn one(
        &self,
        user: UserId,
        conversation: ConversationId,
        id: MessageId,
    ) -> AppResult<Message> {
        self.members.authorize_member(conversation, user).await?;
        match self.store.message(id).await? {
            Some(message) if message.conversation_id == conversation => {
                Ok(for_reader(message, user))
            }
            _ => Err(AppError::NotFound("message")),
        }
    }

    /// A message as it is once history holds the event the log acknowledged, for
    /// `reader`.
    pub async fn acknowledged(&self, id: MessageId, reader: UserId) -> AppResult<Message> {
        caught_up(self.log.as_ref(), ACKNOWLEDGED_WAIT).await;
        self.store
            .message(id)
            .await?
            .map(|m| for_reader(m, reader))
            .ok_or(AppError::Unavailable("message history"))
    }

    /// Full-text search over the caller's conversations (or one of them), newest
    /// first, the matched words marked.
    #[tracing::instrument(skip(self, query))]
    pub async fn search(
        &self,
        user: UserId,
        query: &str,
        conversation: Option<ConversationId>,
        before: Option<MessageId>,
        limit: Option<u32>,
    ) -> AppResult<SearchPage> {
        let terms = SearchTerms::parse(query)
            .map_err(|error| AppError::invalid(ErrorCode::InvalidQuery, error.to_string()))?;
        let limit = check_limit(limit.unwrap_or(DEFAULT_SEARCH_LIMIT))?;
        let conversations = match conversation {
            Some(id) => {
                self.members.authorize_member(id, user).await?;
                vec![id]
            }
            None => self.conversations.conversations_of(user).await?,
        };
        let mut messages = self
            .store
            .search(&conversations, &terms, before, limit + 1)
            .await?;
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        let next_before = more.then(|| messages.last().map(|m| m.id)).flatten();
        let results = messages
            .into_iter()
            .map(|message| SearchHit {
                marked: terms.mark(&message.body),
                message: for_reader(message, user),
            })
            .collect();
        Ok(SearchPage {
            results,
            next_before,
        })
    }

    /// Whether `id` is a message of `conversation` (waiting briefly for the persister,
    /// since it may be acknowledged but not yet in history).
    pub async fn is_message_of(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> AppResult<bool> {
        let mut message = self.store.message(id).await?;
        if message.is_none() {
            caught_up(self.log.as_ref(), RECEIPT_WAIT).await;
            message = self.store.message(id).await?;
        }
        Ok(message.is_some_and(|m| m.conversation_id == conversation))
    }

    /// Replays every event after `since` in `user`'s conversations, in id order, into
    /// `sink`: the messages posted after it as they are now, and the changes of older
    /// messages.
    #[tracing::instrument(skip(self, sink))]
    pub async fn replay(
        &self,
        user: UserId,
        since: MessageId,
        sink: &mut impl ReplaySink,
    ) -> AppResult<Replayed> {
        // History must hold everything acknowledged so far before it is replayed.
        if !caught_up(self.log.as_ref(), ACKNOWLEDGED_WAIT).await {
            return Err(AppError::Unavailable("message history"));
        }
        let conversations = self.conversations.conversations_of(user).await?;
        let Some(mut cursor) = self.replay_late(&conversations, since, sink).await else {
            return Ok(Replayed::Abandoned);
        };
        let start = cursor;
        loop {
            let page = self
                .store
                .since(&conversations, start, cursor, SYNC_PAGE)
                .await?;
            let full = page.len() == SYNC_PAGE as usize;
            for step in page {
                cursor = step.id();
                let step = match step {
                    Replay::Message(message) => Replay::Message(for_reader(message, user)),
                    change => change,
                };
                if !sink.deliver(&step).await {
                    return Ok(Replayed::Abandoned);
                }
            }
            if !full {
                return Ok(Replayed::Until(cursor.max(since)));
            }
        }
    }

    /// When the log can hold events out of id order (several nodes appending),
    /// replays the late ones at or before `since` that this node saw, so none is
    /// skipped; a node that just started replays the whole reorder window instead.
    /// The client drops what it already has by id. Returns where the replay of
    /// history starts, or `None` when the receiver went away.
    async fn replay_late(
        &self,
        conversations: &[ConversationId],
        since: MessageId,
        sink: &mut impl ReplaySink,
    ) -> Option<MessageId> {
        let window_ms = self.log.reorder_window().as_millis() as i64;
        if window_ms == 0 {
            return Some(since);
        }
        let Some(mut late) = self.late.at_or_before(since) else {
            return Some(first_id_at(unix_ms_of(since) - window_ms).min(since));
        };
        late.retain(|e| conversations.contains(&e.conversation_id()));
        late.sort_by_key(|e| e.id());
        for event in late {
            let step = match event.as_ref() {
                // A late post replays as it was posted; its changes follow as events.
                chat_protocol::events::Event::Message(posted) => {
                    Replay::Message(Message::posted(posted))
                }
                change => Replay::Change(change.clone()),
            };
            if !sink.deliver(&step).await {
                return None;
            }
        }
        Some(since)
    }
}
