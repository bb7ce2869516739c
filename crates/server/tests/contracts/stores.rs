//! The directory and history ports: `Users`, `Conversations`, `ReadMarkers` and
//! `MessageStore`, on SQLite and PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, bail};
use chat_protocol::events::{Event, MessagePosted};
use chat_protocol::http::{ConversationKind, Message};
use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::store::{
    ActivityQuery, CreateUserError, GroupChangeError, Removal, Replay, StoreError,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::fixtures::StorePorts;

crate::contract!(
    adapters: [
        sqlite => crate::fixtures::sqlite_stores,
        postgres => crate::fixtures::postgres_stores,
    ],
    tests: [
        users_are_created_once_and_found_by_literal_prefix,
        dataset_consents_are_kept_as_a_history,
        a_direct_conversation_is_created_once_per_pair,
        groups_gain_and_lose_members,
        conversations_and_members_are_read_in_one_batch,
        read_markers_only_move_forward,
        activity_has_the_last_message_and_unread_from_others,
        activity_is_asked_for_many_readers_at_once,
        storing_the_same_batch_twice_stores_it_once,
        history_pages_through_ten_thousand_messages_without_gaps,
    ]
);

async fn user(s: &StorePorts, name: &str) -> anyhow::Result<UserId> {
    Ok(s.users.create_user(name, name, "hash").await?.id)
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The id of the event numbered `seq`, Snowflake-shaped: `seq` orders it.
fn id_at(seq: i64) -> MessageId {
    let ms = 1_700_000_000_000 + seq;
    MessageId((ms << 22) | (seq & 0xfff))
}

/// A posted message whose id `seq` orders.
fn message(conversation: ConversationId, sender: UserId, seq: i64) -> Arc<Event> {
    Arc::new(Event::Message(MessagePosted {
        id: id_at(seq),
        conversation_id: conversation,
        sender_id: sender,
        body: format!("message {seq}"),
        client_msg_id: Uuid::new_v4(),
        reply_to: None,
        mentions: Vec::new(),
        created_at: at_ms(1_700_000_000_000 + seq),
    }))
}

/// A post as history shows it before any change.
fn stored(event: &Arc<Event>) -> Message {
    match event.as_ref() {
        Event::Message(posted) => Message::posted(posted),
        other => panic!("not a post: {other:?}"),
    }
}

fn ids_of(users: &[chat_protocol::http::User]) -> Vec<UserId> {
    users.iter().map(|u| u.id).collect()
}

async fn users_are_created_once_and_found_by_literal_prefix(s: &StorePorts) -> anyhow::Result<()> {
    let alice = s
        .users
        .create_user("alice", "Alice A", "argon-hash")
        .await?;
    assert!(matches!(
        s.users.create_user("alice", "Other", "x").await,
        Err(CreateUserError::Taken)
    ));
    let credentials = s
        .users
        .credentials("alice")
        .await?
        .context("alice exists")?;
    assert_eq!(credentials.user, alice);
    assert_eq!(credentials.password_hash, "argon-hash");
    assert!(s.users.credentials("nobody").await?.is_none());
    assert_eq!(s.users.user(alice.id).await?, Some(alice.clone()));

    let under = user(s, "a_b").await?;
    let _axb = user(s, "axb").await?;
    let percent = user(s, "50%off").await?;
    let _fifty = user(s, "50xoff").await?;
    assert_eq!(ids_of(&s.users.search_users("a_", 10).await?), vec![under]);
    assert_eq!(
        ids_of(&s.users.search_users("50%", 10).await?),
        vec![percent]
    );
    // Case-insensitive, on username or display name, limited.
    assert_eq!(
        ids_of(&s.users.search_users("ALI", 10).await?),
        vec![alice.id]
    );
    assert_eq!(s.users.search_users("a", 2).await?.len(), 2);

    let users = s.users.users(&[under, UserId(999_999), alice.id]).await?;
    assert_eq!(
        ids_of(&users).into_iter().collect::<HashSet<_>>(),
        HashSet::from([under, alice.id])
    );
    assert!(s.users.users(&[]).await?.is_empty());
    Ok(())
}

async fn dataset_consents_are_kept_as_a_history(s: &StorePorts) -> anyhow::Result<()> {
    let ada = user(s, "consent_ada").await?;
    let bob = user(s, "consent_bob").await?;
    let never = user(s, "consent_never").await?;
    s.users.set_dataset_consent(ada, true, at_ms(1_000)).await?;
    s.users.set_dataset_consent(bob, true, at_ms(1_500)).await?;
    s.users
        .set_dataset_consent(ada, false, at_ms(3_000))
        .await?;
    // Two choices in one millisecond: the second stands.
    s.users.set_dataset_consent(ada, true, at_ms(2_000)).await?;
    s.users
        .set_dataset_consent(ada, false, at_ms(2_000))
        .await?;
    let history = s.users.dataset_consents(&[ada, bob, never]).await?;
    let seen: Vec<(UserId, bool, i64)> = history
        .iter()
        .map(|c| (c.user_id, c.allowed, c.at.timestamp_millis()))
        .collect();
    let mut expected = vec![
        (ada, true, 1_000),
        (ada, false, 2_000),
        (ada, false, 3_000),
        (bob, true, 1_500),
    ];
    expected.sort_by_key(|(user, _, at)| (*user, *at));
    if seen != expected {
        bail!("consent history {seen:?}, expected {expected:?}");
    }
    if !s.users.dataset_consents(&[never]).await?.is_empty() {
        bail!("a user who never chose has a choice");
    }
    if !s.users.dataset_consents(&[]).await?.is_empty() {
        bail!("nobody asked for, something returned");
    }
    Ok(())
}

async fn a_direct_conversation_is_created_once_per_pair(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let (first, created) = s.conversations.direct_conversation(a, b).await?;
    assert!(created);
    let (again, created) = s.conversations.direct_conversation(b, a).await?;
    assert_eq!((again, created), (first, false));

    // Both sides opening it at once still make one conversation.
    let c = user(s, "c").await?;
    let (x, y) = tokio::join!(
        s.conversations.direct_conversation(a, c),
        s.conversations.direct_conversation(c, a)
    );
    let (x, y) = (x?, y?);
    assert_eq!(x.0, y.0);
    assert!(x.1 ^ y.1, "exactly one call creates it");

    let record = s
        .conversations
        .conversations(&[first])
        .await?
        .pop()
        .context("exists")?;
    assert_eq!(record.kind, ConversationKind::Direct);
    assert_eq!(record.title, None);
    let members: HashSet<_> = s
        .conversations
        .member_ids(first)
        .await?
        .into_iter()
        .collect();
    assert_eq!(members, HashSet::from([a, b]));
    assert!(
        s.conversations
            .conversations(&[ConversationId(999_999)])
            .await?
            .is_empty()
    );
    assert!(
        s.conversations
            .member_ids(ConversationId(999_999))
            .await?
            .is_empty()
    );
    Ok(())
}

async fn groups_gain_and_lose_members(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let c = user(s, "c").await?;
    let d = user(s, "d").await?;
    let group = s.conversations.create_group("team", &[a, b, a]).await?;
    let record = s
        .conversations
        .conversations(&[group])
        .await?
        .pop()
        .context("exists")?;
    assert_eq!(record.kind, ConversationKind::Group);
    assert_eq!(record.title.as_deref(), Some("team"));

    // a created it, so a is its admin.
    assert_eq!(
        s.conversations.add_members(group, a, &[d, b, c, d]).await?,
        vec![d, c]
    );
    assert!(s.conversations.add_members(group, a, &[]).await?.is_empty());
    let members = s
        .conversations
        .members(&[group])
        .await?
        .remove(&group)
        .unwrap_or_default();
    assert_eq!(members.len(), 4);
    assert!(members.iter().all(|m| m.last_read_id.is_none()));

    assert_eq!(
        s.conversations.remove_member(group, a, c).await?,
        Removal::default()
    );
    assert!(matches!(
        s.conversations.remove_member(group, a, c).await,
        Err(GroupChangeError::NotMember(user)) if user == c
    ));
    assert!(!s.conversations.member_ids(group).await?.contains(&c));
    assert_eq!(s.conversations.conversations_of(a).await?, vec![group]);
    assert!(s.conversations.conversations_of(c).await?.is_empty());
    let contacts: HashSet<_> = s.conversations.contacts(a).await?.into_iter().collect();
    assert_eq!(contacts, HashSet::from([b, d]));
    Ok(())
}

async fn conversations_and_members_are_read_in_one_batch(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let mut groups = Vec::new();
    let mut others = Vec::new();
    for i in 0..60 {
        let other = user(s, &format!("member_{i}")).await?;
        others.push(other);
        groups.push(
            s.conversations
                .create_group(&format!("g{i}"), &[a, other])
                .await?,
        );
    }
    let mut wanted = groups.clone();
    wanted.push(ConversationId(999_999));
    let records = s.conversations.conversations(&wanted).await?;
    assert_eq!(
        records.iter().map(|r| r.id).collect::<HashSet<_>>(),
        groups.iter().copied().collect::<HashSet<_>>(),
        "every existing conversation, nothing for an unknown id"
    );
    let members = s.conversations.members(&wanted).await?;
    assert_eq!(members.len(), groups.len());
    for (group, other) in groups.iter().zip(&others) {
        let ids: Vec<UserId> = members[group].iter().map(|m| m.user.id).collect();
        assert_eq!(ids, vec![a, *other], "in joining order");
    }
    assert!(s.conversations.conversations(&[]).await?.is_empty());
    assert!(s.conversations.members(&[]).await?.is_empty());
    Ok(())
}

async fn read_markers_only_move_forward(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let (conversation, _) = s.conversations.direct_conversation(a, b).await?;
    let markers = &s.read_markers;
    assert!(markers.mark_read(conversation, a, MessageId(10)).await?);
    assert!(!markers.mark_read(conversation, a, MessageId(5)).await?);
    assert!(!markers.mark_read(conversation, a, MessageId(10)).await?);
    assert!(markers.mark_read(conversation, a, MessageId(20)).await?);
    let outsider = user(s, "c").await?;
    assert!(
        !markers
            .mark_read(conversation, outsider, MessageId(30))
            .await?
    );
    let marker = s
        .conversations
        .members(&[conversation])
        .await?
        .remove(&conversation)
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.user.id == a)
        .and_then(|m| m.last_read_id);
    assert_eq!(marker, Some(MessageId(20)));
    Ok(())
}

async fn activity_has_the_last_message_and_unread_from_others(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let (busy, _) = s.conversations.direct_conversation(a, b).await?;
    let quiet = s.conversations.create_group("quiet", &[a, b]).await?;
    let messages: Vec<_> = (0..6)
        .map(|seq| message(busy, if seq % 2 == 0 { a } else { b }, seq))
        .collect();
    s.history.apply(&messages).await?;

    // a read up to message 1: of 2..=5, b sent 3 and 5.
    let query = |conversation, reader, last_read| ActivityQuery {
        conversation,
        reader,
        last_read,
    };
    let activity = s
        .history
        .activity(&[
            query(busy, a, Some(messages[1].id())),
            query(quiet, a, None),
        ])
        .await?;
    assert_eq!(
        activity[0].last_message.as_ref(),
        Some(&stored(&messages[5]))
    );
    assert_eq!(activity[0].unread_count, 2);
    assert_eq!(activity[1].last_message, None);
    assert_eq!(activity[1].unread_count, 0);

    // With no marker every message from others is unread; own messages never are.
    let activity = s.history.activity(&[query(busy, b, None)]).await?;
    assert_eq!(activity[0].unread_count, 3);
    assert!(s.history.activity(&[]).await?.is_empty());
    Ok(())
}

async fn activity_is_asked_for_many_readers_at_once(s: &StorePorts) -> anyhow::Result<()> {
    // An announcement to a large group asks for every member's view in one call.
    let sender = user(s, "sender").await?;
    let mut readers = Vec::new();
    for i in 0..700 {
        readers.push(user(s, &format!("reader_{i}")).await?);
    }
    let mut everyone = vec![sender];
    everyone.extend(&readers);
    let group = s.conversations.create_group("big", &everyone).await?;
    let messages: Vec<_> = (0..10).map(|seq| message(group, sender, seq)).collect();
    s.history.apply(&messages).await?;
    // Reader i has read up to message i % 10, so 9 - i % 10 are unread.
    let queries: Vec<ActivityQuery> = readers
        .iter()
        .enumerate()
        .map(|(i, reader)| ActivityQuery {
            conversation: group,
            reader: *reader,
            last_read: Some(messages[i % 10].id()),
        })
        .collect();
    let activity = s.history.activity(&queries).await?;
    assert_eq!(
        activity.len(),
        queries.len(),
        "one answer per query, in order"
    );
    for (i, answer) in activity.iter().enumerate() {
        assert_eq!(answer.unread_count, 9 - (i % 10) as u32, "reader {i}");
        assert_eq!(
            answer.last_message.as_ref().map(|m| m.id),
            Some(messages[9].id())
        );
    }
    Ok(())
}

async fn storing_the_same_batch_twice_stores_it_once(s: &StorePorts) -> anyhow::Result<()> {
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let (conversation, _) = s.conversations.direct_conversation(a, b).await?;
    let batch: Vec<_> = (0..50).map(|seq| message(conversation, a, seq)).collect();
    s.history.apply(&batch).await?;
    s.history.apply(&batch).await?;
    // A replay overlapping the end of the last batch adds only what is new.
    let overlap: Vec<_> = (40..60).map(|seq| message(conversation, a, seq)).collect();
    s.history.apply(&overlap).await?;
    s.history.apply(&[]).await?;

    let kept = s.history.history(conversation, None, None, 100).await?;
    assert_eq!(kept.len(), 60);
    // The first write of an id wins; nothing was overwritten.
    assert_eq!(
        s.history.message(batch[45].id()).await?.as_ref(),
        Some(&stored(&batch[45]))
    );
    assert!(s.history.message(MessageId(1)).await?.is_none());
    Ok(())
}

async fn history_pages_through_ten_thousand_messages_without_gaps(
    s: &StorePorts,
) -> anyhow::Result<()> {
    const TOTAL: i64 = 10_000;
    const PAGE: u32 = 100;
    let a = user(s, "a").await?;
    let b = user(s, "b").await?;
    let (conversation, _) = s.conversations.direct_conversation(a, b).await?;
    let other = s.conversations.create_group("noise", &[a, b]).await?;
    let all: Vec<_> = (0..TOTAL)
        .map(|seq| message(conversation, if seq % 3 == 0 { b } else { a }, seq))
        .collect();
    // Stored out of order, in persister-sized batches, beside another conversation.
    for batch in all.chunks(1_000).rev() {
        s.history.apply(batch).await?;
    }
    s.history
        .apply(&[message(other, a, TOTAL + 1), message(other, b, 5_000)])
        .await?;

    let mut seen = Vec::with_capacity(all.len());
    let mut before = None;
    loop {
        let page = s.history.history(conversation, before, None, PAGE).await?;
        if page.is_empty() {
            break;
        }
        if page.len() > PAGE as usize {
            bail!("a page holds {} messages, more than {PAGE}", page.len());
        }
        before = page.last().map(|m| m.id);
        seen.extend(page);
    }
    let newest_first: Vec<Message> = all.iter().rev().map(stored).collect();
    assert!(
        seen == newest_first,
        "pages are newest first, without gaps or duplicates"
    );

    // `after` bounds from below; with `before` it is a window.
    let newest = s
        .history
        .history(conversation, None, Some(all[9_899].id()), PAGE)
        .await?;
    assert_eq!(newest, newest_first[..100].to_vec());
    let window = s
        .history
        .history(conversation, Some(all[20].id()), Some(all[10].id()), PAGE)
        .await?;
    let expected: Vec<Message> = all[11..20].iter().rev().map(stored).collect();
    assert_eq!(window, expected);

    // `since` replays oldest first across conversations.
    let replay = s
        .history
        .since(&[conversation], all[4_999].id(), all[4_999].id(), PAGE)
        .await?;
    let expected: Vec<Replay> = all[5_000..5_100]
        .iter()
        .map(|m| Replay::Message(stored(m)))
        .collect();
    assert_eq!(replay, expected);
    let replay = s
        .history
        .since(
            &[conversation, other],
            all[TOTAL as usize - 2].id(),
            MessageId(0),
            PAGE,
        )
        .await?;
    assert_eq!(
        replay
            .iter()
            .map(|step| match step {
                Replay::Message(m) => m.conversation_id,
                Replay::Change(e) => e.conversation_id(),
            })
            .collect::<Vec<_>>(),
        vec![conversation, other]
    );
    assert!(
        s.history
            .since(&[], MessageId(0), MessageId(0), PAGE)
            .await?
            .is_empty()
    );
    Ok(())
}

/// SQLite used to read a corrupt client message id as the nil UUID, where
/// PostgreSQL (whose column is a `uuid`) cannot hold one at all: now it is an error.
#[tokio::test]
async fn a_corrupt_sqlite_row_is_an_error_not_a_default() -> anyhow::Result<()> {
    let db = crate::fixtures::sqlite().await?;
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, sender_id, client_msg_id, body, created_at)
         VALUES (7, 1, 1, 'not a uuid', 'hi', 0)",
    )
    .execute(&db.pools.write)
    .await?;
    let read = db.stores().history.message(MessageId(7)).await;
    assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");
    Ok(())
}
