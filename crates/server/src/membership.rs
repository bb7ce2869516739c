//! Who is in which conversation, cached in front of the [`Directory`]: the send path
//! and the fan-out ask this for every message, so it must not cost a query each time.
//! Membership changes made through this node invalidate the entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_protocol::{ConversationId, UserId};

use crate::store::{Directory, StoreResult};

const MAX_CACHED: usize = 100_000;

pub struct Members {
    directory: Arc<dyn Directory>,
    cache: Mutex<HashMap<ConversationId, Arc<[UserId]>>>,
}

impl Members {
    pub fn new(directory: Arc<dyn Directory>) -> Self {
        Self {
            directory,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn of(&self, conversation: ConversationId) -> StoreResult<Arc<[UserId]>> {
        if let Some(members) = self.lock().get(&conversation) {
            return Ok(members.clone());
        }
        let members: Arc<[UserId]> = self.directory.member_ids(conversation).await?.into();
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(conversation, members.clone());
        Ok(members)
    }

    pub async fn contains(&self, conversation: ConversationId, user: UserId) -> StoreResult<bool> {
        Ok(self.of(conversation).await?.contains(&user))
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
