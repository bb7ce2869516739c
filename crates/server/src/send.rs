//! The send path (DESIGN.md §2), the heart of the system. The WebSocket `send` frame
//! and `POST /conversations/{id}/messages` both come here:
//!
//! validate → authorize (members only) → idempotency claim → rate limit → append to
//! the log, which stamps the Snowflake id → remember the key → acknowledge.
//!
//! Nothing is acknowledged before the log accepted it; a failed append releases the
//! idempotency claim so the client's retry (same `client_msg_id`) goes through.

use std::sync::Arc;
use std::time::Instant;

use chat_protocol::ErrorCode;
use chat_protocol::http::Message;
use chat_protocol::{ConversationId, MAX_BODY_CHARS, MessageId, UserId};
use uuid::Uuid;

use crate::cache::{Claim, Limit, RateLimits, SendKeys, SentMessage};
use crate::error::{AppError, AppResult};
use crate::log::{MessageLog, NewMessage};
use crate::membership::Members;

/// What a send became.
#[derive(Clone, Debug)]
pub enum Sent {
    /// Appended now.
    New(Arc<Message>),
    /// The same (sender, client_msg_id) was acknowledged before; nothing new exists.
    Replayed(SentMessage),
}

impl Sent {
    pub fn message_id(&self) -> MessageId {
        match self {
            Sent::New(m) => m.id,
            Sent::Replayed(s) => s.message_id,
        }
    }

    pub fn conversation_id(&self) -> ConversationId {
        match self {
            Sent::New(m) => m.conversation_id,
            Sent::Replayed(s) => s.conversation_id,
        }
    }
}

pub struct SendService {
    pub members: Arc<Members>,
    pub log: Arc<dyn MessageLog>,
    /// Idempotency: what each (sender, client_msg_id) became.
    pub keys: Arc<dyn SendKeys>,
    pub limits: Arc<dyn RateLimits>,
    /// Each sender's share of the log.
    pub limit: Limit,
}

impl SendService {
    #[tracing::instrument(name = "send", skip_all, fields(user = %sender, conversation = %conversation_id))]
    pub async fn send(
        &self,
        sender: UserId,
        conversation_id: ConversationId,
        client_msg_id: Uuid,
        body: String,
    ) -> AppResult<Sent> {
        let started = Instant::now();
        check_body(&body)?;
        self.members
            .authorize_member(conversation_id, sender)
            .await?;
        match self.keys.claim(sender, client_msg_id).await? {
            Claim::New => {}
            Claim::Done(sent) => return Ok(Sent::Replayed(sent)),
            Claim::InFlight => {
                return Err(AppError::Conflict {
                    code: ErrorCode::SendInProgress,
                    message: "a send with this client_msg_id is still in progress; retry shortly"
                        .into(),
                });
            }
        }
        let outcome = self
            .append(sender, conversation_id, client_msg_id, body)
            .await;
        match &outcome {
            Ok(message) => {
                let sent = SentMessage {
                    message_id: message.id,
                    conversation_id,
                };
                if let Err(error) = self.keys.complete(sender, client_msg_id, sent).await {
                    // The message is durable; only a later retry could slip through.
                    tracing::warn!(%error, "could not remember a send key");
                }
                metrics::counter!("chat_messages_sent_total").increment(1);
                metrics::histogram!("chat_send_latency_seconds")
                    .record(started.elapsed().as_secs_f64());
            }
            Err(_) => {
                if let Err(error) = self.keys.release(sender, client_msg_id).await {
                    // The claim lapses by itself; until then a retry is told to wait.
                    tracing::warn!(%error, "could not release a send key");
                }
            }
        }
        outcome.map(Sent::New)
    }

    async fn append(
        &self,
        sender: UserId,
        conversation_id: ConversationId,
        client_msg_id: Uuid,
        body: String,
    ) -> AppResult<Arc<Message>> {
        if let Err(retry_after) = self
            .limits
            .acquire(&format!("send:{sender}"), self.limit)
            .await?
        {
            return Err(AppError::rate_limited(retry_after));
        }
        let message = NewMessage {
            conversation_id,
            sender_id: sender,
            client_msg_id,
            body,
        };
        Ok(self.log.append(message).await?)
    }
}

/// A body must have something besides whitespace and at most [`MAX_BODY_CHARS`]
/// characters.
pub fn check_body(body: &str) -> AppResult<()> {
    if body.trim().is_empty() {
        return Err(AppError::invalid(
            ErrorCode::EmptyBody,
            "the message body is empty",
        ));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(AppError::invalid(
            ErrorCode::BodyTooLong,
            format!("a message body has at most {MAX_BODY_CHARS} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_must_be_non_blank_and_at_most_the_limit_in_characters() {
        assert!(check_body("hi").is_ok());
        assert_eq!(
            check_body(" \n\t").unwrap_err().code(),
            ErrorCode::EmptyBody
        );
        // 4,000 multi-byte characters are fine even though they exceed 4,000 bytes.
        assert!(check_body(&"é".repeat(MAX_BODY_CHARS)).is_ok());
        assert_eq!(
            check_body(&"a".repeat(MAX_BODY_CHARS + 1))
                .unwrap_err()
                .code(),
            ErrorCode::BodyTooLong
        );
    }
}
