//! The `MessageLog` port: the embedded SQLite log and Kafka on a real `tansu`
//! broker. Both order appends per conversation, let a group resume where it
//! committed, and lose nothing when several producers append to one conversation at
//! once. Kafka alone can lose its broker: that is tested below the suite.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::log::kafka::KafkaLog;
use chat_server::log::{Change, LogConsumer, MessageLog, NewEvent};
use chat_server::snowflake::Snowflake;
use chat_test_support::broker::Broker;
use uuid::Uuid;

use crate::fixtures::LogPorts;

crate::contract!(
    adapters: [
        sqlite => crate::fixtures::sqlite_log,
        kafka => crate::fixtures::kafka_log,
    ],
    tests: [
        appends_are_ordered_per_conversation_and_a_group_resumes_after_its_commit,
        consumers_miss_nothing_when_several_producers_append_to_one_conversation_at_once,
    ]
);

fn message(conversation: i64, body: &str) -> NewEvent {
    NewEvent {
        conversation_id: ConversationId(conversation),
        user_id: UserId(1),
        client_msg_id: Uuid::new_v4(),
        change: Change::Post {
            body: body.to_owned(),
            reply_to: None,
            mentions: Vec::new(),
        },
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Reads at least `count` records.
async fn read_at_least(
    consumer: &mut Box<dyn LogConsumer>,
    count: usize,
) -> anyhow::Result<Vec<Arc<chat_protocol::events::Event>>> {
    let mut seen = Vec::new();
    while seen.len() < count {
        seen.extend(within("a batch", consumer.next_batch(count - seen.len())).await?);
    }
    Ok(seen)
}

async fn appends_are_ordered_per_conversation_and_a_group_resumes_after_its_commit(
    ports: &LogPorts,
) -> anyhow::Result<()> {
    let log = &ports.nodes[0];
    let mut live = within("fan-out consumer", log.consume_from_end()).await?;
    let mut appended = Vec::new();
    for i in 0..60 {
        appended.push(log.append(message(i % 4, &format!("m{i}"))).await?);
    }
    // The end-of-log consumer sees every append after it started, in order per
    // conversation.
    let seen = read_at_least(&mut live, appended.len()).await?;
    let mut per_conversation: BTreeMap<ConversationId, Vec<MessageId>> = BTreeMap::new();
    for m in &seen {
        per_conversation
            .entry(m.conversation_id())
            .or_default()
            .push(m.id());
    }
    for ids in per_conversation.values() {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids increase within a conversation"
        );
    }

    // A group reads from the start, commits half, and a new member resumes there.
    let committed = || async {
        log.committed("contract-group")
            .await
            .map_or(0, |position| position.0.values().sum::<i64>())
    };
    let before = committed().await;
    let mut group = within("group consumer", log.consume_as("contract-group")).await?;
    let first = read_at_least(&mut group, 30).await?;
    group.commit().await?;
    within("the commit is visible", async {
        while committed().await < before + 30 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drop(group);
    let mut resumed = within("second group consumer", log.consume_as("contract-group")).await?;
    let rest = read_at_least(&mut resumed, appended.len() - first.len()).await?;
    let mut all: Vec<_> = first.iter().chain(&rest).map(|m| m.id()).collect();
    all.sort();
    let mut want: Vec<_> = appended.iter().map(|m| m.id()).collect();
    want.sort();
    assert_eq!(all, want, "nothing lost or repeated across the handover");
    assert!(
        log.tail()
            .await?
            .covers(&log.committed("contract-group").await?)
    );
    Ok(())
}

async fn consumers_miss_nothing_when_several_producers_append_to_one_conversation_at_once(
    ports: &LogPorts,
) -> anyhow::Result<()> {
    // Several nodes appending to one conversation at once is the case where a broker
    // may make a later batch visible before an earlier one (tansu advances the high
    // watermark before it stores the batch); a consumer must not skip the earlier one.
    const TASKS: usize = 6;
    const EACH: usize = 40;
    let mut live = within("fan-out consumer", ports.nodes[0].consume_from_end()).await?;
    let mut group = within(
        "group consumer",
        ports.nodes[1].consume_as("contract-group"),
    )
    .await?;
    let mut appenders = tokio::task::JoinSet::new();
    for log in &ports.nodes {
        for task in 0..TASKS {
            let log = log.clone();
            appenders.spawn(async move {
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let appended = log.append(message(7, &format!("t{task} m{i}"))).await;
                    ids.push(appended.expect("a healthy log takes appends").id());
                }
                ids
            });
        }
    }
    let mut want = BTreeSet::new();
    while let Some(ids) = appenders.join_next().await {
        want.extend(ids?);
    }
    assert_eq!(want.len(), ports.nodes.len() * TASKS * EACH);
    for (name, consumer) in [("fan-out", &mut live), ("group", &mut group)] {
        let seen = read_until_all(consumer, &want).await;
        let distinct: BTreeSet<_> = seen.iter().copied().collect();
        let missing: Vec<_> = want.difference(&distinct).collect();
        assert!(
            missing.is_empty(),
            "the {name} consumer missed {} appends",
            missing.len()
        );
        assert_eq!(
            seen.len(),
            want.len(),
            "the {name} consumer repeated appends"
        );
    }
    Ok(())
}

/// Reads until every id of `want` has arrived (or 30 s pass); returns what arrived.
async fn read_until_all(
    consumer: &mut Box<dyn LogConsumer>,
    want: &BTreeSet<MessageId>,
) -> Vec<MessageId> {
    let mut seen = Vec::new();
    let mut have = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !want.is_subset(&have) && Instant::now() < deadline {
        if let Ok(Ok(batch)) =
            tokio::time::timeout(Duration::from_millis(500), consumer.next_batch(1024)).await
        {
            for m in batch {
                have.insert(m.id());
                seen.push(m.id());
            }
        }
    }
    seen
}

#[tokio::test]
async fn kafka_refuses_appends_when_its_broker_is_gone_instead_of_acknowledging() {
    let broker = Broker::start();
    let settings = crate::fixtures::kafka_settings(&broker);
    let log = KafkaLog::open(settings, Arc::new(Snowflake::new(2)))
        .await
        .expect("open the log");
    log.append(message(1, "before"))
        .await
        .expect("a first append");
    drop(broker);
    let started = Instant::now();
    let refused = within("a refused append", log.append(message(1, "while down"))).await;
    assert!(
        refused.is_err(),
        "an append the broker never took must not succeed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "refused within the delivery timeout"
    );
    assert!(log.check().await.is_err(), "readiness reports the log");
}
