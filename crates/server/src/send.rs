//! The write path (DESIGN.md §2), the heart of the system. Every change a member
//! makes to a conversation comes here, from the WebSocket frames (`send`, `edit`,
//! `delete`, `react`) and from the HTTP endpoints alike:
//!
//! validate → authorize (members only) → idempotency claim → check the change
//! against the message it touches → rate limit → append the event to the log, which
//! stamps its Snowflake id → remember the key → acknowledge.
//!
//! Nothing is acknowledged before the log accepted it; a refused or failed change
//! releases the idempotency claim, so the client's retry (same `client_msg_id`) is
//! judged afresh. Each change runs in a task of its own, so one whose caller went
//! away still ends by completing or releasing its claim. The checks read history, which may lag the log by a moment: the
//! persister applies the same rules again (no change to a deleted message, no older
//! edit over a newer one), so a race between two changes cannot undo either.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::events::Event;
use chat_protocol::http::Message;
use chat_protocol::{
    ConversationId, ErrorCode, MAX_BODY_CHARS, MAX_REACTIONS_PER_MESSAGE, MessageId, UserId,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::cache::{Claim, Limit, RateLimits, SendKeys, SentMessage};
use crate::error::{AppError, AppResult};
use crate::log::{Change, MessageLog, NewEvent};
use crate::membership::Members;
use crate::persister::caught_up;
use crate::store::{Conversations, MessageStore, Users};
use crate::text;

/// How long a change waits for the message it touches to reach history.
const TARGET_WAIT: Duration = Duration::from_secs(2);

/// What a change became.
#[derive(Clone, Debug)]
pub enum Sent {
    /// Appended now.
    New(Arc<Event>),
    /// The same (user, client_msg_id) was acknowledged before; nothing new exists.
    Replayed(SentMessage),
}

impl Sent {
    /// The message posted or changed.
    pub fn message_id(&self) -> MessageId {
        match self {
            Sent::New(e) => e.message_id(),
            Sent::Replayed(s) => s.message_id,
        }
    }

    pub fn conversation_id(&self) -> ConversationId {
        match self {
            Sent::New(e) => e.conversation_id(),
            Sent::Replayed(s) => s.conversation_id,
        }
    }

    pub fn event_id(&self) -> MessageId {
        match self {
            Sent::New(e) => e.id(),
            Sent::Replayed(s) => s.event_id,
        }
    }
}

pub struct SendService {
    pub members: Arc<Members>,
    pub log: Arc<dyn MessageLog>,
    /// Idempotency: what each (user, client_msg_id) became.
    pub keys: Arc<dyn SendKeys>,
    pub limits: Arc<dyn RateLimits>,
    /// Each user's share of the log.
    pub limit: Limit,
    /// The messages changes touch.
    pub history: Arc<dyn MessageStore>,
    /// Usernames, to resolve mentions.
    pub users: Arc<dyn Users>,
    /// Who may delete others' messages.
    pub conversations: Arc<dyn Conversations>,
}

impl SendService {
    /// Posts a message.
    pub async fn send(
        self: &Arc<Self>,
        sender: UserId,
        conversation_id: ConversationId,
        client_msg_id: Uuid,
        body: String,
        reply_to: Option<MessageId>,
    ) -> AppResult<Sent> {
        self.to_the_end(move |this| async move {
            this.post(sender, conversation_id, client_msg_id, body, reply_to)
                .await
        })
        .await
    }

    /// Changes the body of one's own message.
    pub async fn edit(
        self: &Arc<Self>,
        user: UserId,
        conversation_id: ConversationId,
        message_id: MessageId,
        client_msg_id: Uuid,
        body: String,
    ) -> AppResult<Sent> {
        self.to_the_end(move |this| async move {
            this.change_body(user, conversation_id, message_id, client_msg_id, body)
                .await
        })
        .await
    }

    /// Deletes one's own message, or any message of a group one administers.
    pub async fn delete(
        self: &Arc<Self>,
        user: UserId,
        conversation_id: ConversationId,
        message_id: MessageId,
        client_msg_id: Uuid,
    ) -> AppResult<Sent> {
        self.to_the_end(move |this| async move {
            this.remove(user, conversation_id, message_id, client_msg_id)
                .await
        })
        .await
    }

    /// Turns the caller's reaction with `emoji` on or off.
    pub async fn react(
        self: &Arc<Self>,
        user: UserId,
        conversation_id: ConversationId,
        message_id: MessageId,
        client_msg_id: Uuid,
        emoji: String,
        on: bool,
    ) -> AppResult<Sent> {
        self.to_the_end(move |this| async move {
            this.toggle_reaction(user, conversation_id, message_id, client_msg_id, emoji, on)
                .await
        })
        .await
    }

    /// Runs a change in a task of its own and waits for it. A change, once it
    /// reached here, runs to its end even when its caller goes away (an HTTP client
    /// that disconnects mid-request, a closing socket): its idempotency claim is
    /// always completed or released, so the client's retry gets the stored result,
    /// never `send_in_progress` for as long as a claim lives.
    async fn to_the_end<F>(self: &Arc<Self>, change: impl FnOnce(Arc<Self>) -> F) -> AppResult<Sent>
    where
        F: Future<Output = AppResult<Sent>> + Send + 'static,
    {
        let task = tokio::spawn(change(Arc::clone(self)).in_current_span());
        match task.await {
            Ok(outcome) => outcome,
            Err(error) => Err(AppError::Internal(format!("a change failed: {error}"))),
        }
    }

    #[tracing::instrument(name = "send", skip_all, fields(user = %sender, conversation = %conversation_id))]
    async fn post(
        &self,
        sender: UserId,
        conversation_id: ConversationId,
        client_msg_id: Uuid,
        body: String,
        reply_to: Option<MessageId>,
    ) -> AppResult<Sent> {
        check_body(&body)?;
        let change = async {
            if let Some(original) = reply_to {
                self.reply_target(conversation_id, original).await?;
            }
            let mentions = self.mentions(conversation_id, &body).await?;
            Ok(Change::Post {
                body,
                reply_to,
                mentions,
            })
        };
        self.submit(sender, conversation_id, client_msg_id, change)
            .await
    }

    #[tracing::instrument(name = "edit", skip_all, fields(user = %user, conversation = %conversation_id, message = %message_id))]
    async fn change_body(
        &self,
        user: UserId,
        conversation_id: ConversationId,
        message_id: MessageId,
        client_msg_id: Uuid,
        body: String,
    ) -> AppResult<Sent> {
        check_body(&body)?;
        let change = async {
            let message = self.target(conversation_id, message_id).await?;
            if message.sender_id != user {
                return Err(AppError::forbidden(
                    ErrorCode::NotAuthor,
                    "only its author can edit a message",
                ));
            }
            live(&message)?;
            let mentions = self.mentions(conversation_id, &body).await?;
            Ok(Change::Edit {
                message_id,
                body,
                mentions,
            })
        };
        self.submit(user, conversation_id, client_msg_id, change)
            .await
    }

    #[tracing::instrument(name = "delete", skip_all, fields(user = %user, conversation = %conversation_id, message = %message_id))]
    async fn remove(
        &self,
        user: UserId,
        conversation_id: ConversationId,
        message_id: MessageId,
        client_msg_id: Uuid,
    ) -> AppResult<Sent> {
        let change = async {
            let message = self.target(conversation_id, message_id).await?;
            if message.sender_id != user && !self.is_admin(conversation_id, user).await? {
                return Err(AppError::forbidden(
                    ErrorCode::NotAuthor,
                    "only its author or an admin of the group can delete a message",
                ));
            }
            live(&message)?;
            Ok(Change::Delete { message_id })
        };
        self.submit(user, conversation_id, client_msg_id, change)
            .await
    }

    #[tracing::instrument(name = "react", skip_all, fields(user = %user, conversation = %conversation_id, message = %message_id))]
    async fn toggle_reaction(
        &self,
        user: UserId,
        conversation_id: ConversationId,
        message_id: MessageId,
        client_msg_id: Uuid,
        emoji: String,
        on: bool,
    ) -> AppResult<Sent> {
        check_emoji(&emoji)?;
        let change = async {
            let message = self.target(conversation_id, message_id).await?;
            live(&message)?;
            let new_emoji = !message.reactions.iter().any(|r| r.emoji == emoji);
            if on && new_emoji && message.reactions.len() >= MAX_REACTIONS_PER_MESSAGE {
                return Err(AppError::conflict(
                    ErrorCode::TooManyReactions,
                    format!(
                        "a message carries at most {MAX_REACTIONS_PER_MESSAGE} different emoji"
                    ),
                ));
            }
            Ok(Change::React {
                message_id,
                emoji,
                on,
            })
        };
        self.submit(user, conversation_id, client_msg_id, change)
            .await
    }

    /// Authorizes, claims the idempotency key, prepares the change (its checks run
    /// only for a first attempt) and appends it.
    async fn submit(
        &self,
        user: UserId,
        conversation_id: ConversationId,
        client_msg_id: Uuid,
        change: impl Future<Output = AppResult<Change>> + Send,
    ) -> AppResult<Sent> {
        let started = Instant::now();
        self.members.authorize_member(conversation_id, user).await?;
        match self.keys.claim(user, client_msg_id).await? {
            Claim::New => {}
            Claim::Done(sent) => return Ok(Sent::Replayed(sent)),
            Claim::InFlight => {
                return Err(AppError::conflict(
                    ErrorCode::SendInProgress,
                    "a change with this client_msg_id is still in progress; retry shortly",
                ));
            }
        }
        let outcome = async {
            let change = change.await?;
            self.append(user, conversation_id, client_msg_id, change)
                .await
        }
        .await;
        match &outcome {
            Ok(event) => {
                let sent = SentMessage {
                    message_id: event.message_id(),
                    conversation_id,
                    event_id: event.id(),
                };
                if let Err(error) = self.keys.complete(user, client_msg_id, sent).await {
                    // The event is durable; only a later retry could slip through.
                    tracing::warn!(%error, "could not remember a send key");
                }
                if let Event::Message(_) = event.as_ref() {
                    metrics::counter!("chat_messages_sent_total").increment(1);
                    metrics::histogram!("chat_send_latency_seconds")
                        .record(started.elapsed().as_secs_f64());
                } else {
                    metrics::counter!("chat_message_changes_total").increment(1);
                }
            }
            Err(_) => {
                if let Err(error) = self.keys.release(user, client_msg_id).await {
                    // The claim lapses by itself; until then a retry is told to wait.
                    tracing::warn!(%error, "could not release a send key");
                }
            }
        }
        outcome.map(Sent::New)
    }

    async fn append(
        &self,
        user: UserId,
        conversation_id: ConversationId,
        client_msg_id: Uuid,
        change: Change,
    ) -> AppResult<Arc<Event>> {
        if let Err(retry_after) = self
            .limits
            .acquire(&format!("send:{user}"), self.limit)
            .await?
        {
            return Err(AppError::rate_limited(retry_after));
        }
        let event = NewEvent {
            conversation_id,
            user_id: user,
            client_msg_id,
            change,
        };
        Ok(self.log.append(event).await?)
    }

    /// The message `id` of `conversation` as history holds it once the persister has
    /// applied every event acknowledged so far (waiting a moment at most), so a change
    /// is judged against every earlier one: a reaction cap, a deletion. Not found when
    /// it is another conversation's: the caller may not know it exists. When history
    /// is still behind the log after the wait, the change is refused as unavailable
    /// (retryable) rather than judged against a stale state, or a message just sent
    /// reported as missing.
    async fn target(&self, conversation: ConversationId, id: MessageId) -> AppResult<Message> {
        if !caught_up(self.log.as_ref(), TARGET_WAIT).await {
            return Err(AppError::Unavailable("history"));
        }
        self.message_of(conversation, id).await
    }

    async fn message_of(&self, conversation: ConversationId, id: MessageId) -> AppResult<Message> {
        match self.history.message(id).await? {
            Some(message) if message.conversation_id == conversation => Ok(message),
            _ => Err(AppError::NotFound("message")),
        }
    }

    /// A reply names a live message of the same conversation. Posts are the hot path:
    /// history is read at once, and the persister waited for only when the original
    /// is not there yet.
    async fn reply_target(&self, conversation: ConversationId, id: MessageId) -> AppResult<()> {
        let original = match self.message_of(conversation, id).await {
            Err(AppError::NotFound(_)) => self.target(conversation, id).await,
            found => found,
        };
        match original {
            Ok(original) => live(&original),
            Err(AppError::NotFound(_)) => Err(AppError::invalid(
                ErrorCode::InvalidReply,
                "reply_to must name a message of this conversation",
            )),
            Err(error) => Err(error),
        }
    }

    async fn is_admin(&self, conversation: ConversationId, user: UserId) -> AppResult<bool> {
        Ok(self.conversations.is_admin(conversation, user).await?)
    }

    /// The members named as `@username` in `body`, in the order first named.
    async fn mentions(&self, conversation: ConversationId, body: &str) -> AppResult<Vec<UserId>> {
        let names = mentioned_usernames(body);
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let members = self.members.of(conversation).await?;
        let users = self.users.users(&members).await?;
        Ok(names
            .iter()
            .filter_map(|name| users.iter().find(|u| &u.username == name).map(|u| u.id))
            .collect())
    }
}

fn live(message: &Message) -> AppResult<()> {
    if message.deleted {
        return Err(AppError::conflict(
            ErrorCode::MessageDeleted,
            "the message was deleted",
        ));
    }
    Ok(())
}

/// A body must have something besides whitespace, at most [`MAX_BODY_CHARS`]
/// characters and no control character but newline, tab and carriage return
/// ([`text::check_body_characters`]).
pub fn check_body(body: &str) -> AppResult<()> {
    text::check_body_characters(body)?;
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

/// A reaction is exactly one emoji of the Unicode emoji list (with its skin tone or
/// other qualification, if any), never text.
pub fn check_emoji(emoji: &str) -> AppResult<()> {
    if emojis::get(emoji).is_some() {
        Ok(())
    } else {
        Err(AppError::invalid(
            ErrorCode::InvalidEmoji,
            "a reaction is a single emoji",
        ))
    }
}

/// The usernames named as `@name` in a body, lowercased, each once, in order. A
/// mention starts the body or follows a character that is not part of a word (so
/// `ann@example.com` names nobody) and is 3 to 32 username characters long.
pub fn mentioned_usernames(body: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (at, c) in body.char_indices() {
        if c == '@' && !previous.is_some_and(|p| p.is_alphanumeric() || p == '_') {
            let rest = &body[at + 1..];
            let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
            let name = rest[..end].to_ascii_lowercase();
            if (3..=32).contains(&name.len()) && !names.contains(&name) {
                names.push(name);
            }
        }
        previous = Some(c);
    }
    names
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

    #[test]
    fn a_reaction_is_one_emoji_and_nothing_else() {
        for ok in ["👍", "👍🏽", "❤️", "🇫🇷", "👩‍💻", "🎉"] {
            assert!(check_emoji(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "ok", "👍👍", "👍 ", " 👍", ":+1:", "1", "#", "\u{0}", "<b>", "👍a",
            "\u{200d}",
        ] {
            assert_eq!(
                check_emoji(bad).unwrap_err().code(),
                ErrorCode::InvalidEmoji,
                "{bad:?}"
            );
        }
        assert!(check_emoji(&"😀".repeat(50)).is_err());
    }

    #[test]
    fn mentions_are_at_names_at_a_word_start() {
        assert_eq!(
            mentioned_usernames("@Ann and @bob_2, hi @ann! mail ann@example.com @x @cat."),
            ["ann", "bob_2", "cat"]
        );
        assert!(mentioned_usernames("no one here @ @@").is_empty());
        assert_eq!(mentioned_usernames("(@dan)"), ["dan"]);
        // Longer than a username can be: nobody.
        assert!(mentioned_usernames(&format!("@{}", "a".repeat(33))).is_empty());
    }
}
