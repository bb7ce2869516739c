//! `MessageStore::apply` and `SearchIndex::index` on SQLite and PostgreSQL:
//! conversation events change history and the search index the same way on both,
//! each once however often it is replayed, and a deletion leaves no trace of the body
//! in history, search, mentions or the rows.

use std::sync::Arc;

use anyhow::Context;
use chat_protocol::events::{Event, MessageDeleted, MessageEdited, MessagePosted, ReactionChanged};
use chat_protocol::http::Message;
use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::search::SearchTerms;
use chat_server::store::{ActivityQuery, Replay};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::fixtures::StorePorts;

crate::contract!(
    adapters: [
        sqlite => crate::fixtures::sqlite_stores,
        postgres => crate::fixtures::postgres_stores,
    ],
    tests: [
        edits_apply_once_and_never_over_a_newer_edit,
        reactions_toggle_per_user_and_emoji_and_replays_change_nothing,
        a_deletion_drops_the_body_everywhere_and_nothing_revives_it,
        mentions_count_until_read_and_follow_edits,
        sync_replays_new_messages_as_they_are_and_changes_of_older_ones,
        search_finds_words_and_phrases_in_live_messages_of_the_given_conversations,
    ]
);

/// Ids ordered by `seq`, as the log stamps them.
fn id(seq: i64) -> MessageId {
    MessageId(((1_700_000_000_000 + seq) << 22) | (seq & 0xfff))
}

fn at(seq: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + seq).unwrap_or_default()
}

fn post(seq: i64, conversation: ConversationId, sender: UserId, body: &str) -> Arc<Event> {
    post_mentioning(seq, conversation, sender, body, &[])
}

fn post_mentioning(
    seq: i64,
    conversation: ConversationId,
    sender: UserId,
    body: &str,
    mentions: &[UserId],
) -> Arc<Event> {
    Arc::new(Event::Message(MessagePosted {
        id: id(seq),
        conversation_id: conversation,
        sender_id: sender,
        client_msg_id: Uuid::new_v4(),
        body: body.into(),
        reply_to: None,
        mentions: mentions.to_vec(),
        created_at: at(seq),
    }))
}

fn edit(seq: i64, of: &Arc<Event>, body: &str, mentions: &[UserId]) -> Arc<Event> {
    Arc::new(Event::Edit(MessageEdited {
        id: id(seq),
        conversation_id: of.conversation_id(),
        message_id: of.id(),
        user_id: of.user_id(),
        client_msg_id: Uuid::new_v4(),
        body: body.into(),
        mentions: mentions.to_vec(),
        at: at(seq),
    }))
}

fn delete(seq: i64, of: &Arc<Event>, by: UserId) -> Arc<Event> {
    Arc::new(Event::Delete(MessageDeleted {
        id: id(seq),
        conversation_id: of.conversation_id(),
        message_id: of.id(),
        user_id: by,
        client_msg_id: Uuid::new_v4(),
        at: at(seq),
    }))
}

fn react(seq: i64, of: &Arc<Event>, user: UserId, emoji: &str, on: bool) -> Arc<Event> {
    Arc::new(Event::Reaction(ReactionChanged {
        id: id(seq),
        conversation_id: of.conversation_id(),
        message_id: of.id(),
        user_id: user,
        client_msg_id: Uuid::new_v4(),
        emoji: emoji.into(),
        on,
        at: at(seq),
    }))
}

struct Room {
    a: UserId,
    b: UserId,
    conversation: ConversationId,
}

async fn room(s: &StorePorts) -> anyhow::Result<Room> {
    let a = s.users.create_user("ann", "Ann", "x").await?.id;
    let b = s.users.create_user("bob", "Bob", "x").await?.id;
    let conversation = s.conversations.create_group("room", &[a, b]).await?;
    Ok(Room { a, b, conversation })
}

async fn message(s: &StorePorts, id: MessageId) -> anyhow::Result<Message> {
    s.history
        .message(id)
        .await?
        .context("the message is stored")
}

/// The persister's and the search indexer's work on one batch.
async fn apply(s: &StorePorts, events: &[Arc<Event>]) -> anyhow::Result<()> {
    s.history.apply(events).await?;
    s.search.index(events).await?;
    Ok(())
}

async fn found(s: &StorePorts, room: &Room, query: &str) -> anyhow::Result<Vec<MessageId>> {
    let terms = SearchTerms::parse(query)?;
    let hits = s
        .history
        .search(&[room.conversation], &terms, None, 100)
        .await?;
    Ok(hits.iter().map(|m| m.id).collect())
}

