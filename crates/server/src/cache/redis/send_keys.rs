//! Send idempotency keys in Redis: `sent:{sender}:{client_msg_id}` is claimed with
//! `SET NX` as pending, then holds the acknowledged message for a day.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::{ConversationId, MessageId, UserId};
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::{RedisCache, down};
use crate::cache::{CacheError, Claim, SEND_KEY_TTL, SendKeys, SentMessage};

const PENDING: &str = "pending";
/// A claim whose node died before completing or releasing it lapses after this,
/// so the client's retry is not refused for a day. (An append can take at most the
/// log's delivery timeout.)
const PENDING_TTL: Duration = Duration::from_secs(30);

/// Deletes KEYS[1] only while it is still the pending claim ARGV[1].
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1",
    )
});

impl RedisCache {
    fn send_key(&self, sender: UserId, client_msg_id: Uuid) -> String {
        self.key(&format!("sent:{sender}:{client_msg_id}"))
    }
}

#[async_trait]
impl SendKeys for RedisCache {
    async fn claim(&self, sender: UserId, client_msg_id: Uuid) -> Result<Claim, CacheError> {
        let key = self.send_key(sender, client_msg_id);
        let mut conn = self.conn.clone();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(PENDING)
            .arg("NX")
            .arg("PX")
            .arg(PENDING_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(down)?;
        if claimed.is_some() {
            return Ok(Claim::New);
        }
        let value: Option<String> = conn.get(&key).await.map_err(down)?;
        Ok(match value.as_deref().and_then(parse_sent) {
            Some(sent) => Claim::Done(sent),
            None => Claim::InFlight,
        })
    }

    async fn complete(
        &self,
        sender: UserId,
        client_msg_id: Uuid,
        sent: SentMessage,
    ) -> Result<(), CacheError> {
        let key = self.send_key(sender, client_msg_id);
        let value = format!(
            "{}:{}:{}",
            sent.message_id, sent.conversation_id, sent.event_id
        );
        let mut conn = self.conn.clone();
        conn.pset_ex::<_, _, ()>(&key, value, SEND_KEY_TTL.as_millis() as u64)
            .await
            .map_err(down)
    }

    async fn release(&self, sender: UserId, client_msg_id: Uuid) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        RELEASE
            .key(self.send_key(sender, client_msg_id))
            .arg(PENDING)
            .invoke_async::<i32>(&mut conn)
            .await
            .map(|_| ())
            .map_err(down)
    }
}

/// `message:conversation:event`; keys written before events existed have no event
/// part, and were sends: the event is the message.
fn parse_sent(value: &str) -> Option<SentMessage> {
    let mut parts = value.split(':');
    let message_id = MessageId(parts.next()?.parse().ok()?);
    let conversation_id = ConversationId(parts.next()?.parse().ok()?);
    let event_id = match parts.next() {
        Some(event) => MessageId(event.parse().ok()?),
        None => message_id,
    };
    Some(SentMessage {
        message_id,
        conversation_id,
        event_id,
    })
}
