//! Who is in which conversation, cached in front of the [`Conversations`] store: the
//! send path and the fan-out ask this for every message, so it must not cost a query
//! each time. Every path that checks membership (send, typing, read, history,
//! conversation views) goes through [`Members::authorize_member`], so outsiders get
//! the same answer everywhere. Membership changes invalidate the entry on every node
//! (`Events::members_changed`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_protocol::{ConversationId, UserId};

use crate::error::{AppError, AppResult};
use crate::store::{Conversations, StoreResult};

const MAX_CACHED: usize = 100_000;

pub struct Members {
    conversations: Arc<dyn Conversations>,
    cache: Mutex<HashMap<ConversationId, Arc<[UserId]>>>,
}

impl Members {
    pub fn new(conversations: Arc<dyn Conversations>) -> Self {
        Self {
            conversations,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The members of `conversation`; empty when it does not exist.
    pub async fn of(&self, conversation: ConversationId) -> StoreResult<Arc<[UserId]>> {
        if let Some(members) = self.lock().get(&conversation) {
            return Ok(members.clone());
        }
        let members: Arc<[UserId]> = self.conversations.member_ids(conversation).await?.into();
        // A conversation with no members is one that does not exist (yet): ids are
        // sequential, so remembering it as empty would refuse its first members.
        if !members.is_empty() {
            let mut cache = self.lock();
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(conversation, members.clone());
        }
        Ok(members)
    }

    /// The members of `conversation` if `user` is one of them; otherwise the same
    /// 404 as for a conversation that does not exist (DESIGN.md §6).
    pub async fn authorize_member(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> AppResult<Arc<[UserId]>> {
        let members = self.of(conversation).await?;
        if members.contains(&user) {
            Ok(members)
        } else {
            Err(AppError::NotFound("conversation"))
        }
    }

    pub fn invalidate(&self, conversation: ConversationId) {
        self.lock().remove(&conversation);
    }

    /// Forgets everything (after missing invalidations, e.g. a lost subscription).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationId, Arc<[UserId]>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
