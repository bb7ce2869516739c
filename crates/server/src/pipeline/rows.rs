//! One row of the dataset table per conversation event (DESIGN.md §10): the columns,
//! and the pure step that turns an [`Event`] plus what the sink looked up about it
//! (the conversation's kind and size, the usernames of the mentioned users) into a
//! [`Row`] with pseudonyms and a scrubbed body. Kept free of I/O so every rule of what
//! reaches the training data is tested here, without a table or a store.

use std::collections::HashMap;

use chat_protocol::UserId;
use chat_protocol::events::Event;
use chat_protocol::http::ConversationKind;
use chrono::{DateTime, NaiveDate, Utc};

use super::pseudonym::Pseudonymizer;
use super::scrub::scrub;

/// The version of the columns below, written into every Parquet file's metadata
/// under [`SCHEMA_VERSION_KEY`]. Bump it with any change a reader must know about.
pub const SCHEMA_VERSION: u32 = 1;
/// The Parquet key-value metadata key that holds [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "chat.schema_version";

/// Rough bytes a row takes besides its body and mentions (ids, pseudonyms, time),
/// for the flush-by-size threshold: Arrow's own sizes are not known until written.
const ROW_OVERHEAD_BYTES: usize = 200;

/// What an event did, as the `kind` column spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Post,
    Edit,
    Delete,
    ReactionAdded,
    ReactionRemoved,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Edit => "edit",
            Kind::Delete => "delete",
            Kind::ReactionAdded => "reaction_added",
            Kind::ReactionRemoved => "reaction_removed",
        }
    }
}

/// What the sink knows about an event's conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConversationFacts {
    pub kind: ConversationKind,
    /// Members when the sink looked (not necessarily when the event was sent).
    pub size: u32,
}

impl ConversationFacts {
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub event_id: i64,
    pub kind: Kind,
    pub message_id: i64,
    /// The conversation's pseudonym.
    pub conversation: String,
    /// The pseudonym of who caused the event (the author of a post).
    pub author: String,
    /// The id of the key the pseudonyms were made with.
    pub key_id: String,
    pub time: DateTime<Utc>,
    /// Scrubbed; the emoji of a reaction; `None` for a deletion.
    pub body: Option<String>,
    pub reply_to: Option<i64>,
    /// The mentioned users' pseudonyms, in the order first mentioned.
    pub mentions: Vec<String>,
    pub conversation_kind: &'static str,
    pub conversation_size: u32,
    /// The UTC date of `time`: the table's partition.
    pub day: NaiveDate,
}

impl Row {
    /// Roughly what the row adds to the next file, for flushing by size.
    pub fn approx_bytes(&self) -> usize {
        ROW_OVERHEAD_BYTES
            + self.body.as_ref().map_or(0, String::len)
            + self.mentions.iter().map(String::len).sum::<usize>()
    }
}

/// The row of `event`. `usernames` holds the mentioned users' usernames
/// (lowercase), so `@username` in the body becomes `@` and their pseudonym.
pub fn row(
    event: &Event,
    pseudonyms: &Pseudonymizer,
    conversation: ConversationFacts,
    usernames: &HashMap<UserId, String>,
) -> Row {
    let (kind, body, reply_to, mentions): (Kind, Option<String>, Option<i64>, &[UserId]) =
        match event {
            Event::Message(m) => (
                Kind::Post,
                Some(dataset_body(&m.body, &m.mentions, pseudonyms, usernames)),
                m.reply_to.map(|id| id.0),
                &m.mentions,
            ),
            Event::Edit(e) => (
                Kind::Edit,
                Some(dataset_body(&e.body, &e.mentions, pseudonyms, usernames)),
                None,
                &e.mentions,
            ),
            Event::Delete(_) => (Kind::Delete, None, None, &[]),
            Event::Reaction(r) => (
                if r.on {
                    Kind::ReactionAdded
                } else {
                    Kind::ReactionRemoved
                },
                Some(r.emoji.clone()),
                None,
                &[],
            ),
        };
    let time = event.at();
    Row {
        event_id: event.id().0,
        kind,
        message_id: event.message_id().0,
        conversation: pseudonyms.conversation(event.conversation_id()),
        author: pseudonyms.user(event.user_id()),
        key_id: pseudonyms.key_id().to_owned(),
        time,
        body,
        reply_to,
        mentions: mentions.iter().map(|id| pseudonyms.user(*id)).collect(),
        conversation_kind: conversation.kind_str(),
        conversation_size: conversation.size,
        day: time.date_naive(),
    }
}

/// The body as the table keeps it: PII scrubbed, then each `@username` of a
/// mentioned user replaced by `@` and their pseudonym, and any other `@name` by
/// `@<USER>` (a username is an identity even when its owner was not a member).
fn dataset_body(
    body: &str,
    mentions: &[UserId],
    pseudonyms: &Pseudonymizer,
    usernames: &HashMap<UserId, String>,
) -> String {
    let by_name: HashMap<&str, String> = mentions
        .iter()
        .filter_map(|id| {
            usernames
                .get(id)
                .map(|name| (name.as_str(), pseudonyms.user(*id)))
        })
        .collect();
    replace_mentions(&scrub(body).text, &by_name)
}

