//! The PostgreSQL adapter against a real PostgreSQL server: the same semantics the
//! SQLite adapter has, checked through the store traits only. Each test runs in a
//! fresh database of its own (created on the server named by `CHAT_TEST_DATABASE_URL`,
//! dropped afterwards), so the tests run in parallel. An unreachable server fails the
//! tests; they are never skipped.

use std::collections::HashSet;
use std::str::FromStr;

use anyhow::{Context, bail};
use chat_protocol::http::{ConversationKind, Message};
use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::store::postgres::{self, PostgresStore};
use chat_server::store::{CreateUserError, Directory, MessageStore, RotateError, Sessions};
use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const START_HINT: &str = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
     (or point CHAT_TEST_DATABASE_URL at a running server)";

/// A fresh database with the migrations applied, dropped when the test ends (even
/// when it fails).
struct TestDb {
    store: PostgresStore,
    admin: PgConnectOptions,
    name: String,
}

impl TestDb {
    async fn new() -> anyhow::Result<Self> {
        let base = std::env::var("CHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = PgConnectOptions::from_str(&base)
            .with_context(|| format!("CHAT_TEST_DATABASE_URL is not a PostgreSQL URL: {base}"))?;
        let name = format!("chat_test_{}", Uuid::new_v4().simple());
        let mut conn = admin.connect().await.with_context(|| {
            format!("cannot reach PostgreSQL at {base} (needed by these tests); {START_HINT}")
        })?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating the test database {name}"))?;
        conn.close().await?;
        let url = with_database(&base, &name);
        let pool = postgres::open(&url)
            .await
            .with_context(|| format!("opening and migrating {name}"))?;
        Ok(Self {
            store: PostgresStore::new(pool),
            admin,
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside async; a helper thread with its own runtime does the
        // (best-effort) cleanup. FORCE ends the pool's connections still open.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `base` with its database name replaced by `database`, query string kept.
fn with_database(base: &str, database: &str) -> String {
    let (front, query) = match base.split_once('?') {
        Some((front, query)) => (front, format!("?{query}")),
        None => (base, String::new()),
    };
    let authority_start = front.find("://").map_or(0, |i| i + 3);
    let host_part = match front[authority_start..].find('/') {
        Some(slash) => &front[..authority_start + slash],
        None => front,
    };
    format!("{host_part}/{database}{query}")
}

async fn user(db: &TestDb, name: &str) -> anyhow::Result<UserId> {
    Ok(db.store.create_user(name, name, "hash").await?.id)
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A message with a Snowflake-shaped id: `seq` orders it.
fn message(conversation: ConversationId, sender: UserId, seq: i64) -> Message {
    let ms = 1_700_000_000_000 + seq;
    Message {
        id: MessageId((ms << 22) | (seq & 0xfff)),
        conversation_id: conversation,
        sender_id: sender,
        body: format!("message {seq}"),
        client_msg_id: Uuid::new_v4(),
        created_at: at_ms(ms),
    }
}

#[tokio::test]
async fn users_are_created_once_and_found_by_literal_prefix() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let alice = db
        .store
        .create_user("alice", "Alice A", "argon-hash")
        .await?;
    assert!(matches!(
        db.store.create_user("alice", "Other", "x").await,
        Err(CreateUserError::Taken)
    ));

    let credentials = db
        .store
        .credentials("alice")
        .await?
        .context("alice exists")?;
    assert_eq!(credentials.user, alice);
    assert_eq!(credentials.password_hash, "argon-hash");
    assert!(db.store.credentials("nobody").await?.is_none());
    assert_eq!(db.store.user(alice.id).await?, Some(alice.clone()));

    let under = user(&db, "a_b").await?;
    let _axb = user(&db, "axb").await?;
    let percent = user(&db, "50%off").await?;
    let _fifty = user(&db, "50xoff").await?;
    let found = db.store.search_users("a_", 10).await?;
    assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), vec![under]);
    let found = db.store.search_users("50%", 10).await?;
    assert_eq!(
        found.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![percent]
    );
    // Case-insensitive, on username or display name, limited.
    let found = db.store.search_users("ALI", 10).await?;
    assert_eq!(
        found.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![alice.id]
    );
    assert_eq!(db.store.search_users("a", 2).await?.len(), 2);

    let users = db.store.users(&[under, UserId(999_999), alice.id]).await?;
    assert_eq!(
        users.iter().map(|u| u.id).collect::<HashSet<_>>(),
        HashSet::from([under, alice.id])
    );
    assert!(db.store.users(&[]).await?.is_empty());
    db.store.ping().await?;
    Ok(())
}

#[tokio::test]
async fn a_direct_conversation_is_created_once_per_pair() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = user(&db, "a").await?;
    let b = user(&db, "b").await?;
    let (first, created) = db.store.direct_conversation(a, b).await?;
    assert!(created);
    let (again, created) = db.store.direct_conversation(b, a).await?;
    assert_eq!((again, created), (first, false));

    // Both sides opening it at once still make one conversation.
    let c = user(&db, "c").await?;
    let (x, y) = tokio::join!(
        db.store.direct_conversation(a, c),
        db.store.direct_conversation(c, a)
    );
    let (x, y) = (x?, y?);
    assert_eq!(x.0, y.0);
    assert!(x.1 ^ y.1, "exactly one call creates it");

    let record = db.store.conversation(first).await?.context("exists")?;
    assert_eq!(record.kind, ConversationKind::Direct);
    assert_eq!(record.title, None);
    let members: HashSet<_> = db.store.member_ids(first).await?.into_iter().collect();
    assert_eq!(members, HashSet::from([a, b]));
    assert!(
        db.store
            .conversation(ConversationId(999_999))
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn groups_gain_and_lose_members() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = user(&db, "a").await?;
    let b = user(&db, "b").await?;
    let c = user(&db, "c").await?;
    let d = user(&db, "d").await?;
    let group = db.store.create_group("team", &[a, b, a]).await?;
    let record = db.store.conversation(group).await?.context("exists")?;
    assert_eq!(record.kind, ConversationKind::Group);
    assert_eq!(record.title.as_deref(), Some("team"));

    assert_eq!(
        db.store.add_members(group, &[d, b, c, d]).await?,
        vec![d, c]
    );
    assert!(db.store.add_members(group, &[]).await?.is_empty());
    let members: Vec<_> = db.store.members(group).await?;
    assert_eq!(members.len(), 4);
    assert!(members.iter().all(|m| m.last_read_id.is_none()));

    assert!(db.store.is_member(group, c).await?);
    assert!(db.store.remove_member(group, c).await?);
    assert!(!db.store.remove_member(group, c).await?);
    assert!(!db.store.is_member(group, c).await?);
    assert_eq!(db.store.conversations_of(a).await?, vec![group]);
    assert!(db.store.conversations_of(c).await?.is_empty());
    let contacts: HashSet<_> = db.store.contacts(a).await?.into_iter().collect();
    assert_eq!(contacts, HashSet::from([b, d]));
    Ok(())
}

#[tokio::test]
async fn read_markers_only_move_forward() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = user(&db, "a").await?;
    let b = user(&db, "b").await?;
    let (conversation, _) = db.store.direct_conversation(a, b).await?;
    assert!(db.store.mark_read(conversation, a, MessageId(10)).await?);
    assert!(!db.store.mark_read(conversation, a, MessageId(5)).await?);
    assert!(!db.store.mark_read(conversation, a, MessageId(10)).await?);
    assert!(db.store.mark_read(conversation, a, MessageId(20)).await?);
    let outsider = user(&db, "c").await?;
    assert!(
        !db.store
            .mark_read(conversation, outsider, MessageId(30))
            .await?
    );
    let marker = db
        .store
        .members(conversation)
        .await?
        .into_iter()
        .find(|m| m.user.id == a)
        .and_then(|m| m.last_read_id);
    assert_eq!(marker, Some(MessageId(20)));
    Ok(())
}

#[tokio::test]
async fn activity_has_the_last_message_and_unread_from_others() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = user(&db, "a").await?;
    let b = user(&db, "b").await?;
    let (busy, _) = db.store.direct_conversation(a, b).await?;
    let quiet = db.store.create_group("quiet", &[a, b]).await?;
    let messages: Vec<_> = (0..6)
        .map(|seq| message(busy, if seq % 2 == 0 { a } else { b }, seq))
        .collect();
    db.store.store(&messages).await?;

    // a read up to message 1: of 2..=5, b sent 3 and 5.
    let activity = db
        .store
        .activity(a, &[(busy, Some(messages[1].id)), (quiet, None)])
        .await?;
    let busy_activity = &activity[&busy];
    assert_eq!(busy_activity.last_message.as_ref(), Some(&messages[5]));
    assert_eq!(busy_activity.unread_count, 2);
    assert_eq!(activity[&quiet].last_message, None);
    assert_eq!(activity[&quiet].unread_count, 0);

    // With no marker every message from others is unread; own messages never are.
    let activity = db.store.activity(b, &[(busy, None)]).await?;
    assert_eq!(activity[&busy].unread_count, 3);
    assert!(db.store.activity(a, &[]).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = user(&db, "a").await?;
    let later = Utc::now() + Duration::days(30);
    db.store.start(a, "t1", later).await?;
    assert_eq!(db.store.rotate("t1", "t2", later).await?, a);
    assert_eq!(db.store.rotate("t2", "t3", later).await?, a);

    // t1 again: reuse. The family, t3 included, is revoked.
    assert!(matches!(
        db.store.rotate("t1", "x", later).await,
        Err(RotateError::Reused)
    ));
    assert!(matches!(
        db.store.rotate("t3", "t4", later).await,
        Err(RotateError::Invalid)
    ));
    assert!(matches!(
        db.store.rotate("unknown", "y", later).await,
        Err(RotateError::Invalid)
    ));

    // Another login's family is unaffected; logout revokes it.
    db.store.start(a, "s1", later).await?;
    assert_eq!(db.store.rotate("s1", "s2", later).await?, a);
    db.store.revoke_family("s2").await?;
    db.store.revoke_family("never-issued").await?;
    assert!(matches!(
        db.store.rotate("s2", "s3", later).await,
        Err(RotateError::Invalid)
    ));

    // Expired tokens are refused.
    db.store
        .start(a, "old", Utc::now() - Duration::seconds(1))
        .await?;
    assert!(matches!(
        db.store.rotate("old", "new", later).await,
        Err(RotateError::Invalid)
    ));

    // Two rotations of one token at once: one wins, the other is reuse.
    db.store.start(a, "r1", later).await?;
    let (x, y) = tokio::join!(
        db.store.rotate("r1", "r2a", later),
        db.store.rotate("r1", "r2b", later)
    );
    let outcomes = [&x, &y];
    let wins = outcomes.iter().filter(|r| r.is_ok()).count();
    let reuses = outcomes
        .iter()
        .filter(|r| matches!(r, Err(RotateError::Reused)))
        .count();
    assert_eq!(
        (wins, reuses),
        (1, 1),
        "one rotation wins, the other is reuse: {x:?} {y:?}"
    );
    Ok(())
}

#[tokio::test]
async fn storing_the_same_batch_twice_stores_it_once() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = user(&db, "a").await?;
    let b = user(&db, "b").await?;
    let (conversation, _) = db.store.direct_conversation(a, b).await?;
    let batch: Vec<_> = (0..50).map(|seq| message(conversation, a, seq)).collect();
    db.store.store(&batch).await?;
    db.store.store(&batch).await?;
    // A replay overlapping the end of the last batch adds only what is new.
    let overlap: Vec<_> = (40..60).map(|seq| message(conversation, a, seq)).collect();
    db.store.store(&overlap).await?;
    db.store.store(&[]).await?;

    let stored = db.store.history(conversation, None, None, 100).await?;
    assert_eq!(stored.len(), 60);
    // The first write of an id wins; nothing was overwritten.
    assert_eq!(
        db.store.message(batch[45].id).await?.as_ref(),
        Some(&batch[45])
    );
    assert!(db.store.message(MessageId(1)).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn history_pages_through_ten_thousand_messages_without_gaps() -> anyhow::Result<()> {
    const TOTAL: i64 = 10_000;
    const PAGE: u32 = 100;
    let db = TestDb::new().await?;
    let a = user(&db, "a").await?;
    let b = user(&db, "b").await?;
    let (conversation, _) = db.store.direct_conversation(a, b).await?;
    let other = db.store.create_group("noise", &[a, b]).await?;
    let all: Vec<_> = (0..TOTAL)
        .map(|seq| message(conversation, if seq % 3 == 0 { b } else { a }, seq))
        .collect();
    // Stored out of order, in persister-sized batches, beside another conversation.
    for batch in all.chunks(1_000).rev() {
        db.store.store(batch).await?;
    }
    db.store
        .store(&[message(other, a, TOTAL + 1), message(other, b, 5_000)])
        .await?;

    let mut seen = Vec::with_capacity(all.len());
    let mut before = None;
    loop {
        let page = db.store.history(conversation, before, None, PAGE).await?;
        if page.is_empty() {
            break;
        }
        if page.len() > PAGE as usize {
            bail!("a page holds {} messages, more than {PAGE}", page.len());
        }
        before = page.last().map(|m| m.id);
        seen.extend(page);
    }
    let newest_first: Vec<_> = all.iter().rev().cloned().collect();
    assert_eq!(seen.len(), newest_first.len());
    assert!(
        seen == newest_first,
        "pages are newest first, without gaps or duplicates"
    );

    // `after` bounds from below; with `before` it is a window.
    let newest = db
        .store
        .history(conversation, None, Some(all[9_899].id), PAGE)
        .await?;
    assert_eq!(newest, newest_first[..100].to_vec());
    let window = db
        .store
        .history(conversation, Some(all[20].id), Some(all[10].id), PAGE)
        .await?;
    let expected: Vec<_> = all[11..20].iter().rev().cloned().collect();
    assert_eq!(window, expected);

    // `since` replays oldest first across conversations.
    let replay = db.store.since(&[conversation], all[4_999].id, PAGE).await?;
    assert_eq!(replay, all[5_000..5_100].to_vec());
    let replay = db
        .store
        .since(&[conversation, other], all[TOTAL as usize - 2].id, PAGE)
        .await?;
    assert_eq!(
        replay.iter().map(|m| m.conversation_id).collect::<Vec<_>>(),
        vec![conversation, other]
    );
    assert!(db.store.since(&[], MessageId(0), PAGE).await?.is_empty());
    Ok(())
}

#[test]
fn the_database_name_is_replaced_in_the_url() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}
