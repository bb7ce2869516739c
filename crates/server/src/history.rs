//! Reading what the log has delivered: history pages, single messages right after
//! they were acknowledged, and the `sync` replay a reconnecting client asks for.
//! History is the persister's materialized view of the log, so it may lag it by a
//! moment; every read that must include the caller's acknowledged messages waits for
//! the persister first ([`caught_up`]).

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::http::{HistoryPage, Message};
use chat_protocol::{ConversationId, ErrorCode, MAX_HISTORY_LIMIT, MessageId, UserId};

use crate::error::{AppError, AppResult};
use crate::fanout::LateMessages;
use crate::log::MessageLog;
use crate::membership::Members;
use crate::persister::caught_up;
use crate::snowflake::{first_id_at, unix_ms_of};
use crate::store::{Conversations, MessageStore};

pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
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
    async fn deliver(&mut self, message: &Message) -> bool;
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
        let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
        if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
            return Err(AppError::invalid(
                ErrorCode::InvalidInput,
                format!("limit must be 1 to {MAX_HISTORY_LIMIT}"),
            ));
        }
        self.members.authorize_member(conversation, user).await?;
        let mut messages = self
            .store
            .history(conversation, before, after, limit + 1)
            .await?;
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        Ok(HistoryPage { messages, has_more })
    }

    /// A message the log acknowledged, once history holds it.
    pub async fn acknowledged(&self, id: MessageId) -> AppResult<Message> {
        caught_up(self.log.as_ref(), ACKNOWLEDGED_WAIT).await;
        self.store
            .message(id)
            .await?
            .ok_or(AppError::Unavailable("message history"))
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

    /// Replays every message after `since` in `user`'s conversations, in id order,
    /// into `sink`.
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
        loop {
            let page = self.store.since(&conversations, cursor, SYNC_PAGE).await?;
            let full = page.len() == SYNC_PAGE as usize;
            for message in page {
                cursor = message.id;
                if !sink.deliver(&message).await {
                    return Ok(Replayed::Abandoned);
                }
            }
            if !full {
                return Ok(Replayed::Until(cursor.max(since)));
            }
        }
    }

    /// When the log can hold messages out of id order (several nodes appending),
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
        late.retain(|m| conversations.contains(&m.conversation_id));
        late.sort_by_key(|m| m.id);
        for message in late {
            if !sink.deliver(&message).await {
                return None;
            }
        }
        Some(since)
    }
}