/// Replaces every `@name` at a word start (as the send path finds mentions) by `@`
/// and its pseudonym from `by_name` (lowercase names), or `@<USER>`.
fn replace_mentions(text: &str, by_name: &HashMap<&str, String>) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<char> = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        if c == '@' && !previous.is_some_and(|p| p.is_alphanumeric() || p == '_') {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            let name = after[..end].to_ascii_lowercase();
            if (3..=32).contains(&name.len()) {
                out.push('@');
                out.push_str(by_name.get(name.as_str()).map_or("<USER>", String::as_str));
                previous = after[..end].chars().last();
                rest = &after[end..];
                continue;
            }
        }
        out.push(c);
        previous = Some(c);
        rest = after;
    }
    out
}

/// Whether `user`'s choices (`history`, oldest first) allowed the dataset at `at`;
/// before any choice, the operator's default.
pub fn consent_at(
    history: &[crate::store::ConsentChange],
    consent_by_default: bool,
    at: DateTime<Utc>,
) -> bool {
    history
        .iter()
        .rev()
        .find(|change| change.at <= at)
        .map_or(consent_by_default, |change| change.allowed)
}

#[cfg(test)]
mod tests {
    use chat_protocol::events::{MessageDeleted, MessagePosted, ReactionChanged};
    use chat_protocol::{ConversationId, MessageId};

    use super::*;
    use crate::store::ConsentChange;

    fn pseudonyms() -> Pseudonymizer {
        Pseudonymizer::new(&[7; 32]).unwrap()
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn group(size: u32) -> ConversationFacts {
        ConversationFacts {
            kind: ConversationKind::Group,
            size,
        }
    }

    fn post(body: &str, mentions: Vec<UserId>) -> Event {
        Event::Message(MessagePosted {
            id: MessageId(42),
            conversation_id: ConversationId(9),
            sender_id: UserId(1),
            client_msg_id: uuid::Uuid::nil(),
            body: body.into(),
            reply_to: Some(MessageId(41)),
            mentions,
            created_at: at(1_700_000_000_123),
        })
    }

    #[test]
    fn a_post_becomes_a_row_of_pseudonyms_and_a_scrubbed_body() {
        let keys = pseudonyms();
        let usernames = HashMap::from([(UserId(2), "bob".to_owned())]);
        let row = row(
            &post("@Bob write to ann@example.com, @carol too", vec![UserId(2)]),
            &keys,
            group(3),
            &usernames,
        );
        let bob = keys.user(UserId(2));
        assert_eq!(
            row,
            Row {
                event_id: 42,
                kind: Kind::Post,
                message_id: 42,
                conversation: keys.conversation(ConversationId(9)),
                author: keys.user(UserId(1)),
                key_id: keys.key_id().to_owned(),
                time: at(1_700_000_000_123),
                body: Some(format!("@{bob} write to <EMAIL>, @<USER> too")),
                reply_to: Some(41),
                mentions: vec![bob],
                conversation_kind: "group",
                conversation_size: 3,
                day: NaiveDate::from_ymd_opt(2023, 11, 14).unwrap(),
            }
        );
    }

    #[test]
    fn mentions_are_replaced_only_at_a_word_start() {
        let by_name = HashMap::from([("bob", "uB".to_owned())]);
        assert_eq!(
            replace_mentions("(@bob) x@bob @bo @bob_2 é@bob @bob!", &by_name),
            "(@uB) x@bob @bo @<USER> é@bob @uB!"
        );
    }

    #[test]
    fn deletions_have_no_body_and_reactions_their_emoji() {
        let keys = pseudonyms();
        let delete = Event::Delete(MessageDeleted {
            id: MessageId(50),
            conversation_id: ConversationId(9),
            message_id: MessageId(42),
            user_id: UserId(1),
            client_msg_id: uuid::Uuid::nil(),
            at: at(1_700_000_000_000),
        });
        let row_of_delete = row(&delete, &keys, group(2), &HashMap::new());
        assert_eq!(
            (
                row_of_delete.kind,
                row_of_delete.body,
                row_of_delete.message_id
            ),
            (Kind::Delete, None, 42)
        );
        let react = Event::Reaction(ReactionChanged {
            id: MessageId(51),
            conversation_id: ConversationId(9),
            message_id: MessageId(42),
            user_id: UserId(3),
            client_msg_id: uuid::Uuid::nil(),
            emoji: "👍".into(),
            on: false,
            at: at(1_700_000_000_000),
        });
        let row_of_react = row(&react, &keys, group(2), &HashMap::new());
        assert_eq!(row_of_react.kind.as_str(), "reaction_removed");
        assert_eq!(row_of_react.body.as_deref(), Some("👍"));
        assert_eq!(row_of_react.author, keys.user(UserId(3)));
    }

    #[test]
    fn consent_is_the_choice_in_force_when_the_event_happened() {
        let change = |ms, allowed| ConsentChange {
            user_id: UserId(1),
            allowed,
            at: at(ms),
        };
        let history = [change(100, true), change(200, false)];
        assert!(!consent_at(&history, false, at(99)), "the default before");
        assert!(consent_at(&[], true, at(99)), "an opt-out default");
        assert!(consent_at(&history, false, at(100)));
        assert!(consent_at(&history, false, at(199)));
        assert!(
            !consent_at(&history, true, at(200)),
            "withdrawn from then on"
        );
    }
}