async fn edits_apply_once_and_never_over_a_newer_edit(s: &StorePorts) -> anyhow::Result<()> {
    let r = room(s).await?;
    let original = post(1, r.conversation, r.a, "frist");
    let first = edit(2, &original, "first draft", &[]);
    let second = edit(3, &original, "final wording", &[]);
    apply(s, &[original.clone(), first.clone(), second.clone()]).await?;
    // The whole batch again, the post and the first edit alone, the older edit alone:
    // still the newest body, in history and in the index.
    apply(s, &[original.clone(), first.clone(), second]).await?;
    apply(s, &[original.clone(), first.clone()]).await?;
    apply(s, &[first]).await?;
    let now = message(s, original.id()).await?;
    assert_eq!(now.body, "final wording");
    assert_eq!(now.edited_at, Some(at(3)));
    assert!(!now.deleted);
    assert_eq!(found(s, &r, "wording").await?, [original.id()]);
    for word in ["frist", "draft"] {
        assert!(
            found(s, &r, word).await?.is_empty(),
            "the index follows edits: {word}"
        );
    }
    Ok(())
}

async fn reactions_toggle_per_user_and_emoji_and_replays_change_nothing(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let r = room(s).await?;
    let m = post(1, r.conversation, r.a, "ship it?");
    let events = [
        m.clone(),
        react(2, &m, r.a, "👍", true),
        react(3, &m, r.b, "🎉", true),
        react(4, &m, r.b, "👍", true),
        react(5, &m, r.a, "👍", false),
        react(6, &m, r.a, "👍", true),
        react(7, &m, r.b, "🎉", false),
    ];
    apply(s, &events).await?;
    apply(s, &events).await?;
    // An older toggle replayed alone does not undo a newer one.
    apply(s, &[events[4].clone()]).await?;
    let now = message(s, m.id()).await?;
    assert_eq!(now.reactions.len(), 1, "{:?}", now.reactions);
    let thumbs = &now.reactions[0];
    assert_eq!(thumbs.emoji, "👍");
    assert_eq!(thumbs.count, 2);
    assert_eq!(thumbs.user_ids, [r.b, r.a], "in the order they reacted");
    assert!(!thumbs.me, "`me` is the reader's business, not the store's");
    let page = s.history.history(r.conversation, None, None, 10).await?;
    assert_eq!(page[0].reactions, now.reactions);
    Ok(())
}

async fn a_deletion_drops_the_body_everywhere_and_nothing_revives_it(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let r = room(s).await?;
    let m = post_mentioning(1, r.conversation, r.a, "secret plan @bob", &[r.b]);
    let edited = edit(2, &m, "secret plan v2 @bob", &[r.b]);
    let reaction = react(3, &m, r.b, "👀", true);
    let deletion = delete(4, &m, r.a);
    let late_edit = edit(5, &m, "resurrected", &[]);
    let late_reaction = react(6, &m, r.b, "🎉", true);
    let events = [
        m.clone(),
        edited,
        reaction,
        deletion.clone(),
        late_edit,
        late_reaction,
    ];
    apply(s, &events).await?;
    // Replays: the whole log again, and the post alone.
    apply(s, &events).await?;
    apply(s, std::slice::from_ref(&m)).await?;

    let now = message(s, m.id()).await?;
    assert!(now.deleted);
    assert_eq!(now.body, "");
    assert_eq!(
        (now.sender_id, now.created_at),
        (r.a, at(1)),
        "id, sender and time stay"
    );
    assert!(now.mentions.is_empty() && now.reactions.is_empty());
    for word in ["secret", "plan", "resurrected"] {
        assert!(found(s, &r, word).await?.is_empty(), "{word} is not found");
    }
    let activity = s
        .history
        .activity(&[ActivityQuery {
            conversation: r.conversation,
            reader: r.b,
            last_read: None,
        }])
        .await?;
    assert_eq!(activity[0].unread_mentions, 0);
    assert_eq!(
        activity[0].unread_count, 0,
        "a deleted message is not unread"
    );
    // A replay from before the post shows it deleted; one from after it has only the
    // deletion, never the edits with their bodies.
    let replay = s
        .history
        .since(&[r.conversation], MessageId(0), MessageId(0), 100)
        .await?;
    assert_eq!(replay.len(), 1);
    assert!(
        matches!(&replay[0], Replay::Message(message) if message.deleted && message.body.is_empty())
    );
    let replay = s
        .history
        .since(&[r.conversation], m.id(), m.id(), 100)
        .await?;
    assert_eq!(replay, [Replay::Change((*deletion).clone())]);
    Ok(())
}

async fn mentions_count_until_read_and_follow_edits(s: &StorePorts) -> anyhow::Result<()> {
    let r = room(s).await?;
    let first = post_mentioning(1, r.conversation, r.a, "@bob look", &[r.b]);
    let second = post_mentioning(2, r.conversation, r.a, "@bob and @ann", &[r.b, r.a]);
    let third = post(3, r.conversation, r.a, "no one");
    apply(s, &[first.clone(), second.clone(), third.clone()]).await?;
    let unread = |reader, last_read| ActivityQuery {
        conversation: r.conversation,
        reader,
        last_read,
    };
    let counts = s
        .history
        .activity(&[
            unread(r.b, None),
            unread(r.b, Some(first.id())),
            unread(r.a, None),
        ])
        .await?;
    let mentions: Vec<u32> = counts.iter().map(|c| c.unread_mentions).collect();
    // The author's own mention of themselves does not count.
    assert_eq!(mentions, [2, 1, 0]);
    assert_eq!(message(s, second.id()).await?.mentions, [r.b, r.a]);

    apply(
        s,
        &[
            edit(4, &second, "and @ann", &[r.a]),
            edit(5, &third, "@bob now", &[r.b]),
        ],
    )
    .await?;
    let counts = s.history.activity(&[unread(r.b, Some(first.id()))]).await?;
    assert_eq!(counts[0].unread_mentions, 1, "an edit moves the mention");
    Ok(())
}

async fn sync_replays_new_messages_as_they_are_and_changes_of_older_ones(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let r = room(s).await?;
    let other = s.conversations.create_group("other", &[r.a, r.b]).await?;
    let old = post(1, r.conversation, r.a, "old");
    let old_edit = edit(3, &old, "old, edited", &[]);
    let new = post(4, r.conversation, r.b, "new");
    let new_edit = edit(5, &new, "new, edited", &[]);
    let old_reaction = react(6, &old, r.b, "👍", true);
    let elsewhere = post(7, other, r.a, "elsewhere");
    apply(
        s,
        &[
            old.clone(),
            old_edit.clone(),
            new.clone(),
            new_edit,
            old_reaction.clone(),
            elsewhere,
        ],
    )
    .await?;

    // The client holds everything up to id(2).
    let since = id(2);
    let replay = s
        .history
        .since(&[r.conversation], since, since, 100)
        .await?;
    let new_now = message(s, new.id()).await?;
    assert_eq!(new_now.body, "new, edited");
    assert_eq!(
        replay,
        [
            Replay::Change((*old_edit).clone()),
            Replay::Message(new_now),
            Replay::Change((*old_reaction).clone()),
        ],
        "in id order; the new message once, as it is now, its edit folded in"
    );
    // Paging: from the middle of the replay on, with the same `since`.
    let rest = s
        .history
        .since(&[r.conversation], since, new.id(), 100)
        .await?;
    assert_eq!(rest, [Replay::Change((*old_reaction).clone())]);
    let first = s.history.since(&[r.conversation], since, since, 1).await?;
    assert_eq!(first, [Replay::Change((*old_edit).clone())]);
    Ok(())
}

async fn search_finds_words_and_phrases_in_live_messages_of_the_given_conversations(
    s: &StorePorts,
) -> anyhow::Result<()> {
    let r = room(s).await?;
    let other = s.conversations.create_group("other", &[r.a, r.b]).await?;
    let events = [
        post(1, r.conversation, r.a, "Deploy the green build"),
        post(2, r.conversation, r.b, "the build is green again"),
        post(3, r.conversation, r.a, "Привет, команда: деплой завтра"),
        post(4, other, r.a, "green build elsewhere"),
        post(5, r.conversation, r.b, "AND OR NOT NEAR(\"x\") * ^"),
        post(6, r.conversation, r.a, "Café crème"),
    ];
    apply(s, &events).await?;
    let ids = |seqs: &[i64]| seqs.iter().map(|s| id(*s)).collect::<Vec<_>>();
    assert_eq!(
        found(s, &r, "green build").await?,
        ids(&[2, 1]),
        "newest first"
    );
    assert_eq!(
        found(s, &r, "\"green build\"").await?,
        ids(&[1]),
        "a phrase"
    );
    assert_eq!(
        found(s, &r, "dep").await?,
        ids(&[1]),
        "words match as prefixes"
    );
    assert_eq!(found(s, &r, "команда").await?, ids(&[3]), "any script");
    assert_eq!(
        found(s, &r, "near").await?,
        ids(&[5]),
        "operators are words"
    );
    assert_eq!(found(s, &r, "CAFÉ").await?, ids(&[6]), "case-insensitive");
    assert!(
        found(s, &r, "elsewhere").await?.is_empty(),
        "only the given conversations"
    );
    // Paging by `before`.
    let terms = SearchTerms::parse("green")?;
    let page = s
        .history
        .search(&[r.conversation, other], &terms, Some(id(4)), 1)
        .await?;
    assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), ids(&[2]));
    assert!(s.history.search(&[], &terms, None, 10).await?.is_empty());
    Ok(())
}
